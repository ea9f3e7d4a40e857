"""PyTorch eager: the model's own tensor-mode forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deploybench.backends.base import Backend, Runner
from deploybench.models.adapter import ModelAdapter


class PyTorchRunner(Runner):
    def __init__(self, network: torch.nn.Module, device: str) -> None:
        self.network = network
        self.device = device

    def infer(self, inputs: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            outputs = self.network(torch.from_numpy(inputs).to(self.device))
        return [o.cpu().numpy() for o in outputs]


class PyTorchBackend(Backend):
    name = "pytorch"
    artifact = "checkpoint"
    precisions = ("fp32",)

    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner:
        return PyTorchRunner(adapter.network.to(device), device)
