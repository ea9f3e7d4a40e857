"""The report step: a pure function of result files, failed and missing cells shown with why."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from deploybench.atomic import write_json
from deploybench.report.build import build_report
from deploybench.results import Cell, failure_path, record

SETTINGS = {"threads": 2, "stopping_rule": {"warmup_iters": 5, "warmup_seconds": 1.0,
                                            "min_iters": 20, "min_seconds": 3.0}}


def measure_record(cell: Cell, samples: list[float]) -> dict:
    from deploybench.measure.stats import latency_stats

    stats = latency_stats(samples)
    return record("measure", cell, "ok", "", {
        "input_shape": [1, 3, 160, 160], "samples_ms": samples, "fps": stats.pop("fps"),
        "latency_ms": stats}, SETTINGS)


def write_results(root: Path) -> list[str]:
    det_pt = Cell("det", "detection", "pytorch", "fp32")
    det_ort = Cell("det", "detection", "onnxruntime", "fp32")
    seg_pt = Cell("seg", "segmentation", "pytorch", "fp32")
    seg_ort = Cell("seg", "segmentation", "onnxruntime", "fp32")
    paths = {c: {s: root / s / c.model / f"{c.backend}-{c.precision}-b1.json"
                 for s in ("measure", "evaluate")} for c in (det_pt, det_ort, seg_pt, seg_ort)}
    write_json(paths[det_pt]["measure"], measure_record(det_pt, [40.0, 41.0, 39.0, 40.5]))
    write_json(paths[det_ort]["measure"], measure_record(det_ort, [20.0, 21.0, 60.0, 20.5]))
    write_json(paths[det_pt]["evaluate"], record("evaluate", det_pt, "ok", "", {
        "metrics": {"bbox_mAP": 0.8, "bbox_mAP_50": 0.95}, "num_images": 150}, {}))
    write_json(paths[det_ort]["evaluate"], record("evaluate", det_ort, "ok", "", {
        "metrics": {"bbox_mAP": 0.799, "bbox_mAP_50": 0.95}, "num_images": 150}, {}))
    write_json(paths[seg_pt]["measure"], measure_record(seg_pt, [10.0, 10.1, 10.2]))
    write_json(paths[seg_pt]["evaluate"], record("evaluate", seg_pt, "ok", "", {
        "metrics": {"mIoU": 85.0, "aAcc": 98.0, "mAcc": float("nan")}, "num_images": 150}, {}))
    # seg on onnxruntime: measure failed (its record sits beside the output), evaluate never ran.
    write_json(failure_path(paths[seg_ort]["measure"]), record(
        "measure", seg_ort, "failed", "the test pipeline produced input shape [1, 3, 128, 128]",
        {}, {}))
    return [str(p) for c in paths.values() for p in c.values()]


def test_report_contents(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results")
    failed = build_report(results, "test-profile", tmp_path / "out")
    assert failed == 1
    md = re.sub(r" +", " ", (tmp_path / "out" / "benchmark.md").read_text())
    assert "# Benchmark: test-profile" in md
    assert "network only" in md  # every latency header says what it covers
    assert "| det | detection | 1x3x160x160 | 40.25 | 24.8 | 20.75 | 48.2 |" in md
    assert "0.799 (-0.001)" in md  # accuracy delta vs PyTorch fp32
    assert "85.00 (+0.00)" in md
    assert "(noisy)" in md  # the onnxruntime cell's 60 ms outlier
    assert "measure: the test pipeline produced input shape [1, 3, 128, 128]" in md
    assert "evaluate: no result" in md
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    for column in ["model", "task", "backend", "precision", "batch", "status", "reason",
                   "latency_ms_median", "latency_ms_mean", "latency_ms_p90", "latency_ms_p99",
                   "latency_cov", "fps", "bbox_mAP", "segm_mAP", "mIoU", "aAcc"]:
        assert column in csv.columns
    assert list(csv.status) == ["ok", "ok", "ok", "failed"]
    assert csv.loc[1, "bbox_mAP"] == 0.799 and pd.isna(csv.loc[1, "mIoU"])
    assert csv.loc[0, "fps"] == pytest.approx(1000 / 40.25, rel=1e-5)


def test_report_is_byte_identical(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results")
    build_report(results, "p", tmp_path / "a")
    build_report(results, "p", tmp_path / "b")
    for name in ("benchmark.md", "results.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
