"""Stage breakdown on a real model, machine state, and runners that share the cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deploybench.backends import get_backend
from deploybench.measure.machine_state import GpuSampler, cpu_state, peak_rss_mib
from deploybench.measure.stages import STAGES, time_stages


@pytest.mark.parametrize("path", ["reference", "tensor"])
def test_stages_add_up_to_end_to_end(path: str, detector, small_dataset: Path) -> None:
    dataset = detector.dataset(small_dataset)
    runner = get_backend("onnxruntime" if path == "tensor" else "pytorch")
    if path == "tensor":  # the tensor path feeding a host backend (torch CPU tensor -> numpy)
        from deploybench.export.onnx_export import export_onnx

        _, sample, _ = next(detector.batches(dataset))
        onnx = small_dataset.parent / "stages.onnx"
        export_onnx(detector, sample, onnx, 17)
        runner = runner.load(detector, onnx, "fp32", "cpu", 2)
    else:
        runner = runner.load(detector, None, "fp32", "cpu", 2)
    result = time_stages(detector, dataset, runner, images=8, warmup=1, path=path)
    assert result["path"] == path and result["images"] == 8
    assert set(result["stages_ms"]) == set(STAGES)
    for stage in ("decode", "preprocess", "network", "postprocess"):
        assert result["stages_ms"][stage]["median"] > 0, stage
    e2e = result["end_to_end_samples_ms"]
    assert len(e2e) == 8
    # The stages cover the end-to-end time up to the cost of reading the clock. Stated
    # tolerance: per image (median) within 0.5 ms, and over all images within 2 %; a single
    # image may also hold a garbage-collection pause between two stages.
    assert 0 <= result["unaccounted_ms_median"] <= 0.5
    stage_total = sum(8 * result["stages_ms"][s]["mean"] for s in STAGES)
    assert stage_total == pytest.approx(sum(e2e), rel=0.02)
    # (The sum of the stage medians is not the median of the totals: on a loaded 2-core
    # machine one skewed stage moved them 27 % apart with the accounting above exact, so that
    # is not asserted; the docs say the stage medians need not add up.)


def test_machine_state_is_recorded() -> None:
    state = cpu_state()
    assert state["loadavg_1m"] >= 0 and set(state) == {"governor", "mhz_mean", "loadavg_1m"}
    assert peak_rss_mib() > 10  # this process holds torch and numpy
    with GpuSampler() as gpu:  # without NVML (or a GPU) there is nothing to sample
        np.ones(10).sum()
    summary = gpu.summary()
    assert summary is None or {"sm_mhz", "temperature_c", "throttled"} <= set(summary)


def test_torch_runners_take_tensor_path_batches_as_ordinary_tensors(segmentor) -> None:
    """The tensor path's batch is an inference tensor; compiled graphs would recompile for it."""
    import torch

    runner = get_backend("pytorch").load(segmentor, None, "fp32", "cpu", 1)
    with torch.inference_mode():
        batch = torch.ones(1, 3, 8, 8)
    x = runner.to_device(batch)
    assert batch.is_inference() and not x.is_inference() and torch.equal(x, batch)


def test_onnxruntime_stops_spinning_to_share_the_cores(detector, small_dataset: Path) -> None:
    from deploybench.export.onnx_export import export_onnx

    _, sample, _ = next(detector.batches(detector.dataset(small_dataset)))
    onnx = small_dataset.parent / "spinning.onnx"
    export_onnx(detector, sample, onnx, 17)
    runner = get_backend("onnxruntime").load(detector, onnx, "fp32", "cpu", 2)
    x = np.ascontiguousarray(sample.numpy())
    before = runner.infer(x)

    def spinning() -> str:
        options = runner.session.get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning() == "1"  # ORT's default, for the network-only latency
    assert runner.share_cores() == {"session.intra_op.allow_spinning": "0"}
    assert spinning() == "0"
    for a, b in zip(runner.infer(x), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert get_backend("pytorch").load(detector, None, "fp32", "cpu", 1).share_cores() == {}
