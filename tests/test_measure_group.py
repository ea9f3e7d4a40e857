"""Measure groups on a real detector: cells in worker processes, interleaved rounds, paired
speed-ups, stopping on precision or the time cap, a crash that fails one cell only, and idle
workers that stay off the cores."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deploybench.cell import CellInputs
from deploybench.export.onnx_export import export_onnx
from deploybench.measure.group import GroupSettings, Member, measure_group
from deploybench.results import Cell

from .conftest import checkpoint_path, model_entry

FAST = GroupSettings.of(warmup_iters=2, warmup_seconds=0.0, min_rounds=4, min_seconds=0.0,
                        max_seconds=20.0, slice_seconds=0.02, precision=0.5, stage_images=0,
                        threads=2, processes=2)


@pytest.fixture(scope="module")
def onnx_model(detector, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, sample, _ = next(detector.batches(detector.dataset(small_dataset)))
    path = tmp_path_factory.mktemp("group") / "d.onnx"
    export_onnx(detector, sample, path, 17)
    return path


def group(onnx_model: Path, small_dataset: Path, settings: GroupSettings,
          cells: list[tuple[str, str]]) -> list[tuple[str, str, dict]]:
    entry = model_entry("rtmdet_tiny_shapes")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset, None, threads=2)
    members = [Member(Cell("rtmdet_tiny_shapes", "detection", b, p),
                      None if b in ("pytorch", "torchscript") else onnx_model) for b, p in cells]
    return measure_group(members, inputs, [1, 3, 160, 160], None, settings, "forkserver")


def test_cells_are_timed_in_interleaved_rounds_with_paired_speedups(
        onnx_model: Path, small_dataset: Path) -> None:
    outcomes = group(onnx_model, small_dataset, FAST,
                     [("pytorch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"),
                      ("openvino", "fp32")])
    (pt, _, ref), (ort, _, o), skipped, (ov, _, v) = outcomes
    assert (pt, ort, ov) == ("ok", "ok", "ok")
    assert skipped[0] == "skipped" and "not fp16 on cpu" in skipped[1]
    info = ref["group"]
    assert info["cells"] == ["pytorch fp32", "onnxruntime fp32", "onnxruntime fp16",
                             "openvino fp32"]
    assert info["reference"] == "pytorch fp32" and info["stopped"] == "precision"
    rounds = info["rounds"]
    assert rounds >= FAST.min_rounds and info["slices"] == 3 * rounds
    # Every round ran every cell once, in an order of its own.
    orders = info["orders"]
    assert len(orders) == rounds and all(sorted(o) == [0, 1, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 1
    assert info["settings"]["processes"] == 2  # per cell, taking the rounds in turn
    for data in (ref, o, v):
        assert len(data["rounds_ms"]) == rounds and all(m > 0 for m in data["rounds_ms"])
        # the statistics are over the rounds that ran on the quiet machine (states.py)
        quiet = data["group"]["cell_quiet_rounds"]
        assert quiet == sum(info["quiet"]) and 2 <= quiet <= rounds
        assert len(data["samples_ms"]) == quiet * data["group"]["slice_calls"]
        assert data["group"]["slice_calls"] >= 3 and data["first_call_seconds"] > 0
    assert ref["speedup"] == {"vs": "pytorch fp32", "estimate": 1.0, "ci95_low": 1.0,
                              "ci95_high": 1.0, "rounds": sum(info["quiet"]),
                              "rel_halfwidth": 0.0, "is_reference": True}
    assert len(info["slowdown"]) == rounds and all(s > 0 for s in info["slowdown"])
    # The speed-up is the geometric mean of the per-round ratios of the slice medians, over
    # the quiet rounds.
    ratios = (np.array(ref["rounds_ms"]) / np.array(o["rounds_ms"]))[np.array(info["quiet"])]
    speedup = o["speedup"]
    assert speedup["estimate"] == pytest.approx(float(np.exp(np.log(ratios).mean())))
    assert speedup["ci95_low"] < speedup["estimate"] < speedup["ci95_high"]
    assert speedup["rounds"] == sum(info["quiet"]) and speedup["vs"] == "pytorch fp32"
    # The absolute median's interval holds the median; the window's kernel is recorded.
    latency = o["latency_ms"]
    assert latency["median_ci95_low"] <= latency["median"] <= latency["median_ci95_high"]
    assert o["machine_state"]["reference_ms"]["before"] > 0
    # What each worker runs with so that it does not spin while it waits, and what it took.
    assert o["runtime_settings"]["session.force_spinning_stop"] == "1"
    assert ref["runtime_settings"]["GOMP_SPINCOUNT"] == "10000"
    assert all(d["runtime_settings"]["malloc M_TRIM_THRESHOLD"] == str(2**31 - 1)
               for d in (ref, o, v))  # each worker's heap keeps what it frees
    for data in (ref, o, v):
        assert data["idle"]["wall_seconds"] > 0
        assert data["idle"]["cores"] < 0.2, data["idle"]


def test_rounds_stop_at_the_time_cap_short_of_the_precision(onnx_model: Path,
                                                            small_dataset: Path) -> None:
    settings = replace(FAST, precision=1e-6, max_seconds=1.5, min_rounds=2)
    outcomes = group(onnx_model, small_dataset, settings,
                     [("pytorch", "fp32"), ("onnxruntime", "fp32")])
    data = outcomes[1][2]
    assert data["group"]["stopped"] == "time cap"
    assert 1.5 <= data["group"]["window_s"] < 10
    assert data["speedup"]["rel_halfwidth"] > 1e-6


def test_a_cell_that_crashes_fails_alone(onnx_model: Path, small_dataset: Path,
                                         capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    """A worker killed mid-rounds (a segfault in a runtime looks the same) and one whose model
    file is broken fail their cells with the reason; the group's other cells keep theirs."""
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    outcome: list = []
    cells = [("pytorch", "fp32", None), ("onnxruntime", "int8", broken),
             ("openvino", "fp32", onnx_model)]
    entry = model_entry("rtmdet_tiny_shapes")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset, None, threads=2)
    members = [Member(Cell("rtmdet_tiny_shapes", "detection", b, p), a) for b, p, a in cells]
    settings = replace(FAST, min_rounds=10_000, max_seconds=6.0)
    run = threading.Thread(target=lambda: outcome.extend(measure_group(
        members, inputs, [1, 3, 160, 160], None, settings, "forkserver")))
    run.start()
    printed = ""
    while "rounds:" not in printed and run.is_alive():
        time.sleep(0.2)
        printed += capfd.readouterr().out
    time.sleep(1.0)
    pid = int(re.search(r"openvino fp32: worker process (\d+)", printed).group(1))
    os.kill(pid, signal.SIGKILL)
    run.join()
    (pt, _, data), (bad, why_bad, _), (died, why_died, _) = outcome
    assert pt == "ok" and data["group"]["stopped"] == "time cap"
    assert bad == "failed" and "protobuf" in why_bad.lower()
    assert died == "failed" and "died during slice (exit code -9)" in why_died
    assert data["group"]["cells"] == ["pytorch fp32", "onnxruntime int8", "openvino fp32"]
