"""TorchScript: the tensor-mode network traced (and frozen) on the first call's input."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deploybench.backends.base import Backend, BackendSpec, Runner
from deploybench.backends.pytorch import TorchRunner

if TYPE_CHECKING:
    import torch

    from deploybench.models.adapter import ModelAdapter


def trace(network: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    import torch

    traced = torch.jit.trace(network, (example,), check_trace=False)
    return torch.jit.freeze(traced.eval())


class TorchScriptBackend(Backend):
    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        assert adapter is not None
        return TorchRunner(adapter.network, device, precision, prepare=trace)


SPECS = (BackendSpec(
    name="torchscript", backend=TorchScriptBackend, support={"cpu": ("fp32",), "cuda": ("fp32",)},
    runs="checkpoint", style=("#ff7f0e", "s"),
    summary="traced on the first call, frozen"),)
