"""What a dataset of each kind must hold, and what to do when it does not."""

from __future__ import annotations

from pathlib import Path

COCO_VAL = ("annotations/instances_val2017.json", "val2017")
CITYSCAPES_VAL = ("leftImg8bit/val", "gtFine/val")
COCO_HOWTO = ("download http://images.cocodataset.org/zips/val2017.zip and "
              "http://images.cocodataset.org/annotations/annotations_trainval2017.zip and unzip "
              "both there, or set download: true for this dataset (the pipeline fetches and "
              "checks them)")
CITYSCAPES_HOWTO = (
    "Cityscapes needs a login: register at https://www.cityscapes-dataset.com, download "
    "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip, unzip both there, then make the "
    "label train ids: `pip install cityscapesscripts` and `python tools/dataset_converters/"
    "cityscapes.py <path> --nproc 8` from mmsegmentation's repository (it writes "
    "gtFine/*/*/*_labelTrainIds.png)")


def missing(kind: str, root: Path) -> list[str]:
    """The problems with `root` as a dataset of `kind` (coco, cityscapes, directory)."""
    if not root.is_dir():
        howto = {"coco": COCO_HOWTO, "cityscapes": CITYSCAPES_HOWTO}.get(
            kind, "download the dataset there (laid out as the model config expects)")
        return [f"{root} does not exist; {howto}, or fix the path"]
    if kind == "coco":
        absent = [p for p in COCO_VAL if not (root / p).exists()]
        return [f"{root} has no {' and no '.join(absent)} (COCO 2017 val); {COCO_HOWTO}"] \
            if absent else []
    if kind == "cityscapes":
        absent = [p for p in CITYSCAPES_VAL if not (root / p).is_dir()]
        if absent:
            return [f"{root} has no {' and no '.join(absent)}; {CITYSCAPES_HOWTO}"]
        if next((root / "gtFine" / "val").glob("*/*_labelTrainIds.png"), None) is None:
            return [f"{root}/gtFine/val has no *_labelTrainIds.png (the label maps in train "
                    "ids, which Cityscapes does not ship): run `python tools/dataset_converters"
                    f"/cityscapes.py {root} --nproc 8` from mmsegmentation's repository (with "
                    "`pip install cityscapesscripts`)"]
    return []
