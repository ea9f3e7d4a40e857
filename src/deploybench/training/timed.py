"""Training iterations, timed as mmengine's IterTimerHook splits them: *data* is the wait for
the dataloader's next batch, *compute* the training step (forward, losses, backward, optimizer
step; synchronized on CUDA), an iteration both.

A warm-up first (untimed: the allocator, cuDNN's and oneDNN's first calls), then iterations
until at least `min_iters` and `min_seconds`, and until the median s/iter is known to
+-`precision` or the time cap. Between iterations, outside the timed span, one quick reading of
the reference kernel (`machine_state.reference_reading_ms`): their median is the window's
machine-speed index. It is recorded, not used to drop iterations: in windows whose kernel ran
25-29 % slower than in others, training ran within 3-4 % of its speed in those others
(docs/methodology.md, *Training*), so the kernel's state does not say which iterations a busy
machine slowed. Other processes' CPU time over the window is recorded too (`OtherLoad`, the
dataloader's workers counted as the training's own).

Memory is the seeds' Mem: `torch.cuda.max_memory_allocated()` on CUDA; on the CPU the process's
peak resident memory above its level before the first iteration (dataloader workers, separate
processes, not counted), as Linux's VmHWM after resetting it.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploybench.errors import UserError
from deploybench.measure.machine_state import OtherLoad, reference_reading_ms
from deploybench.measure.stats import median_ci95, relative_halfwidth
from deploybench.training.parts import TrainParts
from deploybench.training.settings import TrainSettings


class LossNotFinite(Exception):
    """A loss became NaN or infinite: the training does not work here; the cell fails."""


def _batches(loader: Any) -> Iterator[Any]:
    """The loader's batches, epoch after epoch (an epoch's end costs data time, as in training).
    Its persistent workers start here, before any timed window, even without a warm-up."""
    return _epochs(loader, iter(loader))


def _epochs(loader: Any, epoch: Iterator[Any]) -> Iterator[Any]:
    while True:
        yielded = False
        for batch in epoch:
            yielded = True
            yield batch
        if not yielded:
            raise UserError("the train dataloader yielded no batch: its batch size is larger "
                            "than the train split it keeps (with drop_last); give a smaller "
                            "train.batch_size")
        epoch = iter(loader)


def _losses(log_vars: dict[str, Any], iteration: int) -> dict[str, float]:
    values = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
              for k, v in log_vars.items()}
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise LossNotFinite(f"loss not finite at training iteration {iteration}: "
                            + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
    return values


def _status_kib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return float(line.split()[1])
    raise KeyError(key)


class PeakMemory:
    """The iterations' peak memory: CUDA's max allocated, or the CPU peak RSS above the start."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __enter__(self) -> PeakMemory:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.reset = _reset_peak_rss()
            self.start_kib = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device == "cuda":
            self.peak_mib = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.peak_mib = (_status_kib("VmHWM") - self.start_kib) / 1024

    def summary(self) -> dict[str, Any]:
        if self.device == "cuda":
            return {"kind": "torch.cuda.max_memory_allocated", "peak_mib": self.peak_mib}
        return {"kind": "peak RSS above the level before the first iteration (CPU)",
                "peak_mib": self.peak_mib, "start_mib": self.start_kib / 1024,
                "peak_reset": self.reset}


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs), so that the peak is
    the training's, not the model loading's; False where the kernel does not allow it (the
    peak then covers the whole process)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _figure(samples: np.ndarray) -> dict[str, float]:
    low, high = median_ci95(samples)
    return {"median": float(np.median(samples)), "mean": float(samples.mean()),
            "ci95_low": low, "ci95_high": high,
            "p90": float(np.percentile(samples, 90)), "min": float(samples.min()),
            "max": float(samples.max())}


def run_iterations(parts: TrainParts, device: str, settings: TrainSettings,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Warm up, time iterations until the stopping rule, and return the figures."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    batches = _batches(parts.loader)
    step = parts.model.train_step

    def iteration(i: int) -> tuple[float, float, dict[str, float]]:
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        losses = _losses(step(batch, optim_wrapper=parts.optim_wrapper), i)
        sync()
        return t1 - t0, time.perf_counter() - t1, losses

    data: list[float] = []
    compute: list[float] = []
    readings: list[float] = []
    first_losses: dict[str, float] = {}
    with PeakMemory(device) as memory:
        warm_start = time.perf_counter()
        for i in range(settings.warmup_iters):
            first_losses = first_losses or iteration(i)[2]
        warmup_s = time.perf_counter() - warm_start
        readings.append(reference_reading_ms())
        start = time.perf_counter()
        stopped = "time cap"
        with OtherLoad(_workers()) as other:
            while True:
                d, c, losses = iteration(settings.warmup_iters + len(data))
                data.append(d)
                compute.append(c)
                readings.append(reference_reading_ms())
                elapsed = time.perf_counter() - start
                if len(data) >= settings.min_iters and elapsed >= settings.min_seconds:
                    totals = np.add(data, compute)
                    low, high = median_ci95(totals)
                    if relative_halfwidth(low, high, float(np.median(totals))) <= \
                            settings.precision:
                        stopped = "precision"
                        break
                if elapsed >= settings.max_seconds and len(data) >= settings.min_iters:
                    break
    totals = np.add(data, compute)
    per_iter = _figure(totals)
    log(f"{len(data)} iterations in {elapsed:.1f} s, stopped by {stopped}: "
        f"{per_iter['median']:.3f} s/iter")
    return {"s_per_iter": per_iter, "data_s": _figure(np.asarray(data)),
            "compute_s": _figure(np.asarray(compute)),
            "rel_halfwidth": relative_halfwidth(per_iter["ci95_low"], per_iter["ci95_high"],
                                                per_iter["median"]),
            "images_per_s": parts.batch_size / per_iter["median"], "iters": len(data),
            "stopped": stopped, "window_s": elapsed, "warmup_iters": settings.warmup_iters,
            "warmup_s": warmup_s, "memory": memory.summary(),
            "losses_finite": True, "losses_first": first_losses, "losses_last": losses,
            "data_samples_s": data, "compute_samples_s": compute,
            "reference_readings_ms": readings, "other_load": other.summary()}


def _workers() -> list[int]:
    """This process's children (the dataloader's persistent workers, started by `_batches`):
    their CPU time is the training's, not another tenant's."""
    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]
