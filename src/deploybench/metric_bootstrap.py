"""The metric's own uncertainty: how much a cell's accuracy drop against PyTorch fp32 could move
if the test split had been another draw of images of the same kind.

The evaluate step keeps, per image, what the model's own metric summed over the split: for COCO
AP, each image's detections (score, and whether each matched a ground-truth object at each IoU
threshold, from the very `COCOeval` mmdet's CocoMetric ran) and its ground-truth count; for mIoU,
each image's per-class intersection and union. The report resamples the images (a paired
bootstrap: the same resampled images for the cell and the reference) and recomputes both
metrics, so a gate can tell a drop beyond its tolerance from a one-image difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.atomic import atomic_path
from deploybench.metrics import METRICS

REPLICATES = 1000
SEED = 0
# The metric key (as in the results) each kind of per-image statistics recomputes.
COCO_METRICS = {m.bootstrap: m.name for m in METRICS.values() if m.bootstrap in ("bbox", "segm")}
MIOU = next(m.name for m in METRICS.values() if m.bootstrap == "iou")


@contextmanager
def captured(evaluator: Any) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Around `evaluator.evaluate(...)`: the per-image statistics of its metrics, by metric key
    (filled when the block ends)."""
    stats: dict[str, dict[str, np.ndarray]] = {}
    for metric in evaluator.metrics:
        if type(metric).__name__ == "IoUMetric" and metric.results:
            # (area_intersect, area_union, area_pred, area_label) per image, read before
            # evaluate() clears them.
            stats[MIOU] = {"intersect": np.stack([np.asarray(r[0]) for r in metric.results]),
                           "union": np.stack([np.asarray(r[1]) for r in metric.results])}
    with _recorded_coco_evals() as coco_evals:
        yield stats
    for coco_eval in coco_evals:
        key = COCO_METRICS.get(coco_eval.params.iouType)
        if key and coco_eval.evalImgs:
            stats[key] = coco_image_stats(coco_eval)


@contextmanager
def _recorded_coco_evals() -> Iterator[list[Any]]:
    """Every COCOeval that mmdet's CocoMetric makes meanwhile: the evaluation it reports."""
    try:
        import mmdet.evaluation.metrics.coco_metric as coco_metric
    except ImportError:
        yield []
        return
    original, made = coco_metric.COCOeval, []

    class Recording(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    coco_metric.COCOeval = Recording
    try:
        yield made
    finally:
        coco_metric.COCOeval = original


def coco_image_stats(coco_eval: Any) -> dict[str, np.ndarray]:
    """Per category, the detections of every image in pycocotools' own order (score, stable),
    whether each is a true or false positive at each IoU threshold, its image; per category and
    image the ground-truth objects that count. Area range "all", the maxDets of stats[0]."""
    p = coco_eval.params
    cats, areas, images = len(p.catIds), len(p.areaRng), len(p.imgIds)
    area = p.areaRngLbl.index("all")
    max_det = p.maxDets[2] if len(p.maxDets) > 2 else p.maxDets[-1]  # summarize()'s stats[0]
    stats: dict[str, np.ndarray] = {"img_ids": np.asarray(p.imgIds),
                                    "iou_thrs": np.asarray(p.iouThrs),
                                    "rec_thrs": np.asarray(p.recThrs)}
    ground_truth = np.zeros((cats, images), np.int64)
    thresholds = len(p.iouThrs)
    for k in range(cats):
        scores, image, tp, fp = [], [], [], []
        for i in range(images):
            e = coco_eval.evalImgs[k * areas * images + area * images + i]
            if e is None:
                continue
            ground_truth[k, i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            matched = np.asarray(e["dtMatches"])[:, :max_det].reshape(thresholds, -1) != 0
            ignored = np.asarray(e["dtIgnore"])[:, :max_det].reshape(thresholds, -1).astype(bool)
            scores.append(np.asarray(e["dtScores"][:max_det], np.float64))
            image.append(np.full(len(scores[-1]), i, np.int64))
            tp.append(matched & ~ignored)
            fp.append(~matched & ~ignored)
        all_scores = np.concatenate(scores) if scores else np.zeros(0)
        order = np.argsort(-all_scores, kind="mergesort")  # as COCOeval.accumulate
        # The detections after the last true positive change no AP, however the images are
        # drawn (the recall stays, the precision only falls): left out, they cost nothing.
        hits = np.concatenate(tp, axis=1)[:, order].any(axis=0) if tp else np.zeros(0, bool)
        order = order[: (np.flatnonzero(hits)[-1] + 1) if hits.any() else 0]
        stats[f"image_{k}"] = (np.concatenate(image) if image else np.zeros(0, np.int64))[order]
        stats[f"tp_{k}"] = (np.concatenate(tp, axis=1) if tp
                            else np.zeros((thresholds, 0), bool))[:, order]
        stats[f"fp_{k}"] = (np.concatenate(fp, axis=1) if fp
                            else np.zeros((thresholds, 0), bool))[:, order]
    stats["ground_truth"] = ground_truth
    return stats


def _counts_at_hits(stats: dict[str, np.ndarray], k: int, t: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(image x true positive) matrices: how many true and false positives of each image come
    up to each true positive at IoU threshold t, in score order. A replicate's cumulative sums
    at the true positives are then its image weights times these (a matrix product)."""
    image, tp, fp = stats[f"image_{k}"], stats[f"tp_{k}"][t], stats[f"fp_{k}"][t]
    images, hits = len(stats["ground_truth"][k]), np.flatnonzero(tp)

    def counts(positions: np.ndarray) -> np.ndarray:
        # each detection counts from the first true positive at or after it onwards
        first = np.searchsorted(hits, positions, side="left")
        keep = first < len(hits)
        added = np.bincount(image[positions[keep]] * len(hits) + first[keep],
                            minlength=images * len(hits)).reshape(images, len(hits))
        return np.cumsum(added, axis=1).astype(np.float64)

    return counts(hits), counts(np.flatnonzero(fp))


def coco_ap(stats: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """COCO AP (IoU 0.50:0.95, all areas) of the images weighted by each row of `weights`
    (how often each image is drawn); with every weight 1 it is COCOeval's stats[0]. A drawn
    image counts as that many copies of it: its detections enter the cumulative sums that many
    times.

    As COCOeval.accumulate, but evaluated at the true positives only: between two of them the
    recall stays and the precision only falls, so the interpolated precision at every recall
    threshold is one of a true positive's (a detection whose image was not drawn adds nothing
    and changes nothing)."""
    weights = np.atleast_2d(weights).astype(np.float64)
    ground_truth, rec_thrs = stats["ground_truth"], stats["rec_thrs"]
    rows, recalls = len(weights), len(rec_thrs)
    total, count = np.zeros(rows), np.zeros(rows)
    for k in range(len(ground_truth)):
        positives = weights @ ground_truth[k]
        counted = positives > 0  # COCOeval leaves a category with no object out (-1)
        thresholds = len(stats[f"tp_{k}"])
        count += counted * thresholds * recalls
        for t in range(thresholds):
            tp_counts, fp_counts = _counts_at_hits(stats, k, t)
            if tp_counts.shape[1] == 0:
                continue  # no true positive: precision 0 at every recall
            tp_sum, fp_sum = weights @ tp_counts, weights @ fp_counts
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = tp_sum / positives[:, None]
            precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            precision = np.flip(np.maximum.accumulate(np.flip(precision, 1), axis=1), 1)
            # At recall threshold r: the interpolated precision of the first true positive
            # with recall >= r. True positive j reaches the thresholds below `bucket[j]`;
            # buckets rise with j, so that first one's index is the number of true positives
            # whose bucket is <= the threshold's index.
            hits = tp_sum.shape[1]
            bucket = np.searchsorted(rec_thrs, recall, side="right")
            flat = (np.arange(rows)[:, None] * (recalls + 1) + bucket).ravel()
            counts = np.bincount(flat, minlength=rows * (recalls + 1)).reshape(rows, recalls + 1)
            first = np.cumsum(counts, axis=1)[:, :recalls]
            q = np.take_along_axis(precision, np.minimum(first, hits - 1), axis=1)
            q[first >= hits] = 0.0
            total += np.where(counted, q.sum(axis=1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def miou(stats: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """mmseg's mIoU (percent) of the images weighted by each row of `weights`."""
    weights = np.atleast_2d(weights).astype(np.float64)
    intersect, union = weights @ stats["intersect"], weights @ stats["union"]
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = intersect / union  # nan: a class with no pixel in the drawn images (mmseg too)
    defined = np.isfinite(iou)
    classes = defined.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(classes > 0, 100 * np.where(defined, iou, 0.0).sum(axis=1) / classes,
                        np.nan)


def metric_value(key: str, stats: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The metric under each row of `weights`; one row of ones: the split's own value."""
    return miou(stats, weights) if key == MIOU else coco_ap(stats, weights)


def images(stats: dict[str, np.ndarray]) -> int:
    return len(stats["img_ids"]) if "img_ids" in stats else len(stats["intersect"])


def same_images(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Both scored on the same images, in the same order (a paired bootstrap needs it)."""
    if images(a) != images(b) or images(a) == 0:
        return False
    return "img_ids" not in a or np.array_equal(a["img_ids"], b["img_ids"])


def draws(n: int, replicates: int = REPLICATES, seed: int = SEED) -> np.ndarray:
    """How often each of n images is drawn, per bootstrap replicate (fixed seed: the same
    resamples for every cell of a model, so that the reference's are computed once)."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=replicates)


def drop_ci95(reference: np.ndarray, cell: np.ndarray) -> tuple[float, float] | None:
    """95 % percentile interval of (reference - cell) over paired replicates."""
    drops = reference - cell
    drops = drops[np.isfinite(drops)]
    if drops.size < len(reference) // 2:
        return None
    low, high = np.percentile(drops, [2.5, 97.5])
    return float(low), float(high)


def per_image_path(result: Path | str) -> Path:
    """Where the evaluate step keeps a result's per-image statistics: beside it."""
    result = Path(result)
    return result.with_name(result.name.removesuffix(".json") + ".images.npz")


def save(path: Path | str, stats: dict[str, dict[str, np.ndarray]]) -> None:
    """One npz (atomically), arrays named `<metric key>/<array>`; empty where none."""
    arrays = {f"{key}/{name}": value for key, group in stats.items()
              for name, value in group.items()}
    with atomic_path(path, suffix=".npz") as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)


def load(path: Path | str) -> dict[str, dict[str, np.ndarray]]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path) as data:
        for name in data.files:
            key, _, array = name.partition("/")
            stats.setdefault(key, {})[array] = data[name]
    return stats
