"""The measure step: network latency of one cell on a real preprocessed validation image, then
the end-to-end stage breakdown, with the machine's state and the process's peak memory."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from deploybench.cell import CellInputs, check_input_shape, open_cell, skip_reason
from deploybench.errors import UserError
from deploybench.measure.machine_state import GpuSampler, cpu_state, peak_rss_mib
from deploybench.measure.stages import time_stages
from deploybench.measure.stats import latency_stats
from deploybench.measure.timing import StoppingRule, time_calls
from deploybench.results import Cell

SCOPE = ("network only: input already on the backend's device -> backbone + neck + head -> "
         "outputs on the device, synchronized")
END_TO_END = ("end to end: image file -> decode -> the model's test pipeline and data "
              "preprocessor -> to the device -> network -> to the host -> the model's "
              "post-processing (dataset records and annotation loading excluded)")


def _torch_cuda_peak_mib(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def measure_cell(cell: Cell, inputs: CellInputs, rule: StoppingRule,
                 export_shape: list[int] | None, stage_images: int = 20
                 ) -> tuple[str, str, dict[str, Any]]:
    reason = skip_reason(cell.backend, cell.precision, inputs.device)
    if reason:
        return "skipped", reason, {}
    state: dict[str, Any] = {"before": cpu_state()}
    with open_cell(cell.backend, cell.precision, inputs) as opened:
        if len(opened.dataset) < cell.batch:
            raise UserError(f"batch {cell.batch} needs at least {cell.batch} test images; the "
                            f"dataset has {len(opened.dataset)}: lower matrix.batches or use a "
                            "larger split")
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
        with GpuSampler() as gpu:
            samples = time_calls(call, rule)
        state["after"] = cpu_state()
        stages: dict[str, Any] = {}
        if cell.batch == 1 and stage_images > 0:
            shared = runner.share_cores()
            if shared:
                stages["runner_settings"] = shared
            variants = [("reference", "reference", False), ("tensor", "tensor", False)]
            if opened.adapter.has_masks:
                variants.append(("tensor_native_masks", "tensor", True))
            for name, path, native in variants:
                try:
                    stages[name] = time_stages(opened.adapter, opened.dataset, runner,
                                               stage_images, min(rule.warmup_iters, stage_images),
                                               path, inputs.device, native)
                except UserError as err:  # a transform the tensor path does not implement
                    stages[name] = {"path": path, "skipped": str(err)}
    stats = latency_stats(samples, cell.batch)
    gpu_state = gpu.summary()
    memory = {"peak_rss_mib": peak_rss_mib(),
              "torch_cuda_max_allocated_mib": _torch_cuda_peak_mib(inputs.device),
              "device_used_mib": gpu_state["memory_used_mib_max"] if gpu_state else None}
    return "ok", "", {"scope": SCOPE, "input_shape": list(batch.shape),
                      "first_call_seconds": first_call,
                      "latency_ms": {k: v for k, v in stats.items() if k != "fps"},
                      "fps": stats["fps"], "samples_ms": samples,
                      "stages": {"scope": END_TO_END, **stages} if stages else None,
                      "memory": memory, "machine_state": {**state, "gpu": gpu_state}}
