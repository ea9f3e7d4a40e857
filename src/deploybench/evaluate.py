"""The evaluate step: the whole test split through pre-process -> backend -> post-process -> metric.

Pre- and post-processing and the metric are the model's own (mmdet CocoMetric, mmseg IoUMetric),
shared by every backend, so only the network differs. The first images' outputs are also compared
with the PyTorch fp32 reference (`parity`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploybench import metric_bootstrap
from deploybench.backends import skip_reason
from deploybench.cell import CellInputs, OpenCell, check_input_shape, open_cell
from deploybench.data.identity import dataset_identity
from deploybench.parity import Sample, compare, load_reference, save_reference
from deploybench.results import Cell


@dataclass(frozen=True)
class ParitySettings:
    reference: Path | None = None  # the reference file; None: no comparison
    images: int = 20
    iou: float = 0.5
    score_threshold: float = 0.3


def _predict(opened: OpenCell, export_shape: list[int] | None, limit: int | None,
             keep: int, evaluator: Any = None) -> tuple[int, list[Sample]]:
    """Run the split; feed the evaluator; keep the first `keep` images' outputs and predictions."""
    adapter, count, kept = opened.adapter, 0, []
    for raw, batch, samples in adapter.batches(opened.dataset, 1, limit):
        check_input_shape(export_shape, tuple(batch.shape))
        outputs = adapter.infer(opened.runner.infer, batch)
        predictions = adapter.postprocess(outputs, batch, samples)
        if evaluator is not None:
            evaluator.process(data_samples=predictions, data_batch=raw)
        if count < keep:
            kept.append(([np.asarray(o) for o in outputs],
                         adapter.prediction_arrays(predictions[0])))
        count += len(samples)
    return count, kept


def _reproduced(per_image: dict[str, dict[str, np.ndarray]], metrics: dict[str, float],
                count: int) -> dict[str, dict[str, np.ndarray]]:
    """The per-image statistics that give back the metric as reported (to its rounding): only
    those may stand for it in the report's bootstrap."""
    kept = {}
    for key, stats in per_image.items():
        value = metrics.get(key)
        again = float(metric_bootstrap.metric_value(key, stats, np.ones(count))[0])
        tolerance = 0.006 if key == metric_bootstrap.MIOU else 0.0006  # mmdet/mmseg rounding
        if value is not None and metric_bootstrap.images(stats) == count and \
                abs(again - value) <= tolerance:
            kept[key] = stats
        else:
            print(f"warning: per-image {key} gives {again:.4f}, the metric {value}; the gate "
                  "goes without the metric's bootstrap interval")
    return kept


def evaluate_cell(cell: Cell, inputs: CellInputs, export_shape: list[int] | None,
                  limit: int | None = None, parity: ParitySettings = ParitySettings(),
                  per_image_out: Path | None = None) -> tuple[str, str, dict[str, Any]]:
    """`per_image_out`: where the metric's per-image statistics go (an empty file where the
    cell did not run), for the report's bootstrap of the accuracy drop."""
    reason = skip_reason(cell.backend, cell.precision, inputs.device)
    if per_image_out:  # empty until the cell has run (the output exists for a skipped cell)
        metric_bootstrap.save(per_image_out, {})
    if reason:
        return "skipped", reason, {}
    start = time.perf_counter()
    keep = parity.images if parity.reference else 0
    with open_cell(cell.backend, cell.precision, inputs) as opened:
        evaluator = opened.adapter.evaluator(opened.dataset)
        count, kept = _predict(opened, export_shape, limit, keep, evaluator)
        if count < len(opened.dataset):
            opened.adapter.score_only_processed(evaluator)
        with metric_bootstrap.captured(evaluator) as per_image:
            raw = evaluator.evaluate(count)
        metrics = opened.adapter.metric_names(raw)
        split = len(opened.dataset)
        dataset = dataset_identity(opened.dataset)
        placement = opened.adapter.placement()
    data: dict[str, Any] = {"metrics": {k: float(v) for k, v in metrics.items()},
                            "num_images": count, "split_images": split, "dataset": dataset,
                            "seconds": time.perf_counter() - start, **placement}
    if per_image_out:
        per_image = _reproduced(per_image, data["metrics"], count)
        metric_bootstrap.save(per_image_out, per_image)
        data["per_image"] = {"file": Path(per_image_out).name, "metrics": sorted(per_image)}
    if cell.task != "segmentation" and "bbox_mAP" not in metrics:
        # mmdet's CocoMetric returns nothing when no prediction passed the score threshold: an
        # explicit zero, not a row that vanishes while the gates say "passed".
        zero = ["bbox_mAP", "bbox_mAP_50"] + (["segm_mAP"] if cell.task != "detection" else [])
        data["metrics"] |= dict.fromkeys(zero, 0.0)
        data["no_detections"] = True
    if parity.reference:
        reference, names = load_reference(parity.reference)
        data["parity"] = {"reference": "pytorch fp32 on cpu",
                          **compare(cell.task, kept, reference, names, parity.iou,
                                    parity.score_threshold)}
    return "ok", "", data


def write_reference(inputs: CellInputs, export_shape: list[int] | None, images: int,
                    out: Path) -> dict[str, Any]:
    """PyTorch fp32 outputs and predictions on the first `images` test images."""
    with open_cell("pytorch", "fp32", inputs) as opened:
        count, kept = _predict(opened, export_shape, images, images)
        _, first, _ = next(opened.adapter.batches(opened.dataset, 1))
        names = opened.adapter.output_names(first)
    save_reference(out, kept, names)
    return {"reference": str(out), "images": count, "outputs": names}
