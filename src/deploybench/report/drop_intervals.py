"""Per evaluated cell and gated metric: the 95 % interval of its drop against PyTorch fp32, from
a paired bootstrap over the test images (`deploybench.metric_bootstrap`). The gates use it so
that a difference of one image on a small split does not fail a cell."""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench import metric_bootstrap
from deploybench.report.table import step_of
from deploybench.results import load_result

REFERENCE = ("pytorch", "fp32", "cpu")
FIELD = "metric_drop_ci95"  # in an evaluate record: {metric: [low, high]}


def _cell_key(cell: dict[str, Any]) -> tuple:
    return (cell["model"], cell.get("shape", ""), cell["backend"], cell["precision"],
            cell.get("device", "cpu"), cell.get("batch", 1))


def _evaluated(path: str) -> tuple[tuple, dict[str, dict[str, np.ndarray]]] | None:
    """(cell key, per-image statistics) of an evaluate result that has them."""
    result = load_result(path)
    if not result or result.get("status") != "ok" or not result.get("per_image"):
        return None
    stats_path = metric_bootstrap.per_image_path(path)
    if stats_path.name != result["per_image"]["file"] or not stats_path.is_file():
        return None
    return _cell_key(result["cell"]), metric_bootstrap.load(stats_path)


def drop_intervals(results: list[str]) -> dict[tuple, dict[str, list[float]]]:
    """{cell key: {metric: [low, high]}} for the evaluate results among `results` whose
    reference (PyTorch fp32 on the CPU, same model and input shape) ran on the same images."""
    evaluated = dict(filter(None, (_evaluated(p) for p in results
                                   if step_of(p) == "evaluate")))
    intervals: dict[tuple, dict[str, list[float]]] = {}
    reference_values: dict[tuple, np.ndarray] = {}  # the reference's replicates, computed once
    for key, stats in evaluated.items():
        model, shape, *cell = key
        ref_key = (model, shape, *REFERENCE, 1)
        reference = evaluated.get(ref_key)
        if reference is None or key == ref_key:
            continue
        for metric, cell_stats in stats.items():
            ref_stats = reference.get(metric)
            if ref_stats is None or not metric_bootstrap.same_images(ref_stats, cell_stats):
                continue
            draws = metric_bootstrap.draws(metric_bootstrap.images(ref_stats))
            if (ref_key, metric) not in reference_values:
                reference_values[(ref_key, metric)] = metric_bootstrap.metric_value(
                    metric, ref_stats, draws)
            interval = metric_bootstrap.drop_ci95(
                reference_values[(ref_key, metric)],
                metric_bootstrap.metric_value(metric, cell_stats, draws))
            if interval:
                intervals.setdefault(key, {})[metric] = list(interval)
    return intervals


def annotate(records: list[dict[str, Any]], results: list[str]) -> None:
    """Add each evaluate record's drop intervals (`FIELD`) in place."""
    intervals = drop_intervals(results)
    for record in records:
        if record.get("step") == "evaluate" and record.get("status") == "ok":
            found = intervals.get(_cell_key(record["cell"]))
            if found:
                record[FIELD] = found
