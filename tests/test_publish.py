"""Publishing merges a run into the committed docs: no run removes numbers it did not measure."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from deploybench.atomic import write_json
from deploybench.report.build import build_report
from deploybench.report.publish import publish
from deploybench.results import Cell, failure_path, record

from .test_report import GATES, measure_record, write_results

DET_PT = Cell("det", "detection", "pytorch", "fp32", shape="160x160")
DET_ORT = Cell("det", "detection", "onnxruntime", "fp32", shape="160x160")


def cell_path(root: Path, cell: Cell, step: str = "measure") -> Path:
    return root / step / cell.model / cell.shape / cell.device / \
        f"{cell.backend}-{cell.precision}-b1.json"


def run(tmp: Path, name: str, results: list[str], docs: Path) -> pd.DataFrame:
    """`name`'s report from `results`, published into `docs`; the published table."""
    build_report(results, "p", tmp / name / "report", GATES, run=name)
    publish(tmp / name / "report", docs, profile="p", tolerances=GATES, run=name)
    return pd.read_csv(docs / "results.csv")


def test_a_run_keeps_what_it_did_not_remeasure(tmp_path: Path) -> None:
    docs = tmp_path / "reports" / "p"
    full = run(tmp_path, "full", write_results(tmp_path / "full"), docs)
    assert len(full) == 4 and list(full.status) == ["ok", "ok", "ok", "failed"]

    # A subset run (one cell, faster now) replaces that cell only.
    root = tmp_path / "subset"
    write_json(cell_path(root, DET_ORT), measure_record(DET_ORT, [15.0, 15.0, 15.0]))
    merged = run(tmp_path, "subset", [str(cell_path(root, DET_ORT))], docs)
    assert len(merged) == 4
    ort = merged[(merged.model == "det") & (merged.backend == "onnxruntime")].iloc[0]
    assert ort.latency_ms_median == 15.0 and ort.run == "subset"
    assert ort.bbox_mAP == 0.799  # its accuracy, not re-measured, is kept
    pt = merged[(merged.model == "det") & (merged.backend == "pytorch")].iloc[0]
    assert pt.latency_ms_median == 40.25 and pt.run == "full"
    assert set(merged[merged.model == "seg"].status) == {"ok", "failed"}

    # A failed re-measurement keeps the last good numbers and shows the failure beside them.
    root = tmp_path / "broken"
    write_json(failure_path(cell_path(root, DET_PT)), record(
        "measure", DET_PT, "failed", "RuntimeError: out of memory", {}, {}))
    missing = cell_path(root, DET_ORT)  # and a cell that never ran (an interrupted run)
    after = run(tmp_path, "broken", [str(cell_path(root, DET_PT)), str(missing)], docs)
    assert len(after) == 4
    pt = after[(after.model == "det") & (after.backend == "pytorch")].iloc[0]
    assert pt.status == "ok" and pt.latency_ms_median == 40.25
    assert "failed on" in pt.remeasure and "out of memory" in pt.remeasure
    assert after[after.backend == "onnxruntime"].latency_ms_median.iloc[0] == 15.0
    md = re.sub(r" +", " ", (docs / "benchmark.md").read_text())
    assert "| det | 160x160 | pytorch | cpu | fp32 | last good numbers kept | re-measurement " \
           "failed on" in md
    assert "Cells from runs `full`, `subset`" in md  # nothing of `broken` was good

    # Publishing is a pure function of the records: the same run again, the same bytes.
    before = {p: p.read_bytes() for p in docs.rglob("*") if p.is_file()}
    assert docs / "models" / "det.md" in before  # one page per model
    publish(tmp_path / "broken" / "report", docs, profile="p", tolerances=GATES, run="broken")
    assert {p: p.read_bytes() for p in docs.rglob("*") if p.is_file()} == before


def test_a_failure_where_nothing_was_good_is_shown(tmp_path: Path) -> None:
    docs = tmp_path / "reports" / "p"
    root = tmp_path / "first"
    write_json(failure_path(cell_path(root, DET_PT)), record(
        "measure", DET_PT, "failed", "bad input shape", {}, {}))
    table = run(tmp_path, "first", [str(cell_path(root, DET_PT))], docs)
    assert list(table.status) == ["failed"] and "bad input shape" in table.reason.iloc[0]


def test_machines_page_sets_profiles_side_by_side(tmp_path: Path) -> None:
    """reports/README.md lists every profile with its machine, and once two exist, the cells
    both measured side by side (a cell one machine alone has is left out)."""
    import pandas as pd

    from deploybench.atomic import write_json
    from deploybench.report.machines import write_index

    def profile(name: str, cpu: str, cells: dict[tuple[str, str], float]) -> None:
        rows = [{"model": "det", "resolution": "160x160", "backend": b, "precision": p,
                 "device": "cpu", "batch": 1, "status": "ok", "latency_ms_median": ms}
                for (b, p), ms in cells.items()]
        (tmp_path / name).mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / name / "results.csv", index=False)
        write_json(tmp_path / name / "environment.json", {
            "hardware": {"cpu": cpu, "cores": 2, "gpu": None},
            "created": ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"]})

    profile("laptop-2c", "Intel Core", {("pytorch", "fp32"): 40.0, ("openvino", "int8"): 9.0})
    first = re.sub(r" +", " ", write_index(tmp_path).read_text())
    assert "| [laptop-2c](laptop-2c/README.md) | Intel Core, 2 cores | none |" in first
    assert "One machine so far" in first
    profile("server-8c", "AMD EPYC", {("pytorch", "fp32"): 12.5})
    index = re.sub(r" +", " ", write_index(tmp_path).read_text())
    assert "| Model | Backend | laptop-2c | server-8c |" in index
    assert "| det 160x160 | pytorch fp32 (cpu) | 40.00 | 12.50 |" in index
    assert "openvino int8" not in index  # measured on one machine only


def test_publishes_into_one_reports_folder_take_turns(tmp_path: Path) -> None:
    """A run of several profiles publishes each, and every publish rewrites the machines index:
    one waits while another holds the folder, so no index misses a profile."""
    import subprocess
    import sys

    from deploybench.atomic import directory_lock

    reports = tmp_path / "reports"
    build_report(write_results(tmp_path / "r"), "p", tmp_path / "r" / "report", GATES, run="r")
    command = [sys.executable, "-m", "deploybench", "publish", "--run-report",
               str(tmp_path / "r" / "report"), "--to", str(reports / "p"), "--profile", "p",
               "--run", "r"]
    with directory_lock(reports):
        waiting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=10)  # it started (imports, reads the run) and now waits
        assert not (reports / "p").exists()
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, out
    assert "[p](p/README.md)" in (reports / "README.md").read_text()
