"""The CUDA and TensorRT paths. They need an NVIDIA GPU (and onnxruntime-gpu, tensorrt), which
the CPU-only CI does not have: there every test here is skipped with the reason, and the CPU
tests cover the shared code (runner interface, builds, skip reasons). scripts/gpu-cells.sh runs
these cells end to end through the pipeline on a GPU machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deploybench.backends import get_backend
from deploybench.export.onnx_export import export_onnx
from deploybench.models.adapter import load_adapter

from .conftest import checkpoint_path, model_entry

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the GPU cells cannot run here")


def backend_or_skip(name: str, precision: str):
    backend = get_backend(name)
    ok, reason = backend.available(precision, "cuda")
    if not ok:
        pytest.skip(reason)
    return backend


@pytest.fixture
def gpu_detector():
    entry = model_entry("rtmdet_tiny_shapes")
    return load_adapter(entry["config"], checkpoint_path("rtmdet_tiny_shapes"), "cuda")


def _sample(adapter, small_dataset: Path) -> np.ndarray:
    _, sample, _ = next(adapter.batches(adapter.dataset(small_dataset)))
    return np.ascontiguousarray(sample.cpu().numpy())


def _reference(x: np.ndarray) -> list[np.ndarray]:
    entry = model_entry("rtmdet_tiny_shapes")
    cpu = load_adapter(entry["config"], checkpoint_path("rtmdet_tiny_shapes"))
    return get_backend("pytorch").load(cpu, None, "fp32", "cpu", 2).infer(x)


@pytest.mark.parametrize(("backend", "precision", "tolerance"), [
    ("pytorch", "fp32", 1e-3), ("pytorch", "fp16", 5e-2), ("torchscript", "fp32", 1e-3)])
def test_torch_on_cuda(backend: str, precision: str, tolerance: float, gpu_detector,
                       small_dataset: Path) -> None:
    x = _sample(gpu_detector, small_dataset)
    reference = _reference(x)
    runner = backend_or_skip(backend, precision).load(gpu_detector, None, precision, "cuda", 2)
    device_input = runner.to_device(x)
    outputs = runner.run(device_input)
    runner.synchronize()
    for a, b in zip(runner.to_host(outputs), reference, strict=True):
        assert np.max(np.abs(a - b)) <= tolerance * max(1.0, float(np.max(np.abs(b))))


def test_onnxruntime_cuda_keeps_outputs_on_the_device(gpu_detector, small_dataset: Path,
                                                       tmp_path: Path) -> None:
    backend = backend_or_skip("onnxruntime", "fp32")
    x = _sample(gpu_detector, small_dataset)
    export_onnx(gpu_detector, torch.from_numpy(x).cuda(), tmp_path / "d.onnx", 17)
    runner = backend.load(gpu_detector, tmp_path / "d.onnx", "fp32", "cuda", 2)
    outputs = runner.run(runner.to_device(x))
    assert all(o.device_name().lower() == "cuda" for o in outputs)
    for a, b in zip(runner.to_host(outputs), _reference(x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_build_and_run(precision: str, gpu_detector, small_dataset: Path,
                                       tmp_path: Path) -> None:
    from deploybench.export.quantize import convert_fp16
    from deploybench.export.tensorrt_build import build_engine

    backend = backend_or_skip("tensorrt", precision)
    x = _sample(gpu_detector, small_dataset)
    export_onnx(gpu_detector, torch.from_numpy(x).cuda(), tmp_path / "d.onnx", 17)
    source = tmp_path / "d.onnx"
    if precision == "fp16":
        convert_fp16(source, tmp_path / "d16.onnx")
        source = tmp_path / "d16.onnx"
    info = build_engine(source, tmp_path / "e.engine", precision, 1024, tmp_path / "cache")
    assert info["build_seconds"] > 0 and (tmp_path / "cache").stat().st_size > 0
    runner = backend.load(gpu_detector, tmp_path / "e.engine", precision, "cuda", 2)
    tolerance = 1e-2 if precision == "fp32" else 1e-1
    for a, b in zip(runner.infer(x), _reference(x), strict=True):
        assert np.max(np.abs(a - b)) <= tolerance * max(1.0, float(np.max(np.abs(b))))


# A child forked after its parent's preload initializes CUDA on its own (the fork server's case).
FORKED_CUDA = """
import os, torch
from deploybench.forkserver import preload
preload()
pid = os.fork()
if pid == 0:
    torch.ones(1, device="cuda").add_(1)
    torch.cuda.synchronize()
    os._exit(0)
raise SystemExit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_step_forked_by_the_server_can_use_cuda() -> None:
    """The server's imports ask whether CUDA is available; the steps it forks must still be able
    to initialize CUDA. In a fresh interpreter: this one has used CUDA already."""
    result = subprocess.run([sys.executable, "-c", FORKED_CUDA], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
