"""Output parity: a cell's raw outputs and predictions against PyTorch fp32 on the same inputs.

The reference is PyTorch fp32 on the CPU over the first N test images (the `reference` step);
every cell's evaluate step compares the same N images. Per output: max absolute error, relative
error (max |a - r| / max |r|, so that near-zero elements do not blow it up) and cosine
similarity over all N images. Task level: detection, the share of confident reference boxes that
the cell also finds (same label, IoU >= threshold) and their mean |score difference| (and for
instance masks, the mean mask IoU of those pairs); segmentation, the share of pixels with the
same label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.atomic import atomic_path

Sample = tuple[list[np.ndarray], dict[str, np.ndarray]]  # (raw outputs, prediction arrays)


def save_reference(path: Path, samples: Sequence[Sample], output_names: list[str]) -> None:
    arrays: dict[str, np.ndarray] = {"output_names": np.array(output_names)}
    for i, (outputs, prediction) in enumerate(samples):
        arrays |= {f"{i}/out/{j}": o for j, o in enumerate(outputs)}
        arrays |= {f"{i}/pred/{k}": v for k, v in prediction.items()}
    with atomic_path(path, suffix=".npz") as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)


def load_reference(path: Path) -> tuple[list[Sample], list[str]]:
    with np.load(path) as data:
        names = [str(n) for n in data["output_names"]]
        count = 1 + max((int(k.split("/")[0]) for k in data.files if "/" in k), default=-1)
        samples = []
        for i in range(count):
            outputs = [data[f"{i}/out/{j}"] for j in range(len(names))]
            prediction = {k.split("/")[2]: data[k] for k in data.files
                          if k.startswith(f"{i}/pred/")}
            samples.append((outputs, prediction))
    return samples, names


def output_errors(cell: Sequence[Sample], reference: Sequence[Sample],
                  names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for j, name in enumerate(names):
        a = np.concatenate([np.asarray(s[0][j], np.float64).ravel() for s in cell])
        r = np.concatenate([np.asarray(s[0][j], np.float64).ravel() for s in reference])
        if a.shape != r.shape:
            raise ValueError(f"output {name}: {a.size} values, reference has {r.size}")
        max_abs = float(np.max(np.abs(a - r))) if a.size else 0.0
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        norms = float(np.linalg.norm(a) * np.linalg.norm(r))
        rows.append({"output": name, "max_abs": max_abs,
                     "max_rel": max_abs / scale if scale > 0 else max_abs,
                     "cosine": float(np.dot(a, r) / norms) if norms > 0 else 1.0})
    return rows


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N, 4) and b (M, 4), x1y1x2y2."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def detection_agreement(cell: Sequence[dict[str, np.ndarray]],
                        reference: Sequence[dict[str, np.ndarray]], iou: float,
                        score_threshold: float) -> dict[str, Any]:
    """Both directions: the confident reference boxes the cell finds (`boxes_matched`, with
    their score differences and mask IoUs), and the confident cell boxes the reference has
    (`cell_boxes_matched`: boxes a backend adds are seen). A share over no boxes is None."""
    found = _found(cell, reference, iou, score_threshold)
    extra = _found(reference, cell, iou, score_threshold)
    result = {"reference_boxes": found["boxes"], "boxes_matched": found["share"],
              "cell_boxes": extra["boxes"], "cell_boxes_matched": extra["share"],
              "mean_score_diff": found["mean_score_diff"],
              "iou": iou, "score_threshold": score_threshold}
    if found["mask_ious"]:
        result["mean_mask_iou"] = float(np.mean(found["mask_ious"]))
    return result


def _found(cell: Sequence[dict[str, np.ndarray]], reference: Sequence[dict[str, np.ndarray]],
           iou: float, score_threshold: float) -> dict[str, Any]:
    """Greedy matching, most confident `reference` box (score >= threshold) first, one `cell`
    box (any score) per reference box."""
    total = matched = 0
    diffs: list[float] = []
    mask_ious: list[float] = []
    for pred, ref in zip(cell, reference, strict=True):
        keep = ref["scores"] >= score_threshold
        ref_boxes, ref_scores, ref_labels = (ref[k][keep] for k in ("bboxes", "scores", "labels"))
        ious = box_iou(ref_boxes, pred["bboxes"]) if len(pred["bboxes"]) else None
        used = np.zeros(len(pred["bboxes"]), bool)
        for i in np.argsort(-ref_scores, kind="stable"):
            total += 1
            if ious is None:
                continue
            ok = (pred["labels"] == ref_labels[i]) & ~used & (ious[i] >= iou)
            if ok.any():
                best = int(np.argmax(np.where(ok, ious[i], -1)))
                used[best] = True
                matched += 1
                diffs.append(abs(float(pred["scores"][best]) - float(ref_scores[i])))
                if "masks" in ref and "masks" in pred:
                    a, b = pred["masks"][best], ref["masks"][keep][i]
                    union = np.logical_or(a, b).sum()
                    mask_ious.append(float(np.logical_and(a, b).sum() / union) if union else 1.0)
    return {"boxes": total, "share": matched / total if total else None,
            "mean_score_diff": float(np.mean(diffs)) if diffs else None, "mask_ious": mask_ious}


def segmentation_agreement(cell: Sequence[dict[str, np.ndarray]],
                           reference: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    same = total = 0
    for pred, ref in zip(cell, reference, strict=True):
        same += int(np.sum(pred["labels"] == ref["labels"]))
        total += ref["labels"].size
    return {"pixel_agreement": same / total if total else 1.0, "pixels": total}


def compare(task: str, cell: Sequence[Sample], reference: Sequence[Sample], names: list[str],
            iou: float = 0.5, score_threshold: float = 0.3) -> dict[str, Any]:
    count = min(len(cell), len(reference))
    cell, reference = cell[:count], reference[:count]
    preds, refs = [s[1] for s in cell], [s[1] for s in reference]
    agreement = (segmentation_agreement(preds, refs) if task == "segmentation"
                 else detection_agreement(preds, refs, iou, score_threshold))
    return {"images": count, "outputs": output_errors(cell, reference, names), **agreement}
