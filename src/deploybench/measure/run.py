"""The measure step: network latency of one cell on a real preprocessed validation image, then
the end-to-end stage breakdown, with the machine's state and the process's peak memory."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.backends import get_backend, skip_reason
from deploybench.errors import UserError
from deploybench.measure.machine_state import (
    GpuSampler,
    OtherLoad,
    cpu_state,
    peak_rss_mib,
    reference_workload_ms,
)
from deploybench.measure.stats import latency_stats
from deploybench.measure.timing import StoppingRule, time_calls
from deploybench.results import Cell

if TYPE_CHECKING:
    from deploybench.backends.base import Runner
    from deploybench.cell import CellInputs

SCOPE = ("network only: input already on the backend's device -> backbone + neck + head -> "
         "outputs on the device, synchronized")
END_TO_END = ("end to end: image file -> decode -> the model's test pipeline and data "
              "preprocessor -> to the device -> network -> to the host -> the model's "
              "post-processing (dataset records and annotation loading excluded)")


def _torch_cuda_peak_mib(device: str) -> float | None:
    if device != "cuda" or "torch" not in sys.modules:
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


# Backends that run a file made by the export or build step: a repeat without the stage
# breakdown times them on the export's saved input, without importing mmdet/mmseg or building
# the model (most of a measure process's start-up).
FILE_BACKENDS = ("onnxruntime", "onnxruntime_trt", "openvino", "tensorrt")


def _time_network(runner: Runner, batch: np.ndarray, rule: StoppingRule, threads: int
                  ) -> dict[str, Any]:
    """The timed window: first call apart, warm-up, samples; the machine around it."""
    state: dict[str, Any] = {"before": cpu_state()}
    device_input = runner.to_device(np.ascontiguousarray(batch))

    def call() -> None:
        runner.run(device_input)
        runner.synchronize()

    # The first call apart: it includes tracing (TorchScript), compiling (torch.compile) and
    # lazy initialization, which the warm-up then leaves out of the samples.
    start = time.perf_counter()
    call()
    first_call = time.perf_counter() - start
    # The machine's noise floor around the window: a fixed kernel before and after, and the
    # CPU time other processes took during it.
    reference_before = reference_workload_ms()
    with GpuSampler() as gpu, OtherLoad() as other:
        samples = time_calls(call, rule)
    state["reference_ms"] = {"before": reference_before, "after": reference_workload_ms()}
    state["other_load"] = other.summary()
    state["after"] = cpu_state()
    return {"first_call_seconds": first_call, "samples_ms": samples,
            "machine_state": {**state, "gpu": gpu.summary()}}


def _result(cell: Cell, timed: dict[str, Any], input_shape: list[int], device: str,
            stages: dict[str, Any] | None) -> tuple[str, str, dict[str, Any]]:
    stats = latency_stats(timed["samples_ms"], cell.batch)
    gpu_state = timed["machine_state"]["gpu"]
    memory = {"peak_rss_mib": peak_rss_mib(),
              "torch_cuda_max_allocated_mib": _torch_cuda_peak_mib(device),
              "device_used_mib": gpu_state["memory_used_mib_max"] if gpu_state else None}
    return "ok", "", {"scope": SCOPE, "input_shape": input_shape,
                      "first_call_seconds": timed["first_call_seconds"],
                      "latency_ms": {k: v for k, v in stats.items() if k != "fps"},
                      "fps": stats["fps"], "samples_ms": timed["samples_ms"],
                      "stages": {"scope": END_TO_END, **stages} if stages else None,
                      "memory": memory, "machine_state": timed["machine_state"]}


def measure_saved_input(cell: Cell, artifact: Path, saved_input: Path, rule: StoppingRule,
                        threads: int) -> tuple[str, str, dict[str, Any]]:
    """Network-only latency of a file backend on the export's saved input (its first
    `batch` images): what `measure_cell` times, without the model or the dataset."""
    reason = skip_reason(cell.backend, cell.precision, cell.device)
    if reason:
        return "skipped", reason, {}
    if not saved_input.is_file():
        raise UserError(f"{saved_input} is missing; run the pipeline's export step")
    saved = np.load(saved_input)
    if len(saved) < cell.batch:
        raise UserError(f"batch {cell.batch} needs at least {cell.batch} saved inputs; "
                        f"{saved_input} has {len(saved)}: rerun the export")
    runner = get_backend(cell.backend).load(None, artifact, cell.precision, cell.device,
                                            threads)
    try:
        timed = _time_network(runner, saved[: cell.batch], rule, threads)
    finally:
        runner.close()
    return _result(cell, timed, list(saved[: cell.batch].shape), cell.device, None)


def measure_cell(cell: Cell, inputs: CellInputs, rule: StoppingRule,
                 export_shape: list[int] | None, stage_images: int = 20
                 ) -> tuple[str, str, dict[str, Any]]:
    from deploybench.cell import check_input_shape, open_cell
    from deploybench.measure.stages import time_stages

    reason = skip_reason(cell.backend, cell.precision, inputs.device)
    if reason:
        return "skipped", reason, {}
    with open_cell(cell.backend, cell.precision, inputs) as opened:
        if len(opened.dataset) < cell.batch:
            raise UserError(f"batch {cell.batch} needs at least {cell.batch} test images; the "
                            f"dataset has {len(opened.dataset)}: lower matrix.batches or use a "
                            "larger split")
        _, batch, _ = next(opened.adapter.batches(opened.dataset, cell.batch))
        check_input_shape(export_shape, tuple(batch.shape))
        graph_input = opened.adapter.graph_input(batch)  # slide inference: one crop
        runner = opened.runner
        timed = _time_network(runner, graph_input.cpu().numpy(), rule, inputs.threads)
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
        crops = opened.adapter.crops(batch[:1])
        placement = opened.adapter.placement()
    result = _result(cell, timed, list(graph_input.shape), inputs.device, stages)
    result[2].update(placement)
    if crops > 1:  # the latency is per crop; the stage breakdown's network is per image
        result[2]["crops_per_image"] = crops
    return result
