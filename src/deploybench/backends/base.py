"""The backend interface: `available()`, `load()` -> runner, `runner.infer()`, `runner.close()`.

Every runner takes a host (numpy) batch and returns host arrays, so "network latency" means the
same thing for every backend: input on the host -> outputs on the host.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deploybench.errors import UserError

if TYPE_CHECKING:
    from deploybench.models.adapter import ModelAdapter


class Runner(ABC):
    @abstractmethod
    def infer(self, inputs: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None:  # noqa: B027 - most runners hold nothing that needs releasing
        """Release sessions, engines and device memory."""


class Backend(ABC):
    name: str
    module: str | None = None  # the package it needs, checked (not imported) by available()
    # The file a backend runs: the PyTorch checkpoint itself, or an exported/built artifact.
    artifact: str
    precisions: Sequence[str]

    def available(self, precision: str, device: str) -> tuple[bool, str]:
        """Whether this machine can run the cell; the reason when it cannot."""
        if self.module and importlib.util.find_spec(self.module) is None:
            return False, f"{self.module} is not installed (pip install {self.module})"
        if precision not in self.precisions:
            return False, (f"{self.name} supports precisions {', '.join(self.precisions)} here, "
                           f"not {precision}")
        if device != "cpu":
            return False, f"{self.name} runs on cpu in this version, not {device}"
        return True, ""

    @abstractmethod
    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner: ...


def onnx_artifact(artifact: Path | None) -> Path:
    """The exported ONNX model a backend runs, or a message saying which step makes it."""
    if artifact is None or not Path(artifact).is_file():
        raise UserError(f"ONNX model {artifact} does not exist; run the pipeline's export step")
    return Path(artifact)
