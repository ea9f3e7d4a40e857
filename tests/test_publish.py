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


def _export_failed(root: Path) -> list[str]:
    """A run whose export ran out of disk: its record, and the measure and evaluate results of
    the cells that never ran for it."""
    export = root / "export" / "det" / "160x160.json"
    write_json(failure_path(export), record(
        "export", Cell("det", "detection", "onnx", "fp32", shape="160x160"), "failed",
        "OSError: [Errno 28] No space left on device", {}, {}))
    return [str(export), *(str(cell_path(root, DET_PT, step)) for step in ("measure", "evaluate"))]


def test_a_failed_remeasurement_keeps_its_own_reason(tmp_path: Path) -> None:
    docs = tmp_path / "reports" / "p"
    run(tmp_path, "r1", write_results(tmp_path / "r1"), docs)
    after = run(tmp_path, "d1", _export_failed(tmp_path / "d1"), docs)
    pt = after[(after.model == "det") & (after.backend == "pytorch")].iloc[0]
    assert pt.status == "ok" and pt.run == "r1"
    assert pt.remeasure.endswith("(run d1): no result (export failed: OSError: [Errno 28] No "
                                 "space left on device)")
    assert "never ran" not in (docs / "benchmark.md").read_text()


def test_each_number_names_its_run(tmp_path: Path) -> None:
    """A partial run that evaluated a cell again leaves its latency from the run before: the
    row names both, and the tables say which run each number is from."""
    docs = tmp_path / "reports" / "p"
    run(tmp_path, "r1", write_results(tmp_path / "r1"), docs)
    root = tmp_path / "d1"
    write_json(cell_path(root, DET_PT, "evaluate"), record("evaluate", DET_PT, "ok", "", {
        "metrics": {"bbox_mAP": 0.801, "bbox_mAP_50": 0.95}, "num_images": 150}, {}))
    after = run(tmp_path, "d1", [str(cell_path(root, DET_PT, "evaluate"))], docs)
    pt = after[(after.model == "det") & (after.backend == "pytorch")].iloc[0]
    assert (pt.run, pt.evaluate_run, pt.bbox_mAP, pt.latency_ms_median) == \
        ("r1", "d1", 0.801, 40.25)
    assert pt.measured_at < pt.evaluated_at
    md = re.sub(r" +", " ", (docs / "benchmark.md").read_text())
    # the accuracy table's "evaluated" row: date, commit, run, and the latency's other run
    assert f"| {pt.evaluated_at[:10]} " in md and "(run d1); latency from run r1 |" in md
    ort = after[(after.model == "det") & (after.backend == "onnxruntime")].iloc[0]
    assert (ort.run, ort.evaluate_run) == ("r1", "r1")


def test_flags_belong_to_their_measurement(tmp_path: Path) -> None:
    """A cell's busy flag is judged against its own run's cells: publishing another run that
    replaces some of them leaves the flags of the rest as they were."""
    docs = tmp_path / "reports" / "p"
    root = tmp_path / "r1"
    cells = [Cell(f"m{i}", "detection", "pytorch", "fp32", shape="160x160") for i in range(6)]
    # The run's typical kernel reading is 2.6 ms: no cell is 25 % slower than that.
    for c, kernel in zip(cells, (2.6, 2.6, 2.6, 2.6, 2.0, 2.0), strict=True):
        write_json(cell_path(root, c), measure_record(c, [10.0, 10.1, 9.9], kernel))
    first = run(tmp_path, "r1", [str(cell_path(root, c)) for c in cells], docs)
    assert not first.busy.any()
    # Another run replaces m0-m2. Judged again among r1's remaining rows (typical 2.0 ms), m3
    # would be 30 % slow, "busy"; its flag stays what its run said.
    root = tmp_path / "r2"
    for c in cells[:3]:
        write_json(cell_path(root, c), measure_record(c, [8.0, 8.1, 7.9], 2.0))
    merged = run(tmp_path, "r2", [str(cell_path(root, c)) for c in cells[:3]], docs)
    m3 = merged[merged.model == "m3"].iloc[0]
    assert m3.run == "r1" and m3.busy == False  # noqa: E712 - a stored flag, not recomputed
    records = (docs / "records.jsonl").read_text()
    assert records.count('"flags": {"busy": false') == 6


def test_a_model_retires_from_the_docs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`deploybench records remove`: the model's rows, page and link go; every other row of
    results.csv stays byte for byte."""
    from deploybench.cli import main

    reports = tmp_path / "reports"
    run(tmp_path, "full", write_results(tmp_path / "full"), reports / "p")
    before = (reports / "p" / "results.csv").read_text().splitlines()
    assert main(["records", "remove", "--reports", str(reports), "--profile", "p", "--model",
                 "seg", "--config", str(tmp_path / "none.yaml")]) == 0
    assert re.search(r"removed \d+ records of seg from", capsys.readouterr().out)
    after = (reports / "p" / "results.csv").read_text().splitlines()
    assert after == [line for line in before if not line.startswith("seg,")]
    assert len(after) == 3 and not (reports / "p" / "models" / "seg.md").exists()
    assert "models/seg.md" not in (reports / "p" / "README.md").read_text()
    assert '"seg"' not in (reports / "p" / "records.jsonl").read_text()
    # One cell of a model; a model that is not there is named with the ones that are.
    assert main(["records", "remove", "--reports", str(reports), "--profile", "p", "--model",
                 "det", "--backend", "onnxruntime"]) == 0
    assert list(pd.read_csv(reports / "p" / "results.csv").backend) == ["pytorch"]
    assert main(["records", "remove", "--reports", str(reports), "--profile", "p", "--model",
                 "sge"]) == 2
    assert "no published record of sge in" in capsys.readouterr().err
    assert main(["records", "remove", "--profile", "../p", "--model", "det"]) == 2
