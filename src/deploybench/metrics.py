"""What the project knows about each accuracy metric, stated once: its scale, how the docs
write it, whether gates judge it, which per-image statistics bootstrap its drop, and its name
in the model zoo's metafiles. Evaluate, the gates, the tables, the summary, the figures,
compare and the zoo read it here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # the codebase's short key (mmdet CocoMetric, mmseg IoUMetric): a results column
    note: str  # what it is, with its scale, for the accuracy table
    fmt: str  # a value in the detail tables and compare
    summary_fmt: str = ""  # on the front page, where it is a task's headline metric
    drop_fmt: str = "+.4f"  # a drop in the gates table
    label: str = ""  # the figures' axis
    gated: bool = False  # gates judge its drop against PyTorch fp32
    # The per-image statistics its drop's bootstrap recomputes it from: a COCOeval iouType
    # ("bbox", "segm") or "iou" (mmseg's per-image intersections and unions); "" for none.
    bootstrap: str = ""
    zoo_name: str = ""  # its name in a model-zoo metafile's Results.Metrics
    zoo_scale: float = 1.0  # metafile value x this = ours (the zoo gives AP in %)
    higher_is_better: bool = True


# In this order in results.csv and the accuracy table.
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("bbox_mAP", "COCO box AP, 0-1", ".3f", ".3f", label="COCO box AP", gated=True,
           bootstrap="bbox", zoo_name="box AP", zoo_scale=0.01),
    Metric("bbox_mAP_50", "COCO box AP@0.5, 0-1", ".3f"),
    Metric("segm_mAP", "COCO mask AP, 0-1", ".3f", ".3f", label="COCO mask AP", gated=True,
           bootstrap="segm", zoo_name="mask AP", zoo_scale=0.01),
    Metric("mIoU", "mean IoU, %", ".2f", ".1f", "+.2f", label="mIoU (%)", gated=True,
           bootstrap="iou", zoo_name="mIoU"),
    Metric("aAcc", "pixel accuracy, %", ".2f", gated=True),
    Metric("mAcc", "mean class accuracy, %", ".2f"),
)}
# Each task's headline metric: the front page's, the figures'.
TASK_METRIC = {"detection": "bbox_mAP", "instance_segmentation": "segm_mAP",
               "segmentation": "mIoU"}


def gated() -> list[str]:
    return [m.name for m in METRICS.values() if m.gated]


def bootstrapped() -> list[str]:
    """The metrics whose drop against PyTorch fp32 gets a paired bootstrap interval."""
    return [m.name for m in METRICS.values() if m.bootstrap]


def published() -> list[str]:
    """The metrics a model zoo publishes (and a config's `published` may give)."""
    return [m.name for m in METRICS.values() if m.zoo_name]
