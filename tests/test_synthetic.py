"""The synthetic dataset: deterministic, and its three label forms agree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from deploybench.data.synthetic import CLASSES, SyntheticSpec, generate


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    spec = SyntheticSpec(seed=3, num_train=3, num_val=4, image_size=64)
    assert digest(generate(tmp_path / "a", spec)) == digest(generate(tmp_path / "b", spec))
    other = SyntheticSpec(seed=4, num_train=3, num_val=4, image_size=64)
    assert digest(generate(tmp_path / "c", other)) != digest(tmp_path / "a")


def test_val_split_does_not_depend_on_train_size(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SyntheticSpec(seed=0, num_train=2, num_val=3, image_size=64))
    b = generate(tmp_path / "b", SyntheticSpec(seed=0, num_train=5, num_val=3, image_size=64))
    assert digest(a / "val") == digest(b / "val")


def test_annotations_match_label_maps(small_dataset: Path) -> None:
    coco = COCO(str(small_dataset / "annotations" / "val.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert len(coco.getImgIds()) == 6
    for image in coco.loadImgs(coco.getImgIds()):
        label = cv2.imread(str(small_dataset / "val" / "labels" / image["file_name"]), 0)
        assert cv2.imread(str(small_dataset / "val" / "images" / image["file_name"])).shape == (
            image["height"], image["width"], 3)
        painted = np.zeros_like(label)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            mask = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert ann["area"] == mask.sum() > 0
            x, y, w, h = ann["bbox"]
            ys, xs = np.nonzero(mask)
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            painted[mask] = ann["category_id"]
        # Every labelled pixel belongs to exactly the instance that covers it.
        np.testing.assert_array_equal(painted, label)
