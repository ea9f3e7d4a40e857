"""TorchScript: the tensor-mode network traced (and frozen) on the first call's input."""

from __future__ import annotations

from pathlib import Path

import torch

from deploybench.backends.base import Backend, Runner
from deploybench.backends.pytorch import TorchRunner
from deploybench.models.adapter import ModelAdapter


def trace(network: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    traced = torch.jit.trace(network, (example,), check_trace=False)
    return torch.jit.freeze(traced.eval())


class TorchScriptBackend(Backend):
    name = "torchscript"
    artifact = "checkpoint"

    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner:
        return TorchRunner(adapter.network, device, precision, prepare=trace)
