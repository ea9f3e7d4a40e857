"""The synthetic dataset, also laid out as COCO and Cityscapes, so that zoo models read it with
their own dataset and evaluator configs (only the data root changes):

- COCO: `annotations/instances_{train,val}2017.json` + `{train,val}2017/`, with COCO's 80
  categories (the shapes are four of them);
- Cityscapes: `leftImg8bit/{train,val}/synth/*_leftImg8bit.png` and
  `gtFine/{train,val}/synth/*_gtFine_labelTrainIds.png`, the label map in Cityscapes' 19 train
  ids (the background is road, the shapes four other classes).
Images are hard links to the shapes layout's files, so the layouts cost no image bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

# COCO's category ids (1-90 with gaps) in the order of its 80 class names.
COCO_IDS = (*range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70,
            *range(72, 83), *range(84, 91))
# The shapes (circle, square, triangle, star) as COCO and Cityscapes classes.
AS_COCO = ("sports ball", "tv", "kite", "frisbee")
AS_CITYSCAPES = (7, 13, 11, 12)  # traffic sign, car, person, rider; background: road (0)
CITY = "synth"


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)


def _coco(root: Path, split: str) -> None:
    from mmdet.datasets import CocoDataset

    names = CocoDataset.METAINFO["classes"]
    ids = dict(zip(names, COCO_IDS, strict=True))
    shapes = json.loads((root / "annotations" / f"{split}.json").read_text())
    for image in shapes["images"]:
        _link(root / split / "images" / image["file_name"],
              root / f"{split}2017" / image["file_name"])
    for ann in shapes["annotations"]:
        ann["category_id"] = ids[AS_COCO[ann["category_id"] - 1]]
    shapes["categories"] = [{"id": ids[n], "name": n, "supercategory": ""} for n in names]
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(shapes))


def _cityscapes(root: Path, split: str) -> None:
    lut = np.array((0, *AS_CITYSCAPES), np.uint8)
    for image in sorted((root / split / "images").iterdir()):
        stem = f"{CITY}_{image.stem}_000019"  # Cityscapes' <city>_<seq>_<frame> naming
        _link(image, root / "leftImg8bit" / split / CITY / f"{stem}_leftImg8bit.png")
        label = cv2.imread(str(root / split / "labels" / image.name), cv2.IMREAD_GRAYSCALE)
        out = root / "gtFine" / split / CITY / f"{stem}_gtFine_labelTrainIds.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), lut[label])


def write_zoo_layouts(root: Path) -> None:
    for split in ("train", "val"):
        _coco(root, split)
        _cityscapes(root, split)
