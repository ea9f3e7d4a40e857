"""Backends, one file each, behind the interface in `base`.

`SUPPORT` says which devices and precisions each backend has at all; the config matrix plans only
those cells. Whether this machine can run a planned cell (a CUDA device, the package, an op) is
the backend's `available()`, and a cell it cannot run is reported as skipped with the reason.
"""

from __future__ import annotations

import importlib

from deploybench.backends.base import Backend
from deploybench.errors import UserError

SUPPORT: dict[str, dict[str, tuple[str, ...]]] = {
    "pytorch": {"cpu": ("fp32",), "cuda": ("fp32", "fp16")},
    "torchscript": {"cpu": ("fp32",), "cuda": ("fp32",)},
    "torch_compile": {"cpu": ("fp32",), "cuda": ("fp32",)},
    "onnxruntime": {"cpu": ("fp32", "int8"), "cuda": ("fp32", "fp16")},
    "onnxruntime_trt": {"cuda": ("fp32", "fp16")},
    "openvino": {"cpu": ("fp32", "int8")},
    "tensorrt": {"cuda": ("fp32", "fp16", "int8")},
}
BACKENDS = tuple(SUPPORT)
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "int8")

# Imported on demand: a backend's package need not be installed unless it is used.
_CLASSES = {
    "pytorch": "deploybench.backends.pytorch:PyTorchBackend",
    "torchscript": "deploybench.backends.torchscript:TorchScriptBackend",
    "torch_compile": "deploybench.backends.torch_compile:TorchCompileBackend",
    "onnxruntime": "deploybench.backends.onnxruntime:OnnxRuntimeBackend",
    "onnxruntime_trt": "deploybench.backends.onnxruntime:OnnxRuntimeTensorRtBackend",
    "openvino": "deploybench.backends.openvino:OpenVinoBackend",
    "tensorrt": "deploybench.backends.tensorrt:TensorRtBackend",
}


def supports(backend: str, device: str, precision: str) -> bool:
    return precision in SUPPORT.get(backend, {}).get(device, ())


def get_backend(name: str) -> Backend:
    if name not in _CLASSES:
        raise UserError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    module, cls = _CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def skip_reason(backend: str, precision: str, device: str) -> str:
    """Empty when this machine can run the cell, else why not. The TensorRT int8 QDQ source
    ("qdq") is built only where TensorRT int8 can run."""
    if backend == "qdq":
        return skip_reason("tensorrt", "int8", "cuda")
    ok, reason = get_backend(backend).available(precision, device)
    return "" if ok else reason
