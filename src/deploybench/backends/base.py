"""The backend interface: what a backend declares about itself (`BackendSpec`, its `Build`s), and
its code: `available()`, `load()` -> runner; a runner moves a batch to its device, runs the
network there, and brings the outputs back, as three separate calls.

Keeping the three apart lets "network latency" mean the same for every backend: input already
where the backend reads it -> outputs where it writes them, synchronized. On the CPU the first
and last calls cost (next to) nothing; on a GPU they are the host<->device copies.

The spec is stated once, beside the backend's code: the devices and precisions it runs, the
file its cells run, the builds that make that file, the packages it needs and reports, how the
figures draw it. The config's checks, the DAG's rules, provenance, the figures and the docs'
backend table all read it (`backends.registry`).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deploybench.artifact_integrity import check
from deploybench.backends.placeholder import skipped_build
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
# Set where the run requires a GPU (config `require_gpu`): a missing one fails, not skips.
REQUIRE_GPU_ENV = "DEPLOYBENCH_REQUIRE_GPU"


def cuda_device_reason() -> str:
    """Empty when PyTorch sees a CUDA device, else why not; where the run requires a GPU, its
    absence is an error that fails the step, not a reason to skip a cell."""
    import os

    reason = _cuda_device_reason()
    if reason and os.environ.get(REQUIRE_GPU_ENV) == "1":
        from deploybench.errors import UserError

        raise UserError(f"this run requires a GPU (config require_gpu, set by the GPU runner's "
                        f"profile) and {reason}; fix the runner (docs/self-hosted-runner.md, "
                        f"\"A failing GPU\") or run without require_gpu to skip its cells")
    return reason


def _cuda_device_reason() -> str:
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
    """A backend's code; what it declares about itself is its `BackendSpec` (below)."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def available(self, precision: str, device: str) -> tuple[bool, str]:
        """Whether this machine can run the cell; the reason when it cannot."""
        devices = self.spec.support
        if precision not in devices.get(device, ()):
            supported = "; ".join(f"{d}: {', '.join(p)}" for d, p in devices.items())
            return False, f"{self.name} supports {supported}; not {precision} on {device}"
        module = self.spec.requires
        if module and importlib.util.find_spec(module) is None:
            return False, f"{module} is not installed (pip install {module})"
        reason = self.machine_reason(precision, device)
        return not reason, reason

    def machine_reason(self, precision: str, device: str) -> str:
        """Backend-specific checks of this machine; empty when it can run the cell."""
        return cuda_device_reason() if device == "cuda" else ""

    def load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
             device: str, threads: int) -> Runner:
        """The cell's runner, after the checks every backend shares: a backend that runs a
        model file gets one that exists, and a build this backend could not do for the model
        (its empty placeholder) skips the cell with the build's reason."""
        if self.spec.runs != "checkpoint":
            artifact = onnx_artifact(artifact)
            skipped_build(artifact)
            check(artifact)  # the file its export or build made, not one changed since
        return self._load(adapter, artifact, precision, device, threads)

    @abstractmethod
    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        """The runner; `artifact` checked as `load` says. `adapter` is None where a measure
        step times the model file alone (no model code imported)."""


Key = tuple[str, str, str]  # (backend, device, precision)


@dataclass(frozen=True)
class Build:
    """An artifact made by the build step (`deploybench build`), from the export or from
    another build's artifact.

    `make` names the function ("module:function") that makes it, imported when the build
    runs: `make(BuildContext) -> dict` of what the result records. A build whose `backend` is
    not a backend's name is an intermediate (TensorRT's int8 QDQ source): no cell runs it, and
    it is made where the cell `for_cell` can run."""

    backend: str
    device: str
    precision: str
    artifact: str  # the file name under build/<model>/<shape>/
    make: str
    source: Key | None = None  # another build's key; None: the ONNX export
    for_cell: Key | None = None
    calibrated: bool = False  # takes calibration images (int8 post-training quantization)
    gpu: bool = False  # the job holds a GPU
    companions: tuple[str, ...] = ()  # files written beside the artifact (an IR's weights)

    @property
    def key(self) -> Key:
        return (self.backend, self.device, self.precision)

    def files(self, artifact_path: str) -> list[str]:
        """The artifact and the files written beside it."""
        stem = artifact_path.rsplit(".", 1)[0]
        return [artifact_path, *(stem + suffix for suffix in self.companions)]


@dataclass(frozen=True)
class BackendSpec:
    """One backend: `backend` is its class (instantiated with this spec)."""

    name: str
    backend: type[Backend]
    support: Mapping[str, tuple[str, ...]]  # device -> precisions
    # What a cell runs where no build makes its artifact: the PyTorch checkpoint itself (through
    # the model's code), or the exported ONNX model (a file, timed without mmdet/mmseg).
    runs: Literal["checkpoint", "onnx"]
    summary: str  # one line for the docs' backend table
    builds: tuple[Build, ...] = ()
    requires: str | None = None  # the module it imports: checked (not imported) before a cell
    packages: tuple[str, ...] = ()  # distributions whose versions every result records
    style: tuple[str, str] = ("#7f7f7f", "*")  # the figures' colour and marker


def onnx_artifact(artifact: Path | None) -> Path:
    """The ONNX model (or engine) a backend runs, or a message saying which step makes it."""
    if artifact is None or not Path(artifact).is_file():
        raise UserError(f"model file {artifact} does not exist; run the pipeline's export and "
                        "build steps (snakemake makes it before this cell)")
    return Path(artifact)
