"""The metric's own uncertainty: per-image statistics that give back pycocotools' AP and mmseg's
mIoU exactly, resampled images that behave as copies of images, and gates that use the
interval."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from deploybench import metric_bootstrap as mb
from deploybench.report.gates import gate_results


def _dataset(images: list[int], seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO ground truth and detections; `images` lists the source image of each image id,
    so that an image can appear twice (the same objects and detections) or not at all."""
    rng = np.random.default_rng(seed)
    sources = {}
    for source in range(6):
        objects = []
        for _ in range(rng.integers(0, 5)):
            x, y, w, h = rng.uniform(0, 80, 2).tolist() + rng.uniform(5, 30, 2).tolist()
            objects.append((int(rng.integers(1, 3)), [x, y, w, h]))
        dets = []
        for category, box in objects:  # found, shifted a little, sometimes missed
            if rng.random() < 0.8:
                shift = rng.normal(0, 2, 4)
                dets.append((category, [box[0] + shift[0], box[1] + shift[1],
                                        box[2] + abs(shift[2]), box[3] + abs(shift[3])],
                             float(rng.uniform(0.3, 1.0))))
        for _ in range(rng.integers(0, 4)):  # false positives
            dets.append((int(rng.integers(1, 3)), rng.uniform(0, 80, 2).tolist()
                         + rng.uniform(5, 30, 2).tolist(), float(rng.uniform(0.05, 0.9))))
        sources[source] = (objects, dets)
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"},
                                                          {"id": 2, "name": "b"}]}
    results = []
    for image_id, source in enumerate(images, start=1):
        gt["images"].append({"id": image_id, "width": 120, "height": 120})
        objects, dets = sources[source]
        for category, box in objects:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id,
                                      "category_id": category, "bbox": box,
                                      "area": box[2] * box[3], "iscrowd": 0})
        results += [{"image_id": image_id, "category_id": c, "bbox": b, "score": s}
                    for c, b, s in dets]
    return gt, results


def _coco_eval(gt: dict, results: list[dict]) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.params.maxDets = [100, 300, 1000]  # as mmdet's CocoMetric
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def test_per_image_ap_is_pycocotools_ap() -> None:
    evaluation = _coco_eval(*_dataset([0, 1, 2, 3, 4, 5]))
    stats = mb.coco_image_stats(evaluation)
    assert mb.coco_ap(stats, np.ones(6))[0] == pytest.approx(evaluation.stats[0], abs=1e-12)


def test_a_drawn_image_counts_as_copies_of_it() -> None:
    """Weights (2, 1, 0, 1, 3, 1) give the AP of a split where image 0 is there twice, image 2
    not at all and image 4 three times: what a bootstrap replicate stands for."""
    stats = mb.coco_image_stats(_coco_eval(*_dataset([0, 1, 2, 3, 4, 5])))
    copies = _coco_eval(*_dataset([0, 0, 1, 3, 4, 4, 4, 5]))
    weighted = mb.coco_ap(stats, np.array([[2, 1, 0, 1, 3, 1], [1, 1, 1, 1, 1, 1]]))
    assert weighted[0] == pytest.approx(copies.stats[0], abs=1e-9)
    assert weighted[0] != pytest.approx(weighted[1], abs=1e-3)  # the weights did something


def test_per_image_miou_is_mmseg_miou() -> None:
    from mmseg.evaluation.metrics import IoUMetric

    rng = np.random.default_rng(0)
    classes = 4
    per_image = []
    for _ in range(5):
        label = rng.integers(0, classes - 1, (20, 20))  # class 3 never in the labels
        pred = np.where(rng.random((20, 20)) < 0.8, label, rng.integers(0, classes, (20, 20)))
        intersect = np.bincount(pred[pred == label], minlength=classes)
        area_pred, area_label = (np.bincount(pred.ravel(), minlength=classes),
                                 np.bincount(label.ravel(), minlength=classes))
        per_image.append((intersect, area_pred + area_label - intersect))
    stats = {"intersect": np.stack([p[0] for p in per_image]),
             "union": np.stack([p[1] for p in per_image])}
    import torch

    total = IoUMetric.total_area_to_metrics(
        *(torch.tensor(x) for x in (stats["intersect"].sum(0), stats["union"].sum(0),
                                    np.zeros(classes), np.ones(classes))), ["mIoU"])
    expected = float(np.nanmean(total["IoU"]) * 100)
    assert mb.miou(stats, np.ones(5))[0] == pytest.approx(expected, rel=1e-6)  # mmseg: float32


def test_the_paired_interval_is_zero_for_the_same_predictions_and_covers_a_drop() -> None:
    reference = mb.coco_image_stats(_coco_eval(*_dataset([0, 1, 2, 3, 4, 5])))
    draws = mb.draws(6)
    same = mb.metric_value("bbox_mAP", reference, draws)
    assert mb.drop_ci95(same, same) == (0.0, 0.0)
    gt, results = _dataset([0, 1, 2, 3, 4, 5])
    worse = _coco_eval(gt, [r for r in results if r["image_id"] != 2])  # image 2 lost its boxes
    cell = mb.coco_image_stats(worse)
    low, high = mb.drop_ci95(same, mb.metric_value("bbox_mAP", cell, draws))
    drop = _coco_eval(gt, results).stats[0] - worse.stats[0]
    assert drop > 0 and low <= drop <= high and high - low > 0.01


def _gates(low: float, high: float, reference_run: str = "r1") -> pd.DataFrame:
    rows = [{"model": "m", "resolution": "160x160", "backend": "pytorch", "device": "cpu",
             "precision": "fp32", "bbox_mAP": 0.80, "run": reference_run},
            {"model": "m", "resolution": "160x160", "backend": "onnxruntime", "device": "cpu",
             "precision": "int8", "bbox_mAP": 0.77, "run": "r1",
             "bbox_mAP_drop_ci95_low": low, "bbox_mAP_drop_ci95_high": high}]
    return gate_results(pd.DataFrame(rows), {"bbox_mAP": {"int8": 0.02}})


def test_a_drop_beyond_the_gate_fails_only_beyond_the_metric_noise() -> None:
    noisy = _gates(0.01, 0.05).iloc[0]  # drop 0.03 > 0.02, but 0.01 is inside the tolerance
    assert noisy.passed and noisy.within_noise and noisy.drop_ci95 == (0.01, 0.05)
    clear = _gates(0.025, 0.035).iloc[0]
    assert not clear.passed and not clear.within_noise
    # An interval drawn against another run's reference does not speak for this one.
    other = _gates(0.01, 0.05, reference_run="r0").iloc[0]
    assert not other.passed and other.drop_ci95 is None
