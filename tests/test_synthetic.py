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


def _zoo_test_dataset(name: str, root: Path):  # noqa: ANN202 - an mmengine dataset
    from mmengine.registry import DATASETS, DefaultScope

    from deploybench.models.loading import (
        codebase_of,
        load_mm_config,
        register_codebase,
        set_data_root,
    )
    from deploybench.zoo import lookup

    cfg = load_mm_config(lookup(name).config)
    register_codebase(codebase_of(cfg))
    set_data_root(cfg, root)
    with DefaultScope.overwrite_default_scope(codebase_of(cfg)):
        return DATASETS.build(cfg.test_dataloader.dataset), cfg


def test_zoo_configs_read_the_coco_and_cityscapes_layouts(small_dataset: Path) -> None:
    val = COCO(str(small_dataset / "annotations" / "val.json"))
    coco, cfg = _zoo_test_dataset("retinanet_r50_fpn_1x_coco", small_dataset)
    assert len(coco) == len(val.imgs) and cfg.test_evaluator.ann_file == str(
        small_dataset / "annotations" / "instances_val2017.json")
    sample = coco[0]["data_samples"]
    names = [coco.metainfo["classes"][i] for i in sample.gt_instances.labels.tolist()]
    shapes = [CLASSES[a["category_id"] - 1] for a in val.imgToAnns[sample.img_id]]
    as_coco = dict(zip(CLASSES, ("sports ball", "tv", "kite", "frisbee"), strict=True))
    assert sorted(names) == sorted(as_coco[s] for s in shapes)
    city, _ = _zoo_test_dataset("pspnet_r50-d8_4xb2-40k_cityscapes-512x1024", small_dataset)
    assert len(city) == len(val.imgs)
    label = cv2.imread(str(small_dataset / "val" / "labels" / "000000.png"), 0)
    train_ids = cv2.imread(city.get_data_info(0)["seg_map_path"], 0)
    np.testing.assert_array_equal(train_ids, np.array((0, 7, 13, 11, 12), np.uint8)[label])


def test_dataset_identity_tells_data_apart(small_dataset: Path, tmp_path: Path) -> None:
    import shutil

    from deploybench.data.identity import dataset_identity

    coco, _ = _zoo_test_dataset("retinanet_r50_fpn_1x_coco", small_dataset)
    again, _ = _zoo_test_dataset("retinanet_r50_fpn_1x_coco", small_dataset)
    identity = dataset_identity(coco)
    assert identity == dataset_identity(again) and identity["images"] == len(coco)
    assert identity["annotations"] == "instances_val2017.json"
    # The same images under another root are the same data; one changed annotation is not.
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    moved, _ = _zoo_test_dataset("retinanet_r50_fpn_1x_coco", copy)
    assert dataset_identity(moved) == identity
    annotations = copy / "annotations" / "instances_val2017.json"
    annotations.write_text(annotations.read_text().replace('"iscrowd": 0', '"iscrowd": 1', 1))
    changed, _ = _zoo_test_dataset("retinanet_r50_fpn_1x_coco", copy)
    assert dataset_identity(changed)["sha256"] != identity["sha256"]
    city, _ = _zoo_test_dataset("pspnet_r50-d8_4xb2-40k_cityscapes-512x1024", small_dataset)
    assert dataset_identity(city)["sha256"] != identity["sha256"]


def test_generated_directories_get_the_usual_permissions(tmp_path: Path) -> None:
    """The dataset directory is made aside and renamed into place: readable by others like any
    directory the umask allows (a temporary directory alone would stay 0700)."""
    import os

    old = os.umask(0o022)
    try:
        root = generate(tmp_path / "shapes", SyntheticSpec(seed=0, num_train=1, num_val=1))
    finally:
        os.umask(old)
    assert root.stat().st_mode & 0o777 == 0o755
