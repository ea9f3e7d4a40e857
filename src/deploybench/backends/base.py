"""The backend interface: `available()`, `load()` -> runner; a runner moves a batch to its device,
runs the network there, and brings the outputs back, as three separate calls.

Keeping the three apart lets "network latency" mean the same for every backend: input already
where the backend reads it -> outputs where it writes them, synchronized. On the CPU the first
and last calls cost (next to) nothing; on a GPU they are the host<->device copies.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.errors import UserError

if TYPE_CHECKING:
    from deploybench.models.adapter import ModelAdapter


class Runner(ABC):
    def to_device(self, inputs: Any) -> Any:
        """The batch (a host array, or a tensor the tensor preprocessing path made on the
        device), placed where `run` reads it. Host backends take numpy (a view of a CPU
        tensor, no copy)."""
        return np.ascontiguousarray(inputs)

    @abstractmethod
    def run(self, inputs: Any) -> Any:
        """The network on device-resident inputs; returns device-resident outputs."""

    def synchronize(self) -> None:  # noqa: B027 - host backends finish inside `run`
        """Wait until work queued by `run` has finished."""

    def to_host(self, outputs: Any) -> list[np.ndarray]:
        return [np.asarray(o) for o in outputs]

    def infer(self, inputs: np.ndarray) -> list[np.ndarray]:
        return self.to_host(self.run(self.to_device(inputs)))

    def close(self) -> None:  # noqa: B027 - most runners hold nothing that needs releasing
        """Release sessions, engines and device memory."""

    def idle_settings(self) -> dict[str, str]:
        """What the runner sets so that its threads do not spin while it waits between calls
        (`deploybench.measure.idle`), for the result."""
        return {}

    def share_cores(self) -> dict[str, str]:
        """Set the runner up to share the CPU with the pre- and post-processing around each
        call (end-to-end timing); returns the settings it changed, for the result."""
        return {}


# Set by `deploybench container` when the Docker engine could not give the step a GPU.
NO_GPU_ENV = "DEPLOYBENCH_NO_GPU"


def cuda_device_reason() -> str:
    """Empty when PyTorch sees a CUDA device, else why not."""
    import os

    if os.environ.get(NO_GPU_ENV):
        return os.environ[NO_GPU_ENV]
    if not Path("/proc/driver/nvidia/version").exists() and not Path("/dev/nvidiactl").exists():
        # No NVIDIA driver: known without importing torch (seconds, when planning a big DAG).
        return "no CUDA device on this machine (no NVIDIA driver loaded)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device on this machine (torch.cuda.is_available() is False)"
    return ""


class Backend(ABC):
    name: str
    module: str | None = None  # the package it needs, checked (not imported) by available()
    # The file a backend runs: the PyTorch checkpoint itself, or an exported/built artifact.
    artifact: str

    def available(self, precision: str, device: str) -> tuple[bool, str]:
        """Whether this machine can run the cell; the reason when it cannot."""
        from deploybench.backends import SUPPORT

        devices = SUPPORT[self.name]
        if precision not in devices.get(device, ()):
            supported = "; ".join(f"{d}: {', '.join(p)}" for d, p in devices.items())
            return False, f"{self.name} supports {supported}; not {precision} on {device}"
        if self.module and importlib.util.find_spec(self.module) is None:
            return False, f"{self.module} is not installed (pip install {self.module})"
        reason = self.machine_reason(precision, device)
        return not reason, reason

    def machine_reason(self, precision: str, device: str) -> str:
        """Backend-specific checks of this machine; empty when it can run the cell."""
        return cuda_device_reason() if device == "cuda" else ""

    @abstractmethod
    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner: ...


def onnx_artifact(artifact: Path | None) -> Path:
    """The ONNX model (or engine) a backend runs, or a message saying which step makes it."""
    if artifact is None or not Path(artifact).is_file():
        raise UserError(f"model file {artifact} does not exist; run the pipeline's export and "
                        "build steps (snakemake makes it before this cell)")
    return Path(artifact)
