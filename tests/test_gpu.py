"""The CUDA and TensorRT paths. They need an NVIDIA GPU (and onnxruntime-gpu, tensorrt), which
the CPU-only CI does not have: there every test here is skipped with the reason, and the CPU
tests cover the shared code (runner interface, builds, skip reasons, test_gpu_path.py). The
images workflow runs them in the gpu image on the runner (scripts/gpu-image-check.sh);
scripts/gpu-cells.sh runs these cells end to end through the pipeline on a GPU machine."""

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


def test_onnxruntime_cuda_binding_is_made_once(gpu_detector, small_dataset: Path,
                                              tmp_path: Path) -> None:
    """The timed call reuses one binding and its output buffers, as TensorRT's runner does."""
    backend = backend_or_skip("onnxruntime", "fp32")
    x = _sample(gpu_detector, small_dataset)
    export_onnx(gpu_detector, torch.from_numpy(x).cuda(), tmp_path / "d.onnx", 17)
    runner = backend.load(gpu_detector, tmp_path / "d.onnx", "fp32", "cuda", 2)
    device_input = runner.to_device(x)
    first = runner.run(device_input)
    assert runner.run(device_input) is first
    assert runner.session.get_providers()[0] == "CUDAExecutionProvider"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_tensorrt_ep_runs_on_tensorrt(precision: str, gpu_detector,
                                                  small_dataset: Path, tmp_path: Path) -> None:
    """The session's first provider is TensorRT's (a provider that failed to load would have
    failed the load: test_gpu_path.py), and its outputs match PyTorch's."""
    backend = backend_or_skip("onnxruntime_trt", precision)
    x = _sample(gpu_detector, small_dataset)
    export_onnx(gpu_detector, torch.from_numpy(x).cuda(), tmp_path / "d.onnx", 17)
    runner = backend.load(gpu_detector, tmp_path / "d.onnx", precision, "cuda", 2)
    assert runner.session.get_providers()[0] == "TensorrtExecutionProvider"
    tolerance = 1e-2 if precision == "fp32" else 1e-1
    for a, b in zip(runner.infer(x), _reference(x), strict=True):
        assert np.max(np.abs(a - b)) <= tolerance * max(1.0, float(np.max(np.abs(b))))


def test_tensorrt_int8_engine_from_the_qdq_model(gpu_detector, small_dataset: Path,
                                                 tmp_path: Path) -> None:
    from deploybench.export.quantize import calibration_batches, quantize_int8
    from deploybench.export.tensorrt_build import build_engine

    backend = backend_or_skip("tensorrt", "int8")
    x = _sample(gpu_detector, small_dataset)
    export_onnx(gpu_detector, torch.from_numpy(x).cuda(), tmp_path / "d.onnx", 17)
    batches = calibration_batches(gpu_detector, small_dataset, 4)
    quantize_int8(tmp_path / "d.onnx", tmp_path / "q.onnx", batches, "minmax", activations="S8")
    build_engine(tmp_path / "q.onnx", tmp_path / "e.engine", "int8", 1024, None)
    runner = backend.load(gpu_detector, tmp_path / "e.engine", "int8", "cuda", 2)
    for a, b in zip(runner.infer(x), _reference(x), strict=True):
        assert np.isfinite(a).all() and a.shape == b.shape


def test_dynamic_batch_engine_runs_each_batch_under_its_profile(
        gpu_detector, small_dataset: Path, tmp_path: Path) -> None:
    from deploybench.export.tensorrt_build import build_engine

    backend = backend_or_skip("tensorrt", "fp32")
    x = _sample(gpu_detector, small_dataset)
    export_onnx(gpu_detector, torch.from_numpy(x).cuda(), tmp_path / "d.onnx", 17,
                dynamic_batch=4)
    info = build_engine(tmp_path / "d.onnx", tmp_path / "e.engine", "fp32", 1024, None, (1, 4))
    assert info["batch_profiles"] == [(1, 1, 1), (2, 4, 4)]
    runner = backend.load(gpu_detector, tmp_path / "e.engine", "fp32", "cuda", 2)
    one = runner.infer(x)
    four = runner.infer(np.concatenate([x] * 4))
    assert runner.context.active_optimization_profile == 1
    for a, b in zip(one, four, strict=True):
        np.testing.assert_allclose(a[0], b[3], rtol=1e-3, atol=1e-3)


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


@pytest.mark.parametrize("precision", ["fp32", "amp"])
def test_training_on_cuda_records_the_zoo_pages_memory(precision: str, small_dataset: Path,
                                                       tmp_path: Path) -> None:
    """Mem (GB) as the zoo pages define it (torch.cuda.max_memory_allocated), and AMP through
    mmengine's AmpOptimWrapper."""
    from .test_training import QUICK, _train

    entry = model_entry("rtmdet_tiny_shapes")
    code, record = _train(tmp_path, entry["config"], small_dataset, "--device", "cuda",
                          "--precision", precision, "--checkpoint",
                          str(checkpoint_path("rtmdet_tiny_shapes")), settings=QUICK)
    assert code == 0, record["reason"]
    train = record["train"]
    assert train["memory"]["kind"] == "torch.cuda.max_memory_allocated"
    assert train["memory"]["peak_mib"] > 1 and train["losses_finite"]
    assert train["optim_wrapper"] == {"fp32": "OptimWrapper", "amp": "AmpOptimWrapper"}[precision]
    assert train["compute_s"]["median"] > 0
