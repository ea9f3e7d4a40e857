"""The backend interface: `available()`, `load()` -> runner, `runner.infer()`, `runner.close()`.

Every runner takes a host (numpy) batch and returns host arrays, so "network latency" means the
same thing for every backend: input on the host -> outputs on the host.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from deploybench.models.adapter import ModelAdapter


class Runner(ABC):
    @abstractmethod
    def infer(self, inputs: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None:  # noqa: B027 - most runners hold nothing that needs releasing
        """Release sessions, engines and device memory."""


class Backend(ABC):
    name: str
    # The file a backend runs: the PyTorch checkpoint itself, or an exported/built artifact.
    artifact: str
    precisions: Sequence[str]

    def available(self, precision: str, device: str) -> tuple[bool, str]:
        """Whether this machine can run the cell; the reason when it cannot."""
        if precision not in self.precisions:
            return False, (f"{self.name} supports precisions {', '.join(self.precisions)} here, "
                           f"not {precision}")
        if device != "cpu":
            return False, f"{self.name} runs on cpu in this version, not {device}"
        return True, ""

    @abstractmethod
    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner: ...
