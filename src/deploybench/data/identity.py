"""Which test data a result was evaluated on: a digest of the dataset's annotation file and of
its image (and label map) list, so that two results on different data never look alike."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from deploybench.artifact_integrity import file_sha256


def dataset_identity(dataset: Any) -> dict[str, Any]:
    """{sha256, images, annotations}: `sha256` covers the annotation file's bytes (mmdet) and
    every image and label path relative to the data root, in the split's order. Image bytes
    are not read (COCO val is 800 MB); a file replaced under the same name keeps its digest."""
    root = str(getattr(dataset, "data_root", "") or "")
    digest = hashlib.sha256()
    annotations = getattr(dataset, "ann_file", "") or ""
    if annotations and Path(annotations).is_file():
        digest.update(f"annotations {file_sha256(annotations)}\n".encode())
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        for key in ("img_path", "seg_map_path"):
            if info.get(key):
                digest.update(f"{key} {os.path.relpath(info[key], root or '.')}\n".encode())
    return {"sha256": digest.hexdigest(), "images": len(dataset),
            "annotations": Path(annotations).name if annotations else None}
