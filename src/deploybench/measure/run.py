"""The measure step: network latency of one cell on a real preprocessed validation image."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from deploybench.cell import CellInputs, check_input_shape, open_cell, skip_reason
from deploybench.measure.stats import latency_stats
from deploybench.measure.timing import StoppingRule, time_calls
from deploybench.results import Cell

SCOPE = ("network only: input already on the backend's device -> backbone + neck + head -> "
         "outputs on the device, synchronized")


def measure_cell(cell: Cell, inputs: CellInputs, rule: StoppingRule,
                 export_shape: list[int] | None) -> tuple[str, str, dict[str, Any]]:
    reason = skip_reason(cell.backend, cell.precision, inputs.device)
    if reason:
        return "skipped", reason, {}
    with open_cell(cell.backend, cell.precision, inputs) as opened:
        _, batch, _ = next(opened.adapter.batches(opened.dataset, cell.batch))
        check_input_shape(export_shape, tuple(batch.shape))
        runner = opened.runner
        device_input = runner.to_device(np.ascontiguousarray(batch.cpu().numpy()))

        def call() -> None:
            runner.run(device_input)
            runner.synchronize()

        # The first call apart: it includes tracing (TorchScript), compiling (torch.compile) and
        # lazy initialization, which the warm-up then leaves out of the samples.
        start = time.perf_counter()
        call()
        first_call = time.perf_counter() - start
        samples = time_calls(call, rule)
    stats = latency_stats(samples, cell.batch)
    return "ok", "", {"scope": SCOPE, "input_shape": list(batch.shape),
                      "first_call_seconds": first_call,
                      "latency_ms": {k: v for k, v in stats.items() if k != "fps"},
                      "fps": stats["fps"], "samples_ms": samples}
