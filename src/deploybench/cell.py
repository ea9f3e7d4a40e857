"""What measure and evaluate share: a model adapter, its dataset, and a loaded backend runner."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deploybench.backends import get_backend
from deploybench.backends.base import Runner
from deploybench.errors import UserError
from deploybench.models.adapter import ModelAdapter, load_adapter


@dataclass(frozen=True)
class CellInputs:
    config: Path
    checkpoint: Path
    data_root: Path
    artifact: Path | None = None
    device: str = "cpu"
    threads: int = 1
    pipeline_shape: tuple[int, int] | None = None  # set the test pipeline to this [h, w]
    checkpoint_sha256: str | None = None  # checked again where the checkpoint is loaded


@dataclass
class OpenCell:
    adapter: ModelAdapter
    dataset: Any
    runner: Runner


@contextlib.contextmanager
def open_cell(backend: str, precision: str, inputs: CellInputs) -> Iterator[OpenCell]:
    # Pre- and post-processing run in torch whatever the backend: keep them to the same threads.
    torch.set_num_threads(inputs.threads)
    adapter = load_adapter(inputs.config, inputs.checkpoint, inputs.device,
                           inputs.pipeline_shape, inputs.checkpoint_sha256)
    dataset = adapter.dataset(inputs.data_root)
    if len(dataset) == 0:
        raise UserError(f"dataset at {inputs.data_root} has no test images")
    runner = get_backend(backend).load(adapter, inputs.artifact, precision, inputs.device,
                                       inputs.threads)
    try:
        yield OpenCell(adapter, dataset, runner)
    finally:
        runner.close()


def check_input_shape(expected: list[int] | None, actual: tuple[int, ...]) -> None:
    if expected is not None and list(expected) != list(actual):
        raise UserError(f"the test pipeline produced input shape {list(actual)} but the network "
                        f"was exported for {expected}; set models.<name>.input_shape to the "
                        "pipeline's output size, or change the config's test pipeline (a shape "
                        "the pipeline cannot reach, e.g. a size its pad divisor does not divide, "
                        "needs a different shape)")
