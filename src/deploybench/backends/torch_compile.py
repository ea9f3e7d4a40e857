"""torch.compile (inductor), static shapes, compiled in the first call from cold caches.

Caches are off so that the compile time measure records is what a fresh machine pays, whatever
ran before; the C++ toolchain inductor needs on the CPU is part of the machine check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from deploybench.backends.base import Backend, Runner
from deploybench.backends.pytorch import TorchRunner
from deploybench.models.adapter import ModelAdapter


def compile_inductor(network: torch.nn.Module, example: torch.Tensor) -> Callable:
    import torch._inductor.config as inductor_config

    inductor_config.force_disable_caches = True
    compiled = torch.compile(network, backend="inductor", dynamic=False)
    compiled(example)  # compiles now, inside the first call
    return compiled


class TorchCompileBackend(Backend):
    name = "torch_compile"
    artifact = "checkpoint"

    def machine_reason(self, precision: str, device: str) -> str:
        if device == "cpu" and not (shutil.which("g++") or shutil.which("c++")):
            return "inductor needs a C++ compiler on the CPU; install g++"
        return super().machine_reason(precision, device)

    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner:
        return TorchRunner(adapter.network, device, precision, prepare=compile_inductor)
