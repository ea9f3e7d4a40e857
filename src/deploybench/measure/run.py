"""The measure step: network latency of one cell on a real preprocessed validation image."""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.cell import CellInputs, check_input_shape, open_cell, skip_reason
from deploybench.measure.stats import latency_stats
from deploybench.measure.timing import StoppingRule, time_calls
from deploybench.results import Cell

SCOPE = "network only: host input -> backbone + neck + head -> host outputs"


def measure_cell(cell: Cell, inputs: CellInputs, rule: StoppingRule,
                 export_shape: list[int] | None) -> tuple[str, str, dict[str, Any]]:
    reason = skip_reason(cell.backend, cell.precision, inputs.device)
    if reason:
        return "skipped", reason, {}
    with open_cell(cell.backend, cell.precision, inputs) as opened:
        _, batch, _ = next(opened.adapter.batches(opened.dataset, cell.batch))
        check_input_shape(export_shape, tuple(batch.shape))
        array = np.ascontiguousarray(batch.cpu().numpy())
        samples = time_calls(lambda: opened.runner.infer(array), rule)
    stats = latency_stats(samples, cell.batch)
    return "ok", "", {"scope": SCOPE, "input_shape": list(array.shape),
                      "latency_ms": {k: v for k, v in stats.items() if k != "fps"},
                      "fps": stats["fps"], "samples_ms": samples}
