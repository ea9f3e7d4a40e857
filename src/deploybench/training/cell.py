"""One training cell: model x device x training precision, built, timed, summarized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from deploybench.errors import CellSkipped
from deploybench.training.parts import build_parts
from deploybench.training.settings import TrainSettings
from deploybench.training.timed import run_iterations


def train_cell(config: Path, data_root: Path, checkpoint: Path | None, sha256: str | None,
               device: str, precision: str, batch_size: int | None, threads: int,
               settings: TrainSettings) -> tuple[str, str, dict[str, Any]]:
    """(status, reason, figures) of a training cell; skipped where the device is missing."""
    if device == "cuda":
        from deploybench.backends.base import cuda_device_reason

        if reason := cuda_device_reason():
            raise CellSkipped(reason)
    torch.set_num_threads(threads)
    parts = build_parts(config, data_root, checkpoint, sha256, device, precision, batch_size)
    figures = run_iterations(parts, device, settings)
    return "ok", "", {"train": {
        "batch_size": parts.batch_size, "train_images": parts.images,
        "num_workers": parts.num_workers, "lr_schedule": parts.lr_schedule,
        "optim_wrapper": type(parts.optim_wrapper).__name__,
        "optimizer": type(parts.optim_wrapper.optimizer).__name__,
        "weights": "checkpoint" if checkpoint else "random init", "threads": threads,
        **figures}}
