"""The evaluate step: the whole test split through pre-process -> backend -> post-process -> metric.

Pre- and post-processing and the metric are the model's own (mmdet CocoMetric, mmseg IoUMetric),
shared by every backend, so only the network differs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from deploybench.cell import CellInputs, check_input_shape, open_cell, skip_reason
from deploybench.results import Cell


def evaluate_cell(cell: Cell, inputs: CellInputs, export_shape: list[int] | None,
                  limit: int | None = None) -> tuple[str, str, dict[str, Any]]:
    reason = skip_reason(cell.backend, cell.precision, inputs.device)
    if reason:
        return "skipped", reason, {}
    start = time.perf_counter()
    with open_cell(cell.backend, cell.precision, inputs) as opened:
        adapter = opened.adapter
        evaluator = adapter.evaluator(opened.dataset)
        count = 0
        for raw, batch, samples in adapter.batches(opened.dataset, 1, limit):
            check_input_shape(export_shape, tuple(batch.shape))
            outputs = opened.runner.infer(np.ascontiguousarray(batch.cpu().numpy()))
            predictions = adapter.postprocess(outputs, batch, samples)
            evaluator.process(data_samples=predictions, data_batch=raw)
            count += len(samples)
        metrics = adapter.metric_names(evaluator.evaluate(count))
    return "ok", "", {"metrics": {k: float(v) for k, v in metrics.items()},
                      "num_images": count, "seconds": time.perf_counter() - start}
