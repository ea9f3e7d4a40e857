"""TorchScript: the tensor-mode network traced (and frozen) on the first call's input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deploybench.backends.base import Backend, Runner
from deploybench.models.adapter import ModelAdapter


class TorchScriptRunner(Runner):
    def __init__(self, network: torch.nn.Module, device: str) -> None:
        self.network = network
        self.device = device
        self.traced: torch.jit.ScriptModule | None = None

    def infer(self, inputs: np.ndarray) -> list[np.ndarray]:
        x = torch.from_numpy(inputs).to(self.device)
        with torch.inference_mode(False), torch.no_grad():
            if self.traced is None:
                # Traced for the static input shape, as the ONNX export is. Tracing happens in
                # the first call: a warm-up call in measure; evaluate does not time calls.
                traced = torch.jit.trace(self.network, (x,), check_trace=False)
                self.traced = torch.jit.freeze(traced.eval())
            outputs = self.traced(x)
        return [o.cpu().numpy() for o in outputs]


class TorchScriptBackend(Backend):
    name = "torchscript"
    artifact = "checkpoint"
    precisions = ("fp32",)

    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner:
        return TorchScriptRunner(adapter.network.to(device), device)
