"""PyTorch eager: the model's own tensor-mode forward; fp16 on CUDA by casting weights and input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deploybench.backends.base import Backend, BackendSpec, Runner

if TYPE_CHECKING:  # imported when a runner is made: reading the specs imports no torch
    import torch

    from deploybench.models.adapter import ModelAdapter


class TorchRunner(Runner):
    """Runs `network` (or what `prepare` makes of it on the first call) on `device`."""

    def __init__(self, network: torch.nn.Module, device: str, precision: str = "fp32",
                 prepare: Callable[[torch.nn.Module, torch.Tensor], Callable] | None = None
                 ) -> None:
        import torch

        # Kept here, not imported at the top: reading the backends' specs imports no torch;
        # nor in the timed calls.
        self.torch = torch
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16}[precision]
        if device.startswith("cuda"):
            # "fp32" means fp32: cuDNN would run convolutions in TF32 by default on Ampere and
            # later (and matmuls where a library enabled it), a different precision.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.network = network.to(device=device, dtype=self.dtype)
        self.device = device
        self.prepare = prepare
        self.call: Callable | None = None if prepare else self.network

    def to_device(self, inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = self.torch.as_tensor(inputs)
        if x.is_inference():
            # The tensor path's batch comes out of inference mode; a compiled graph guards on
            # that and would recompile for it. An out-of-place copy is an ordinary tensor.
            with self.torch.inference_mode(False):
                x = x.clone()
        return x.to(self.device, self.dtype)

    def run(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        # no_grad, not inference_mode: tracing and torch.compile do not accept inference tensors.
        with self.torch.no_grad():
            if self.call is None:
                # Traced or compiled for the static input shape, as the ONNX export is, in the
                # first call: measure times that call apart from the latency samples.
                assert self.prepare is not None
                self.call = self.prepare(self.network, inputs)
            return list(self.call(inputs))

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def to_host(self, outputs: list[torch.Tensor]) -> list[np.ndarray]:
        return [o.float().cpu().numpy() for o in outputs]


class PyTorchBackend(Backend):
    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        assert adapter is not None
        return TorchRunner(adapter.network, device, precision)


SPECS = (BackendSpec(
    name="pytorch", backend=PyTorchBackend, support={"cpu": ("fp32",), "cuda": ("fp32", "fp16")},
    runs="checkpoint", style=("#1f77b4", "o"),
    summary="eager tensor-mode forward; fp16 casts weights and input"),)
