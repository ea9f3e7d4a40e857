"""End-to-end latency broken into stages, image by image, with either preprocessing path:
the model's reference pipeline (mmcv, numpy, CPU) or the tensor path (torch ops on the device,
`deploybench.preprocess.tensor_path`; there the uint8 upload counts as to_device).

decode      LoadImageFromFile (file read + image decode)
preprocess  the rest of the test pipeline, collation and the model's data preprocessor
to_device   host batch -> the backend's device (synchronized)
network     backbone + neck + head on the device (synchronized), as the network-only latency
to_host     outputs -> host arrays
postprocess the model's own decoding (`predict_by_feat`: boxes + NMS, or resize + argmax)

Two-stage detectors split their post-processing further (the adapter's `postprocess_stages`):
proposals (RPN decode + NMS), roi_bbox (RoIAlign + bbox head + NMS), roi_mask (RoIAlign + mask
head), mask_post (the paste into full-image masks); `postprocess` keeps the rest. Each stage is
charged its own time only (a stage timed inside another is taken out of the outer one).

The dataset's bookkeeping (copying its record of the image, `get_data_info`) and annotation
loading (LoadAnnotations) only serve the metric, so they run untimed. End-to-end is the wall time
of one image, less those; the stages add up to it up to the cost of reading the clock.
*Forward + post-processing* is end to end less decode, preprocess and to_device, image by
image: mmsegmentation's inference time (mmdetection's overall fps is end to end's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from mmengine.dataset import pseudo_collate

from deploybench.backends.base import Runner
from deploybench.measure.stats import latency_stats
from deploybench.models.adapter import ModelAdapter
from deploybench.preprocess.tensor_path import TensorPreprocessor

STAGES = ("decode", "preprocess", "to_device", "network", "to_host", "postprocess")
# What mmsegmentation's inference time leaves out (its benchmark starts the clock after the
# data loader and the data preprocessor): the rest, per image, is `forward_post`.
LOADING = ("decode", "preprocess", "to_device")


def _kind(transform: Any) -> str:
    name = type(transform).__name__
    if name.startswith("LoadAnnotations"):
        return "untimed"
    return "decode" if name.startswith("LoadImage") else "preprocess"


def stage_names(adapter: ModelAdapter) -> tuple[str, ...]:
    """The stages of this adapter's images, in the order they run."""
    return (*STAGES[:-1], *adapter.postprocess_stages, STAGES[-1])


class _Clock:
    """Accumulates per-stage milliseconds of one image, each stage its own time only."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.times = dict.fromkeys(stages, 0.0)
        self.untimed = 0.0
        self._inner = 0.0  # time of the stages timed inside the one running

    def __call__(self, stage: str, fn: Callable[[], Any]) -> Any:
        outer_inner, self._inner = self._inner, 0.0
        t0 = time.perf_counter_ns()
        try:
            value = fn()
        finally:
            elapsed = (time.perf_counter_ns() - t0) / 1e6
            own = elapsed - self._inner
            self._inner = outer_inner + elapsed
            if stage == "untimed":
                self.untimed += own
            else:
                self.times[stage] += own
        return value


def _reference_input(clock: _Clock, adapter: ModelAdapter, dataset: Any, index: int) -> tuple:
    """mmcv's transforms in numpy on the CPU, then the data preprocessor: a host batch."""
    results = clock("untimed", lambda: dataset.get_data_info(index))
    for transform in dataset.pipeline.transforms:
        results = clock(_kind(transform), lambda t=transform, r=results: t(r))
    data = clock("preprocess", lambda: adapter.preprocess(pseudo_collate([results])))
    batch = data["inputs"]
    array = clock("preprocess", lambda: np.ascontiguousarray(batch.cpu().numpy()))
    return array, batch, data["data_samples"]


def _tensor_input(clock: _Clock, tensor_path: TensorPreprocessor, sync: Callable[[], None],
                  index: int) -> tuple:
    """Decode on the CPU, upload uint8, resize/pad/normalize on the device."""
    info = clock("untimed", lambda: tensor_path.dataset.get_data_info(index))
    results = clock("decode", lambda: tensor_path.decode(info))

    def upload() -> Any:
        image = tensor_path.upload(results)
        sync()
        return image

    def transform() -> dict:
        data = tensor_path.transform(results, image)
        sync()
        return data

    image = clock("to_device", upload)
    data = clock("preprocess", transform)
    return data["inputs"], data["inputs"], data["data_samples"]


def _one_image(adapter: ModelAdapter, runner: Runner, make_input: Callable[[_Clock], tuple],
               native_masks: bool = False) -> tuple[dict[str, float], float]:
    """Stage times of one image (ms) and its end-to-end time (ms)."""
    clock = _Clock(stage_names(adapter))
    start = time.perf_counter_ns()
    network_input, batch, samples = make_input(clock)

    def to_device() -> Any:
        x = runner.to_device(network_input)
        runner.synchronize()
        return x

    def network() -> Any:
        y = runner.run(device_input)
        runner.synchronize()
        return y

    if adapter.slides:  # slide inference: every crop there and back, and the averaging
        host = clock("network", lambda: adapter.infer(runner.infer, batch))
    else:
        device_input = clock("to_device", to_device)
        outputs = clock("network", network)
        host = clock("to_host", lambda: runner.to_host(outputs))
    clock("postprocess", lambda: adapter.postprocess(host, batch, samples, native_masks, clock))
    end_to_end = (time.perf_counter_ns() - start) / 1e6 - clock.untimed
    return clock.times, end_to_end


def time_stages(adapter: ModelAdapter, dataset: Any, runner: Runner, images: int,
                warmup: int, path: str = "reference", device: str = "cpu",
                native_masks: bool = False) -> dict[str, Any]:
    """Per-stage and end-to-end statistics over `images` test images (cycled), after `warmup`
    untimed images, with the reference or the tensor preprocessing path; `native_masks` leaves
    instance masks unpasted (see `models.instance_masks`)."""
    count = len(dataset)
    if path == "tensor":
        tensor_path = TensorPreprocessor(adapter, dataset, device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def make_input(clock: _Clock, i: int) -> tuple:
            return _tensor_input(clock, tensor_path, sync, i)
    else:
        def make_input(clock: _Clock, i: int) -> tuple:
            return _reference_input(clock, adapter, dataset, i)

    def one(i: int) -> tuple[dict[str, float], float]:
        return _one_image(adapter, runner, lambda clock: make_input(clock, i % count),
                          native_masks)

    for i in range(warmup):
        one(i)
    stages = stage_names(adapter)
    per_stage: dict[str, list[float]] = {s: [] for s in stages}
    end_to_end: list[float] = []
    forward_post: list[float] = []
    for i in range(images):
        times, total = one(i)
        for stage, ms in times.items():
            per_stage[stage].append(ms)
        end_to_end.append(total)
        forward_post.append(total - sum(times[s] for s in LOADING))
    stats = {s: {k: v for k, v in latency_stats(ms).items() if k != "fps"}
             for s, ms in per_stage.items()}
    unaccounted = [e - sum(per_stage[s][i] for s in stages) for i, e in enumerate(end_to_end)]
    return {"path": path, "native_masks": native_masks, "images": images, "stages_ms": stats,
            "end_to_end_ms": {k: v for k, v in latency_stats(end_to_end).items() if k != "fps"},
            "end_to_end_samples_ms": end_to_end,
            "forward_post_ms": {k: v for k, v in latency_stats(forward_post).items()
                                if k != "fps"},
            "forward_post_samples_ms": forward_post,
            "unaccounted_ms_median": float(np.median(unaccounted)) if unaccounted else 0.0,
            "unaccounted_ms_max": max(unaccounted) if unaccounted else 0.0}
