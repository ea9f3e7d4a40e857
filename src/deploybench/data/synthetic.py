"""A deterministic synthetic dataset: coloured shapes on textured backgrounds.

Each image carries COCO instance annotations (boxes and RLE masks) and a semantic label map, so
the same files serve an mmdet detector and an mmseg segmentor; they are also laid out as COCO
and Cityscapes for the zoo's own configs (`zoo_layouts`). Everything derives from one seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from deploybench.atomic import atomic_dir
from deploybench.data.zoo_layouts import write_zoo_layouts

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")
# Label-map palette: background first, then one colour per class.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (220, 20, 60), (0, 128, 255), (60, 180, 75), (255, 200, 0))
MIN_VISIBLE_PIXELS = 30


@dataclass(frozen=True)
class SyntheticSpec:
    seed: int = 0
    num_train: int = 800
    num_val: int = 150
    image_size: int = 160
    max_objects: int = 4


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear colour gradient in a random direction plus Gaussian noise."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    img += rng.normal(0, rng.uniform(4, 16), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _star(cx: float, cy: float, r: float, rot: float) -> np.ndarray:
    angles = rot + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)


def _shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    r = rng.uniform(size * 0.08, size * 0.2)
    cx, cy = rng.uniform(r, size - r, 2)
    rot = rng.uniform(0, 2 * np.pi)
    if CLASSES[cls] == "circle":
        cv2.circle(mask, (round(cx), round(cy)), round(r), 1, -1)
        return mask
    if CLASSES[cls] == "square":
        angles = rot + np.arange(4) * np.pi / 2 + np.pi / 4
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
    elif CLASSES[cls] == "triangle":
        angles = rot + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
    else:
        pts = _star(cx, cy, r * 1.2, rot)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def _colour(rng: np.random.Generator, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A colour that differs clearly from the background under the shape."""
    under = background[mask.astype(bool)].mean(0)
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - under).sum() > 150:
            return colour
    return 255 - under


def _render(rng: np.random.Generator, spec: SyntheticSpec):
    size = spec.image_size
    img = _background(rng, size)
    label = np.zeros((size, size), np.uint8)
    instance_ids = np.zeros((size, size), np.int32)
    classes: list[int] = []
    for k in range(int(rng.integers(1, spec.max_objects + 1))):
        cls = int(rng.integers(len(CLASSES)))
        mask = _shape_mask(rng, cls, size)
        colour = _colour(rng, img, mask)
        shade = rng.normal(0, 6, img.shape)
        painted = np.clip(colour[None, None] + shade, 0, 255).astype(np.uint8)
        sel = mask.astype(bool)
        img[sel] = painted[sel]
        label[sel] = cls + 1
        instance_ids[sel] = k + 1
        classes.append(cls)
    instances = []
    for k, cls in enumerate(classes):
        visible = (instance_ids == k + 1).astype(np.uint8)
        if visible.sum() >= MIN_VISIBLE_PIXELS:
            instances.append((cls, visible))
        else:  # an occluded sliver is not a labelled object; nor is it a class in the label map
            label[visible.astype(bool)] = 0
    return img, label, instances


def _coco_annotation(ann_id: int, image_id: int, cls: int, mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"id": ann_id, "image_id": image_id, "category_id": cls + 1, "bbox": [x, y, w, h],
            "area": float(mask_utils.area(rle)), "segmentation": rle, "iscrowd": 0}


def _write_split(root: Path, split: str, count: int, rng: np.random.Generator,
                 spec: SyntheticSpec) -> None:
    (root / split / "images").mkdir(parents=True)
    (root / split / "labels").mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(count):
        img, label, instances = _render(rng, spec)
        name = f"{image_id:06d}.png"
        cv2.imwrite(str(root / split / "images" / name), img)
        cv2.imwrite(str(root / split / "labels" / name), label)
        images.append({"id": image_id, "file_name": name, "width": spec.image_size,
                       "height": spec.image_size})
        for cls, mask in instances:
            annotations.append(_coco_annotation(len(annotations) + 1, image_id, cls, mask))
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"{split}.json").write_text(json.dumps(coco))


def generate(out_dir: Path | str, spec: SyntheticSpec) -> Path:
    """Write the dataset to `out_dir` atomically; the same spec always gives the same files."""
    out_dir = Path(out_dir)
    rng_train, rng_val = (np.random.default_rng(s) for s in
                          np.random.SeedSequence(spec.seed).spawn(2))
    with atomic_dir(out_dir) as tmp:
        _write_split(tmp, "train", spec.num_train, rng_train, spec)
        _write_split(tmp, "val", spec.num_val, rng_val, spec)
        write_zoo_layouts(tmp)
        meta = {"kind": "synthetic", "classes": list(CLASSES),
                "palette": [list(p) for p in PALETTE], "spec": spec.__dict__}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out_dir
