"""The report step: a pure function of result files, failed and missing cells shown with why."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deploybench.atomic import write_json
from deploybench.report.build import build_report
from deploybench.results import Cell, failure_path, record

EVALUATED = Path("evaluate") / "det" / "160x160" / "cpu"  # under results/
GATES = {"bbox_mAP": {"fp32": 0.001, "int8": 0.02}, "mIoU": {"fp32": 0.1}}
SETTINGS = {"threads": 2}


def measure_record(cell: Cell, samples: list[float], reference_ms: float = 2.0,
                   other_cores: float = 0.1) -> dict:
    from deploybench.measure.stats import latency_stats

    stats = latency_stats(samples)
    state = {"reference_ms": {"before": reference_ms, "after": reference_ms},
             "other_load": {"other_cores": other_cores, "steal_cores": 0.0, "window_s": 1.0}}
    return record("measure", cell, "ok", "", {
        "input_shape": [1, 3, *map(int, cell.shape.split("x"))], "samples_ms": samples,
        "fps": stats.pop("fps"), "latency_ms": stats, "machine_state": state}, SETTINGS)


def write_results(root: Path) -> list[str]:
    det_pt = Cell("det", "detection", "pytorch", "fp32", shape="160x160")
    det_ort = Cell("det", "detection", "onnxruntime", "fp32", shape="160x160")
    seg_pt = Cell("seg", "segmentation", "pytorch", "fp32", shape="160x160")
    seg_ort = Cell("seg", "segmentation", "onnxruntime", "fp32", shape="160x160")
    paths = {c: {s: root / s / c.model / c.shape / c.device / f"{c.backend}-{c.precision}-b1.json"
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
    failed, outside = build_report(results, "test-profile", tmp_path / "out", GATES)
    assert (failed, outside) == (1, 0)
    md = re.sub(r" +", " ", (tmp_path / "out" / "benchmark.md").read_text())
    assert "# Benchmark: test-profile" in md
    assert "network only" in md  # every latency header says what it covers
    assert "| det | detection | 1x3x160x160 | 40.25 | 24.8 | 20.75 | 48.2 |" in md
    assert "0.799 (-0.001)" in md  # accuracy delta vs PyTorch fp32
    assert "85.00 (+0.00)" in md
    # Four samples: the median's interval is wide.
    assert "unstable (+-" in md
    assert "measure: the test pipeline produced input shape [1, 3, 128, 128]" in md
    assert "evaluate: no result" in md and "see logs/evaluate/seg/ and logs/fetch/" in md
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    for column in ["model", "task", "resolution", "backend", "device", "precision", "batch",
                   "status", "reason",
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
    for name in ("README.md", "benchmark.md", "results.csv", "latency-accuracy.svg", "stages.svg",
                 "latency-distribution.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_report_draws_its_figures(tmp_path: Path) -> None:
    """The figures sit beside the docs, linked from them, with their axis labels and legend as
    text; a figure with nothing to show says so instead of drawing empty axes."""
    build_report(write_results(tmp_path / "results"), "p", tmp_path / "out", GATES)
    front = (tmp_path / "out" / "README.md").read_text()
    figure = (tmp_path / "out" / "latency-accuracy.svg").read_text()
    assert "![Latency against accuracy](latency-accuracy.svg)" in front
    assert "[Accuracy](benchmark.md#accuracy)" in front  # the details, one click away
    for text in ("network latency, median ms (log scale)", "COCO box AP", "mIoU (%)",
                 "pytorch", "onnxruntime", "fp32", "det 160x160 (cpu)"):
        assert f">{text}<" in figure, text
    assert "Date" not in figure and "Matplotlib v" not in figure  # nothing of when or where
    distribution = (tmp_path / "out" / "latency-distribution.svg").read_text()
    assert ">network latency per call, ms (log scale)<" in distribution
    assert ">No cell was timed end to end.<" in (tmp_path / "out" / "stages.svg").read_text()
    assert not (tmp_path / "out" / "throughput.svg").exists()  # batch 1 only


def test_pareto_front_keeps_the_cells_nothing_beats() -> None:
    from deploybench.report.plots import pareto

    points = [(10.0, 0.80), (5.0, 0.70), (20.0, 0.80), (7.0, 0.75), (8.0, 0.74)]
    assert pareto(points) == [(5.0, 0.70), (7.0, 0.75), (10.0, 0.80)]


def test_accuracy_gates_mark_and_strict_fails(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    from deploybench.cli import main

    results = write_results(tmp_path / "results")
    # An int8 cell 0.05 AP below PyTorch fp32: outside its 0.02 gate.
    int8 = Cell("det", "detection", "onnxruntime", "int8", shape="160x160")
    path = tmp_path / "results" / EVALUATED / "onnxruntime-int8-b1.json"
    write_json(path, record("evaluate", int8, "ok", "", {
        "metrics": {"bbox_mAP": 0.75}, "num_images": 150}, {}))
    results.append(str(path))
    timed = tmp_path / "results" / "measure" / "det" / "160x160" / "cpu" / path.name
    write_json(timed, measure_record(int8, [10.0, 10.5, 9.5, 10.2]))  # the fastest cell
    results.append(str(timed))
    failed, outside = build_report(results, "p", tmp_path / "out", GATES)
    assert (failed, outside) == (1, 1)
    md = re.sub(r" +", " ", (tmp_path / "out" / "benchmark.md").read_text())
    assert "0.750 (-0.050) **outside gate**" in md
    assert "0.799 (-0.001)" in md and "0.799 (-0.001) **" not in md  # fp32: within 0.001
    assert "det 160x160 onnxruntime int8 (cpu) bbox_mAP drop 0.05 > 0.02" in md
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    # PyTorch fp32 is the reference, not checked against itself (a check that cannot fail).
    assert list(csv.gate_passed.fillna("n/a").astype(str))[:2] == ["n/a", "True"]
    assert "1 of 2 checks passed" in md
    # The summary marks the fastest cell whose accuracy passed: not the int8 one that failed.
    front = re.sub(r" +", " ", (tmp_path / "out" / "README.md").read_text())
    summary = front[front.index("## Summary"):front.index("## Figures")]
    assert "**20.75 ms**<br>**0.799**" in summary
    assert "<br>0.750<br>gate failed" in summary and "**0.750**" not in summary
    # --strict turns it into a failing exit code, after writing the docs.
    ok = [r for r in results if "seg" not in r]  # without the failed cell
    args = ["report", "--profile", "p", "--out-dir", str(tmp_path / "strict"), *ok]
    gates = ["--gates", '{"bbox_mAP": {"int8": 0.02}}']
    assert main([*args, *gates]) == 0
    assert main([*args, "--strict"]) == 0  # no gates: nothing outside
    assert main([*args, *gates, "--strict"]) == 1
    assert (tmp_path / "strict" / "benchmark.md").is_file()
    assert "accuracy outside its gate" in capsys.readouterr().err
    assert main([*args, "--gates", "{bad"]) == 2


def test_parity_and_speedups_are_shown(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results")
    det_ort = Cell("det", "detection", "onnxruntime", "fp32", shape="160x160")
    path = tmp_path / "results" / EVALUATED / "onnxruntime-fp32-b1.json"
    write_json(path, record("evaluate", det_ort, "ok", "", {
        "metrics": {"bbox_mAP": 0.799}, "num_images": 150,
        "parity": {"images": 20, "reference_boxes": 40, "boxes_matched": 0.975,
                   "mean_score_diff": 0.0012, "outputs": [
                       {"output": "output_0_0", "max_abs": 2e-5, "max_rel": 1e-6,
                        "cosine": 0.99999},
                       {"output": "output_1_0", "max_abs": 1e-4, "max_rel": 3e-6,
                        "cosine": 0.999999}]}}, {}))
    build_report(results, "p", tmp_path / "out", GATES)
    md = re.sub(r" +", " ", (tmp_path / "out" / "benchmark.md").read_text())
    assert ("| det | 160x160 | onnxruntime | cpu | fp32 | 20 | 1.00e-04 | 3.00e-06 | 0.999990 "
            "| output_1_0 | reference boxes found 39/40 (97.5 %); cell boxes in the reference "
            "n/a (no box); mean score diff 0.0012 |") in md
    assert "| output_0_0 | 2.00e-05 | 1.00e-06 | 0.999990 |" in md
    # onnxruntime fp32 median 20.75 ms vs PyTorch fp32 40.25 ms: 1.94x
    assert "| 1.94 |" in md


def group_records(rounds: dict[Cell, list[list[float]]], stopped: str = "precision"
                  ) -> list[dict]:
    """The records a measure group writes for these per-round slices (the first cell is the
    group's reference), computed by the group's own code."""
    from dataclasses import asdict

    from deploybench.measure.group import GroupSettings, Member, Worker, _data

    workers = [Worker(Member(c, None), None, None, ready={"input_shape": [1, 3, 160, 160]},
                      first_call=0.1, calls=len(r[0]), rounds=r, stopped=stopped)
               for c, r in rounds.items()]
    from deploybench.measure.states import quiet_rounds, slowdowns

    count = len(next(iter(rounds.values())))
    medians = [[float(np.median(s)) for s in r] for r in rounds.values()]
    group = {"rounds": count, "slices": count * len(workers), "stopped": stopped,
             "quiet": quiet_rounds(medians, GroupSettings.of().quiet_tolerance),
             "slowdown": slowdowns(medians),
             "window_s": 12.0, "orders": [], "reference": "pytorch fp32",
             "cells": [f"{c.backend} {c.precision}" for c in rounds],
             "settings": asdict(GroupSettings.of())}
    machine = {"reference_ms": {"before": 2.0, "after": 2.1},
               "other_load": {"other_cores": 0.1, "steal_cores": 0.0, "window_s": 12.0}}
    settings = {"threads": 2, "group_settings": asdict(GroupSettings.of())}
    return [record("measure", w.member.cell, "ok", "", _data(w, workers[0], group, machine),
                   settings) for w in workers]


def test_speedups_from_paired_rounds_and_ties_shown_as_ties(tmp_path: Path) -> None:
    """Drift that slows every cell of a round alike leaves the speed-ups tight while the
    absolute medians spread; the fastest cell is bold only where its interval separates it,
    and cells it is not told apart from are marked as a tie."""
    rng = np.random.default_rng(0)
    drift = np.exp(rng.normal(0, 0.3, 40))  # the machine's speed, round by round

    def slices(ms: float, noise: float = 0.01) -> list[list[float]]:
        return [list(ms * d * np.exp(rng.normal(0, noise, 5))) for d in drift]

    def cell(model: str, backend: str, precision: str = "fp32") -> Cell:
        return Cell(model, "detection", backend, precision, shape="160x160")

    det = {cell("det", "pytorch"): slices(40.0), cell("det", "onnxruntime"): slices(20.0),
           cell("det", "openvino"): slices(20.0)}  # a tie with ONNX Runtime
    seg = {cell("seg", "pytorch"): slices(10.0), cell("seg", "onnxruntime"): slices(5.0),
           cell("seg", "openvino"): slices(7.0)}
    paths = []
    for records in (group_records(det), group_records(seg, stopped="time cap")):
        for r in records:
            c = Cell(**r["cell"])
            path = tmp_path / "measure" / c.model / c.shape / "cpu" / f"{c.backend}-fp32-b1.json"
            write_json(path, r)
            paths.append(str(path))
    build_report(paths, "p", tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "results.csv").set_index(["model", "backend"])
    ort = csv.loc[("det", "onnxruntime")]
    assert ort.speedup == pytest.approx(2.0, rel=0.01)
    assert ort.speedup_ci95_low < 2.0 < ort.speedup_ci95_high
    assert (ort.speedup_ci95_high - ort.speedup_ci95_low) / 2 / ort.speedup < 0.01
    assert ort.rounds == 40 and ort.slice_calls == 5 and ort.group_stopped == "precision"
    # the rounds that the drift slowed by more than the quiet tolerance are left out
    assert 5 < ort.quiet_rounds < 30
    assert csv.loc[("det", "pytorch")].speedup == 1.0
    md = re.sub(r" +", " ", (tmp_path / "out" / "benchmark.md").read_text())
    assert re.search(r"\| det \| detection \| 1x3x160x160 \| [0-9.]+ \(ref\) \|", md)
    assert re.search(r"\| onnxruntime \| cpu \| fp32 \| 1 \| [0-9.]+ \| [0-9.-]+ \| 2\.00 \| "
                     r"1\.9[0-9]+-2\.0[0-9]+ \|", md)
    assert md.count("time cap (speed-up +-") == 2  # the seg group's two compared cells
    assert "stopped at their group's time cap" in md
    front = (tmp_path / "out" / "README.md").read_text()
    det_row = next(line for line in front.splitlines() if line.startswith("| det"))
    assert det_row.count("tie") == 2 and "**x2.00**" in det_row
    seg_row = next(line for line in front.splitlines() if line.startswith("| seg"))
    assert "tie" not in seg_row and re.search(r"\*\*x(1\.9[89]|2\.0[0-2])\*\*", seg_row)
    assert "x1.43" in seg_row
    assert "**x1.43**" not in seg_row


def test_results_from_before_groups_still_render(tmp_path: Path) -> None:
    """Published records of the repeats era: pooled, their interval over the repeats."""
    cell = Cell("det", "detection", "onnxruntime", "fp32", shape="160x160")
    root = tmp_path / "measure" / "det" / "160x160" / "cpu"
    paths = []
    for r, base in enumerate([10.0, 10.1, 11.5], start=1):
        path = root / f"onnxruntime-fp32-b1-r{r}.json"
        write_json(path, measure_record(cell, [base, base + 0.1, base - 0.1]))
        paths.append(str(path))
    build_report(paths, "p", tmp_path / "out")
    row = pd.read_csv(tmp_path / "out" / "results.csv").iloc[0]
    assert row.repeats == 3 and row.latency_samples == 9 and pd.isna(row.speedup)
    assert row.latency_ms_median_ci95_low < 10.0 and row.latency_ms_median_ci95_high > 11.4
    assert "medians less than about" in (tmp_path / "out" / "benchmark.md").read_text()


def test_each_shape_is_its_own_row_and_compared_at_its_shape(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results")
    root = tmp_path / "results"
    for backend, ms, ap in (("pytorch", 90.0, 0.85), ("onnxruntime", 45.0, 0.84)):
        cell = Cell("det", "detection", backend, "fp32", shape="320x320")
        for step in ("measure", "evaluate"):
            path = root / step / "det" / "320x320" / "cpu" / f"{backend}-fp32-b1.json"
            data = (measure_record(cell, [ms, ms, ms]) if step == "measure" else record(
                "evaluate", cell, "ok", "", {"metrics": {"bbox_mAP": ap}, "num_images": 150}, {}))
            write_json(path, data)
            results.append(str(path))
    build_report(results, "p", tmp_path / "out", GATES)
    md = re.sub(r" +", " ", (tmp_path / "out" / "benchmark.md").read_text())
    assert "| det | detection | 1x3x160x160 | 40.25 |" in md
    assert re.search(r"\| det \| detection \| 1x3x320x320 \| 90\.00 \| [0-9.]+ \| 45\.00 \|", md)
    # Accuracy and gates compare each shape with PyTorch fp32 at the same shape.
    assert "| det | 320x320 | 150 | bbox_mAP (COCO box AP, 0-1) | 0.850 (+0.000) | " \
           "0.840 (-0.010) **outside gate** |" in md
    assert "| det | 160x160 | 150 | bbox_mAP (COCO box AP, 0-1) | 0.800 (+0.000) | " \
           "0.799 (-0.001) |" in md


def test_busy_machine_flags_only_the_cells_it_touched(tmp_path: Path) -> None:
    """Other processes' CPU time during a window, or a reference kernel slower than the run's
    typical: those cells are flagged and named at the top; the others are not."""
    root = tmp_path / "measure" / "det" / "160x160" / "cpu"
    paths = []
    for backend, reference, other in (("pytorch", 2.0, 0.1), ("onnxruntime", 2.1, 0.9),
                                      ("openvino", 3.0, 0.1), ("torchscript", 1.9, 0.2)):
        cell = Cell("det", "detection", backend, "fp32", shape="160x160")
        path = root / f"{backend}-fp32-b1.json"
        write_json(path, measure_record(cell, [10.0] * 20, reference, other))
        paths.append(str(path))
    build_report(paths, "p", tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(csv.busy) == [False, True, True, False]
    md = re.sub(r" +", " ", (tmp_path / "out" / "benchmark.md").read_text())
    assert "**2 of 4 cells were measured while this machine was busy" in md
    assert "det onnxruntime fp32 (cpu, b1), det openvino fp32 (cpu, b1)." in md


def test_published_metrics_are_gated_on_the_whole_split_only() -> None:
    from deploybench.report.published import published_checks

    def row(model: str, backend: str, value: float, images: int) -> dict:
        return {"model": model, "resolution": "800x1344", "backend": backend,
                "precision": "fp32", "bbox_mAP": value, "eval_images": images,
                "split_images": 5000, "published_bbox_mAP": 0.374}

    frame = pd.DataFrame([row("close", "pytorch", 0.371, 5000), row("far", "pytorch", 0.35, 5000),
                          row("subset", "pytorch", 0.30, 100),
                          row("close", "onnxruntime", 0.2, 5000)])
    for column in ("published_segm_mAP", "published_mIoU", "segm_mAP", "mIoU"):
        frame[column] = np.nan
    checks = published_checks(frame, {"bbox_mAP": {"fp32": 0.001, "published": 0.01}})
    verdicts = dict(zip(checks.model, checks.verdict, strict=True))
    assert verdicts == {"close": "passed", "far": "outside",
                        "subset": "not checked: a subset (100 images)"}
    assert checks.set_index("model").difference["far"] == pytest.approx(-0.024)
    assert list(checks.passed) == [True, False, True]
    none = published_checks(frame, {"bbox_mAP": {"fp32": 0.001}})
    assert set(none.verdict) >= {"not checked: no gates.bbox_mAP.published"}


def test_each_model_has_its_own_page(tmp_path: Path) -> None:
    """A page per model with that model's rows of the tables, linked from the front page."""
    build_report(write_results(tmp_path / "results"), "p", tmp_path / "out", GATES)
    front = (tmp_path / "out" / "README.md").read_text()
    assert "[det](models/det.md) · [seg](models/seg.md)" in front
    det = re.sub(r" +", " ", (tmp_path / "out" / "models" / "det.md").read_text())
    assert det.startswith("# det on p\n")
    assert "| det | 160x160 | onnxruntime | cpu | fp32 |" in det and "| seg |" not in det
    assert "[front page](../README.md)" in det


def test_throughput_is_drawn_only_where_batches_were_planned(tmp_path: Path) -> None:
    import matplotlib

    from deploybench.report.plots import RC, throughput

    matplotlib.use("Agg")
    rows = [{"model": "det", "resolution": "160x160", "backend": "onnxruntime",
             "precision": "fp32", "device": "cpu", "batch": b, "fps": fps}
            for b, fps in ((1, 100.0), (4, 250.0), (8, 300.0))]
    failed = [{**rows[0], "batch": 4, "fps": float("nan")}, rows[0]]
    with matplotlib.rc_context(RC):
        assert not throughput(pd.DataFrame(rows[:1]), tmp_path / "one.svg")
        assert throughput(pd.DataFrame(rows), tmp_path / "three.svg")
        # Planned but not measured (the batch-4 cell failed): a figure that says so, as the
        # run's docs declare it.
        assert throughput(pd.DataFrame(failed), tmp_path / "failed.svg")
    svg = (tmp_path / "three.svg").read_text()
    assert ">batch size<" in svg and ">images / s<" in svg and ">onnxruntime<" in svg
    assert not (tmp_path / "one.svg").exists()
    assert "more than one batch size" in (tmp_path / "failed.svg").read_text()


def test_a_missing_result_names_its_profile_s_logs(tmp_path: Path) -> None:
    from deploybench.report.table import read_records

    path = tmp_path / "results" / "h100" / "local" / "measure" / "det" / "160x160" / "cuda" / \
        "tensorrt-int8-b1-r1.json"
    [missing] = read_records([str(path)])
    assert missing["missing"] and missing["logs"] == "logs/h100/local/measure/det/"
