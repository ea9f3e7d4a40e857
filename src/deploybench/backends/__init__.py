"""Backends, one file each, behind the interface in `base`."""

from __future__ import annotations

from deploybench.backends.base import Backend
from deploybench.errors import UserError

BACKENDS = ("pytorch", "torchscript", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")


def get_backend(name: str) -> Backend:
    # Imported on demand: a backend's package need not be installed unless it is used.
    if name == "pytorch":
        from deploybench.backends.pytorch import PyTorchBackend

        return PyTorchBackend()
    if name == "torchscript":
        from deploybench.backends.torchscript import TorchScriptBackend

        return TorchScriptBackend()
    if name == "onnxruntime":
        from deploybench.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend()
    if name == "openvino":
        from deploybench.backends.openvino import OpenVinoBackend

        return OpenVinoBackend()
    raise UserError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
