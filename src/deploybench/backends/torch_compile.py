"""torch.compile (inductor), static shapes, compiled in the first call from cold caches.

Caches are off so that the compile time measure records is what a fresh machine pays, whatever
ran before; the C++ toolchain inductor needs on the CPU is part of the machine check. Inductor
still writes the code it generates (about 100 MB a model) to its cache folder, which is never
cleaned: each runner compiles into a folder of its own, removed when the runner closes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from deploybench.backends.base import Backend, BackendSpec, Runner
from deploybench.backends.pytorch import TorchRunner

if TYPE_CHECKING:
    import torch

    from deploybench.models.adapter import ModelAdapter


def compile_inductor(network: torch.nn.Module, example: torch.Tensor) -> Callable:
    import torch
    import torch._inductor.config as inductor_config

    inductor_config.force_disable_caches = True
    compiled = torch.compile(network, backend="inductor", dynamic=False)
    compiled(example)  # compiles now, inside the first call
    return compiled


class TorchCompileBackend(Backend):
    def machine_reason(self, precision: str, device: str) -> str:
        if device == "cpu" and not (shutil.which("g++") or shutil.which("c++")):
            return "inductor needs a C++ compiler on the CPU; install g++"
        return super().machine_reason(precision, device)

    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        assert adapter is not None
        return CompiledRunner(adapter.network, device, precision)


class CompiledRunner(TorchRunner):
    """A TorchRunner compiled by inductor, whose output goes to a folder of its own (a user's
    TORCHINDUCTOR_CACHE_DIR is left alone and kept)."""

    def __init__(self, network: torch.nn.Module, device: str, precision: str) -> None:
        super().__init__(network, device, precision, prepare=compile_inductor)
        self.cache_dir: str | None = None
        if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
            self.cache_dir = tempfile.mkdtemp(prefix="deploybench-inductor-")
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = self.cache_dir

    def close(self) -> None:
        if self.cache_dir is not None:
            # The compiled kernels are loaded already: their files are no longer needed.
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            if os.environ.get("TORCHINDUCTOR_CACHE_DIR") == self.cache_dir:
                del os.environ["TORCHINDUCTOR_CACHE_DIR"]
            self.cache_dir = None
        super().close()


SPECS = (BackendSpec(
    name="torch_compile", backend=TorchCompileBackend,
    support={"cpu": ("fp32",), "cuda": ("fp32",)}, runs="checkpoint", style=("#8c564b", "P"),
    summary=("inductor, static shapes, compiled in the first call from cold caches (compile time = "
             "*first call s*); not in the embedded default (see `config.yaml`: no faster than "
             "TorchScript on its CPU, and its compile was most of the run)")),)
