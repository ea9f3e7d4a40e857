"""The GPU path's logic, run here without a GPU: what a first run on a GPU runner must not get
wrong silently. The parts that need the GPU itself are in test_gpu.py (run on the runner, in
the gpu image, by scripts/gpu-image-check.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from deploybench.backends import skip_reason
from deploybench.backends.onnxruntime import OrtRunner
from deploybench.backends.tensorrt import batch_profiles, profile_for
from deploybench.errors import UserError
from deploybench.gpu_device import nvml_index, pin_gpu_environment
from deploybench.gpu_required import check_gpu_reachable


def _relu_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_provider_that_fell_back_fails_the_cell(tmp_path: Path) -> None:
    """This onnxruntime has no CUDA EP: the session ORT makes anyway runs on the CPU, and the
    runner refuses it instead of timing the CPU under the CUDA EP's name."""
    model = _relu_model(tmp_path / "relu.onnx")
    with pytest.raises(RuntimeError, match="did not use CUDAExecutionProvider for relu.onnx: "
                                           "the session runs on CPUExecutionProvider"):
        OrtRunner(model, 1, [("CUDAExecutionProvider", {"device_id": 0}),
                             "CPUExecutionProvider"])
    runner = OrtRunner(model, 1)  # the provider asked for is the one used: runs
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    first = runner.run(x)
    assert runner.run(x) is first  # the same bound buffers, call after call
    np.testing.assert_array_equal(runner.to_host(first)[0], [[0.0, 0.5, 2.0]])
    two = np.ones((2, 3), np.float32)
    assert runner.to_host(runner.run(two))[0].shape == (2, 3)  # a buffer per input shape


def test_throttle_reasons_are_nvml_own_bits() -> None:
    pynvml = pytest.importorskip("pynvml")
    from deploybench.measure.machine_state import throttle_bits

    bits = throttle_bits(pynvml)
    assert bits[pynvml.nvmlClocksEventReasonSwPowerCap] == "sw_power_cap"
    assert pynvml.nvmlClocksEventReasonSwPowerCap == 0x4
    assert bits[pynvml.nvmlClocksEventReasonHwSlowdown] == "hw_slowdown"
    # A clock setting or an idle GPU is not the machine holding the clocks down.
    for setting in ("ApplicationsClocksSetting", "GpuIdle", "SyncBoost", "DisplayClockSetting"):
        assert getattr(pynvml, f"nvmlClocksEventReason{setting}") not in bits, setting


def test_nvml_index_of_cuda_device_zero() -> None:
    uuids = ["GPU-aaaa-0", "GPU-bbbb-1", "GPU-cccc-2", "GPU-dddd-3"]
    pci = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert nvml_index({}, uuids) == 0
    assert nvml_index({**pci, "CUDA_VISIBLE_DEVICES": "2"}, uuids) == 2
    assert nvml_index({**pci, "CUDA_VISIBLE_DEVICES": "3,1"}, uuids) == 3
    assert nvml_index({"CUDA_VISIBLE_DEVICES": "GPU-cccc-2"}, uuids) == 2
    assert nvml_index({"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, uuids) == 1  # a unique prefix
    assert nvml_index({"CUDA_VISIBLE_DEVICES": "0"}, uuids[:1]) == 0  # one GPU: one order
    with pytest.raises(UserError, match="CUDA_DEVICE_ORDER=PCI_BUS_ID"):
        nvml_index({"CUDA_VISIBLE_DEVICES": "2"}, uuids)
    with pytest.raises(UserError, match="there is no GPU 7"):
        nvml_index({**pci, "CUDA_VISIBLE_DEVICES": "7"}, uuids)
    with pytest.raises(UserError, match="names no GPU"):
        nvml_index({"CUDA_VISIBLE_DEVICES": "GPU-ffff"}, uuids)
    with pytest.raises(UserError, match="more than one"):
        nvml_index({"CUDA_VISIBLE_DEVICES": "GPU-"}, uuids)
    with pytest.raises(UserError, match="set but empty"):
        nvml_index({"CUDA_VISIBLE_DEVICES": ""}, uuids)


def test_gpu_request_names_the_runner_gpu() -> None:
    pytest.importorskip("docker")
    from deploybench.container.run import gpu_request

    assert gpu_request({}).count == -1 and not gpu_request({}).device_ids
    pinned = gpu_request({"CUDA_VISIBLE_DEVICES": "GPU-cccc-2, 3"})
    assert pinned.device_ids == ["GPU-cccc-2", "3"] and not pinned.count


def test_each_batch_gets_a_profile_tuned_for_it() -> None:
    assert batch_profiles((1,)) == [(1, 1, 1)]
    assert batch_profiles((4, 1)) == [(1, 1, 1), (2, 4, 4)]
    profiles = batch_profiles((1, 2, 8))
    assert profiles == [(1, 1, 1), (2, 2, 2), (3, 8, 8)]
    assert [profile_for(profiles, b) for b in (1, 2, 3, 8)] == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="batch 9 is outside every profile"):
        profile_for(profiles, 9)


def test_quantizing_for_tensorrt_needs_no_gpu() -> None:
    """TensorRT int8's QDQ source model is planned only where TensorRT int8 can run, and made by
    its job wherever that runs: in a GPU host's GPU-less container too (test_docker.py)."""
    planned = skip_reason("qdq", "int8", "cpu")
    assert planned == skip_reason("tensorrt", "int8", "cuda") and planned  # no GPU here
    assert skip_reason("qdq", "int8", "cpu", job=True) == ""


def test_a_run_that_requires_a_gpu_fails_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from deploybench.backends.base import REQUIRE_GPU_ENV, cuda_device_reason

    monkeypatch.setenv(REQUIRE_GPU_ENV, "0")  # and restored after the test, which sets it
    assert cuda_device_reason().startswith("no CUDA device")  # not required: a skip reason
    with pytest.raises(UserError, match="this run requires a GPU .* and no CUDA device"):
        check_gpu_reachable({"runtime": "local"})
    with pytest.raises(UserError, match="requires a GPU"):
        skip_reason("onnxruntime", "fp32", "cuda")  # every later check in this process too


def test_snakemake_stops_before_any_job_when_the_required_gpu_is_missing(
        tmp_path: Path) -> None:
    """The GPU runner's profile on a machine whose GPU cannot be reached: the run fails at once,
    red, naming the problem, and writes nothing (not a run of skipped cells)."""
    from .test_pipeline import reduced_config, snakemake

    config = reduced_config(["rtmdet_tiny_shapes"])
    config["require_gpu"] = True
    run = snakemake(tmp_path / "work", config)
    assert run.returncode != 0
    assert "this run requires a GPU (config require_gpu" in run.stderr + run.stdout
    assert not (tmp_path / "work" / "results").exists()


def test_fp32_is_ieee_fp32_in_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """ORT's TensorRT EP has no TF32 switch: only NVIDIA_TF32_OVERRIDE=0 keeps its fp32 from
    being TF32. Every step sets it (and CUDA's PCI numbering) unless the user set a value."""
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    pin_gpu_environment()
    assert os.environ["NVIDIA_TF32_OVERRIDE"] == "0"
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "1")
    pin_gpu_environment()
    assert os.environ["NVIDIA_TF32_OVERRIDE"] == "1"
