"""The whole DAG through Snakemake on a reduced config in a temporary directory."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import DEFAULT_CONFIG, REPO, model_entry

pytestmark = pytest.mark.slow
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def reduced_config(models: list[str]) -> dict:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["profile"] = "ci"
    config["datasets"]["shapes"].update(num_train=2, num_val=6)
    config["models"] = {name: model_entry(name) for name in DEFAULT_CONFIG["models"]}
    # Same weights, but an input shape the test pipeline does not produce: export and the
    # PyTorch cells of this model fail, with the reason in the report.
    config["models"]["bad_shape"] = {**model_entry("rtmdet_tiny_shapes"),
                                     "input_shape": [128, 128]}
    # The detector also runs at a second input shape, named in its own entry; the segmentor
    # at a second batch size (a dynamic-batch export), named in its own.
    config["models"]["rtmdet_tiny_shapes"]["shapes"] = ["default", [224, 192]]
    config["models"]["fast_scnn_shapes"]["batches"] = [1, 2]
    config["matrix"].update(models=models, backends=["pytorch", "onnxruntime"],
                            devices=["cpu", "cuda"], precisions=["fp32", "int8"])
    config["parity"]["images"] = 3
    config["build"]["calibration_images"] = 2
    config["measure"].update(warmup_iters=1, warmup_seconds=0.0, min_rounds=2, min_seconds=0.0,
                             max_seconds=2.0, slice_seconds=0.01, stage_images=2)
    config["train"].update(warmup_iters=1, min_iters=3, min_seconds=0.0, max_seconds=0.001)
    return config


def snakemake_command(work: Path, config: dict, *args: str) -> list[str]:
    """`snakemake` for `config` (written beside `work`) in `work`."""
    path = work.parent / f"config-{len(list(work.parent.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work),
            "--configfile", str(path), "--cores", "2", *args]


def snakemake(work: Path, config: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(snakemake_command(work, config, *args), capture_output=True,
                          text=True, timeout=900)


def test_pipeline_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "work"
    all_models = ["rtmdet_tiny_shapes", "fast_scnn_shapes", "bad_shape"]
    run = snakemake(work, reduced_config(all_models), "--keep-going")
    assert run.returncode != 0, run.stderr[-3000:]
    md = (work / "reports" / "ci" / "benchmark.md").read_text()
    every = pd.read_csv(work / "reports" / "ci" / "results.csv")
    csv = every[every.workload == "inference"]
    ran = csv[(csv.model != "bad_shape") & (csv.device == "cpu")]
    assert list(ran.status) == ["ok"] * 12, ran.reason.tolist()
    # The second batch: latency and images/s of the same graph, accuracy per image at batch 1.
    batch2 = ran[ran.batch == 2]
    assert set(batch2.model) == {"fast_scnn_shapes"} and len(batch2) == 3
    assert set(batch2.input) == {"2x3x192x192"} and batch2.mIoU.isna().all()
    assert "dynamic batch axis (one graph for batches 1 to 2)" in md
    assert (work / "reports" / "ci" / "throughput.svg").is_file()
    assert "![Throughput](throughput.svg)" in (work / "reports" / "ci" / "README.md").read_text()
    ran = ran[ran.batch == 1]
    assert set(ran.backend + "-" + ran.precision) == {
        "pytorch-fp32", "onnxruntime-fp32", "onnxruntime-int8"}
    good = ran[ran.precision == "fp32"]
    assert ran.latency_ms_median.gt(0).all() and ran.fps.gt(0).all()
    assert ran.rounds.ge(2).all() and ran.latency_samples.ge(6).all()
    # Each model's cells were timed side by side: speed-ups over PyTorch fp32 from one window.
    assert ran.speedup.gt(0).all() and ran.speedup_vs.eq("pytorch fp32").all()
    assert ran.idle_cores.lt(0.2).all()
    assert ran.e2e_ms_median.gt(ran.stage_network_ms).all() and ran.peak_rss_mib.gt(0).all()
    assert ran.tensor_e2e_ms_median.gt(0).all()  # both preprocessing paths timed
    assert re.search(r"\| tensor +\|", md)
    assert ran.parity_images.eq(3).all() and good.parity_min_cosine.gt(0.9999).all()
    # int8, calibrated on 2 images here (at the second shape, a third of each input is padding)
    assert ran[ran.resolution != "224x192"].parity_min_cosine.gt(0.9).all()
    assert ran.parity_min_cosine.gt(0.8).all()
    assert good[good.task == "detection"].bbox_mAP.gt(0.3).all()
    assert good[good.task == "segmentation"].mIoU.gt(50).all()
    # Every cell is gated except the reference itself (a check that could not fail).
    reference = (ran.backend == "pytorch") & (ran.precision == "fp32")
    assert ran[~reference].gate_passed.notna().all() and ran[reference].gate_passed.isna().all()
    # ... each with the bootstrap interval of its drop (the same predictions: about zero)
    detection = ~reference & (ran.task == "detection")
    assert ran[detection].bbox_mAP_drop_ci95_low.notna().all()
    assert ran[~reference & (ran.task == "segmentation")].mIoU_drop_ci95_high.notna().all()
    fp32 = ran[detection & (ran.precision == "fp32")]
    assert fp32.bbox_mAP_drop_ci95_low.abs().le(1e-3).all()
    assert fp32.bbox_mAP_drop_ci95_high.abs().le(1e-3).all()
    # Every step ran at the second shape: its own export, int8 build, timing and accuracy.
    wide = ran[ran.resolution == "224x192"]
    assert len(wide) == 3 and set(wide.input) == {"1x3x224x192"}
    assert (work / "results" / "ci" / "local" / "build" / "rtmdet_tiny_shapes" / "224x192"
            / "onnxruntime-int8.onnx").is_file()
    assert re.search(r"\| rtmdet_tiny_shapes +\| detection +\| 1x3x224x192 +\| [0-9.]+ "
                     r"\(ref\) +\|", md)
    gpu = csv[(csv.model != "bad_shape") & (csv.device == "cuda")]
    assert set(gpu.backend + "-" + gpu.precision) == {"pytorch-fp32", "onnxruntime-fp32"}
    import torch

    if not torch.cuda.is_available():  # GPU cells are reported, with why they did not run
        assert set(gpu.status) == {"skipped"} and gpu.reason.str.contains("no CUDA device").all()
        # ... all written by one job, not one job per cell
        assert "wrote 24 skipped records" in (work / "logs" / "unavailable.log").read_text()
    # Training: each model on the CPU (its input shape is inference's alone: bad_shape trains);
    # CUDA's fp32 and amp skipped here with the reason.
    train = every[every.workload == "train"]
    cpu = train[train.device == "cpu"]
    assert list(cpu.status) == ["ok"] * 3 and set(cpu.precision) == {"fp32"}
    assert cpu.train_s_iter_median.gt(0).all() and cpu.train_mem_mib.gt(0).all()
    assert cpu.train_compute_s_median.lt(cpu.train_s_iter_median + 1e-9).all()
    assert cpu.train_losses_finite.all() and set(cpu.lr_schedule) == {"20 ep", "3k it"}
    assert set(train[train.device == "cuda"].precision) == {"fp32", "amp"}
    # The model-zoo table: both fps definitions from the PyTorch fp32 cell's stage timing.
    zoo = md[md.index("## Model zoo: training and inference"):]
    assert re.search(r"\| rtmdet_tiny_shapes +\| cpu +\| fp32 +\| 16 +\| 20 ep +\| [0-9.]+ "
                     r"\(RSS\) +\| [0-9.]+ ±", zoo)
    assert "### mmdetection's columns" in zoo and "### mmsegmentation's columns" in zoo
    pytorch = good[(good.backend == "pytorch") & (good.resolution != "224x192")]
    assert pytorch.inf_fps_forward_post.gt(pytorch.inf_fps_overall).all()
    bad = csv[(csv.model == "bad_shape") & (csv.precision == "fp32") & (csv.device == "cpu")]
    assert list(bad.status) == ["failed", "failed"]
    assert "produced input shape [1, 3, 160, 160]" in md
    assert "export failed" in md
    # Its measure group needs the export that failed: it never ran; the export's log says why.
    assert (work / "logs" / "ci" / "local" / "export" / "bad_shape" / "128x128.log").is_file()
    assert not (work / "logs" / "ci" / "local" / "measure" / "bad_shape").exists()
    # Every step was forked from the server, which stopped with the run.
    served = (work / "logs" / "ci" / "local" / "forkserver.log").read_text()
    assert re.search(r"\d+: deploybench measure ", served) and "stop requested" in served

    # Without the broken model the run succeeds; only the report is rebuilt. The published
    # docs keep the broken model's rows (a run removes nothing it did not re-measure).
    good_models = all_models[:2]
    run = snakemake(work, reduced_config(good_models))
    assert run.returncode == 0, run.stderr[-3000:]
    md = re.sub(r" +", " ", (work / "reports" / "ci" / "benchmark.md").read_text())
    csv = pd.read_csv(work / "reports" / "ci" / "results.csv")
    inference = csv[csv.workload == "inference"]
    assert set(inference[inference.model != "bad_shape"].status) == {"ok", "skipped"}
    assert set(inference[inference.model == "bad_shape"].status) == {"failed", "skipped"}
    assert "| rtmdet_tiny_shapes | detection | 1x3x160x160 |" in md
    published = csv[csv.status == "ok"].set_index(["model", "resolution", "backend", "precision"])
    # Snakemake's own HTML report holds the run's docs and figures, and opens in a browser.
    report = tmp_path / "report.html"
    run = snakemake(work, reduced_config(good_models), "--report", str(report))
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("README.md", "benchmark.md", "latency-accuracy.svg", "stages.svg",
                 "latency-distribution.svg", "throughput.svg"):
        assert name in report.read_text()
    from .test_docs_in_browser import CHROMIUM, open_report

    if CHROMIUM:
        dom = open_report(report, tmp_path / "report.png")
        assert "deploybench's benchmark of the configured models" in dom and "Figures" in dom

    # A second run right after has nothing to do ...
    run = snakemake(work, reduced_config(good_models), "-n")
    assert run.returncode == 0 and "Nothing to be done" in run.stdout + run.stderr
    # ... and a run under a new key (the benchmark workflow's run id) measures every cell again.
    run = snakemake(work, {**reduced_config(good_models), "run": "next"}, "-n")
    planned = run.stdout + run.stderr
    assert run.returncode == 0 and re.search(r"measure_cpu +4\b", planned), planned[-3000:]

    # An artifact damaged since its export (truncated in place, its time unchanged) is moved
    # aside: a cell that runs it again has it exported again first.
    onnx = work / "results" / "ci" / "local" / "export" / "fast_scnn_shapes" / "192x192.onnx"
    stat = onnx.stat()
    onnx.write_bytes(onnx.read_bytes()[: stat.st_size // 2])
    os.utime(onnx, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    evaluation = "results/ci/local/evaluate/fast_scnn_shapes/192x192/cpu/onnxruntime-fp32-b1.json"
    run = snakemake(work, reduced_config(good_models), "-n", "--forcerun", evaluation)
    planned = run.stdout + run.stderr
    assert run.returncode == 0 and f"{onnx.relative_to(work)} differs from the sha256" in \
        planned and re.search(r"export_onnx +1\b", planned), planned[-3000:]
    assert onnx.with_name("192x192.onnx.damaged").is_file() and not onnx.exists()

    # A subset config (one model, one backend) rewrites the docs without losing a row.
    subset = reduced_config(["fast_scnn_shapes"])
    subset["matrix"]["backends"] = ["onnxruntime"]
    run = snakemake(work, subset)
    assert run.returncode == 0, run.stderr[-3000:]
    after = pd.read_csv(work / "reports" / "ci" / "results.csv")
    assert len(after) == len(csv)
    kept = after[after.status == "ok"].set_index(["model", "resolution", "backend", "precision"])
    # Its one group had other cells than before (a measurement of its own): measured again, and
    # without PyTorch fp32 in it, with no speed-up; every other row as it was.
    again = (kept.index.get_level_values("model") == "fast_scnn_shapes") & (
        kept.index.get_level_values("backend") == "onnxruntime")
    assert kept[~again].latency_ms_median.equals(published[~again].latency_ms_median)
    assert kept[again].run.eq("local").all() and kept[again].speedup.isna().all()

    # A failing re-measurement (the export broken under a new run key) keeps the last good
    # numbers and shows the failure beside them; the cells that ran are updated.
    broken = {**subset, "run": "broken"}
    broken["matrix"]["backends"] = ["pytorch", "onnxruntime"]
    run = snakemake(work, broken, "--until", "export_onnx")
    assert run.returncode == 0, run.stderr[-3000:]
    # The exporter made a broken model: the file and its export's record agree on it.
    export = work / "results" / "ci" / "broken" / "export" / "fast_scnn_shapes"
    (export / "192x192.onnx").write_bytes(b"not an onnx model")
    record = json.loads((export / "192x192.json").read_text())
    record["provenance"]["files_sha256"]["artifact"] = hashlib.sha256(
        b"not an onnx model").hexdigest()
    (export / "192x192.json").write_text(json.dumps(record))
    run = snakemake(work, broken, "--keep-going")
    assert run.returncode != 0
    last = pd.read_csv(work / "reports" / "ci" / "results.csv")
    assert len(last) == len(csv)
    ort = last[(last.model == "fast_scnn_shapes") & (last.backend == "onnxruntime")
               & (last.device == "cpu")]
    assert list(ort.status) == ["ok"] * 4 and ort.remeasure.str.contains("failed on").all()
    assert ort.latency_ms_median.tolist() == kept.loc["fast_scnn_shapes"].loc[
        "192x192"].loc["onnxruntime"].latency_ms_median.tolist()
    # PyTorch's measure group needed the int8 build that failed: it did not run, and its cell
    # keeps its last good latency with why beside it (its accuracy is the new run's).
    pt = last[(last.model == "fast_scnn_shapes") & (last.backend == "pytorch")
              & (last.device == "cpu")].iloc[0]
    assert "failed on" in pt.remeasure and "no result (it or a step before it failed; see " \
        "logs/ci/broken/measure/fast_scnn_shapes/" in pt.remeasure
    # Each run keeps its logs: the first run's fork server log is still there.
    assert (work / "logs" / "ci" / "broken" / "forkserver.log").is_file()
    assert (work / "logs" / "ci" / "local" / "forkserver.log").read_text().startswith(served)
    md = re.sub(r" +", " ", (work / "reports" / "ci" / "benchmark.md").read_text())
    assert "last good numbers kept | re-measurement failed on" in md


def test_committed_docs_do_not_stand_in_for_a_run(tmp_path: Path) -> None:
    """A fresh clone has the published docs but no results: the DAG still runs every cell."""
    from deploybench.plan import REPORT_FILES

    work = tmp_path / "work"
    (work / "reports" / "ci").mkdir(parents=True)
    for name in REPORT_FILES:
        (work / "reports" / "ci" / name).write_text("committed docs\n")
    run = snakemake(work, reduced_config(["rtmdet_tiny_shapes"]), "-n")
    planned = run.stdout + run.stderr
    assert run.returncode == 0, planned[-3000:]
    for rule in ("export_onnx", "measure_cpu", "evaluate", "report", "publish"):
        assert re.search(rf"\b{rule} +[0-9]+\b", planned), (rule, planned[-3000:])


def _measure_jobs(work: Path, server: bool = False) -> list[int]:
    """The `deploybench measure` processes working in `work` (their paths are relative): the
    client and its forked step (named as the step), and with `server` the fork server."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == work and ("deploybench measure" in cmdline
                                or server and "forkserver serve" in cmdline):
                found.append(int(entry.name))
    return found


def _forked_step(work: Path) -> bool:
    """A forked step's command line is its own (the client's starts with its Python)."""
    for pid in _measure_jobs(work):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"deploybench measure"):
                return True
    return False


def test_a_killed_snakemake_leaves_no_orphan_and_recovers_in_one_command(tmp_path: Path
                                                                         ) -> None:
    """kill -9 of Snakemake: its running measure job stops too (no orphan skewing the next
    run's timing), and the next `snakemake` runs without --unlock or --rerun-incomplete."""
    import signal
    import time

    work = tmp_path / "work"
    config = reduced_config(["fast_scnn_shapes"])
    del config["models"]["fast_scnn_shapes"]["batches"]  # one measure job: batch 1
    config["matrix"].update(backends=["pytorch"], devices=["cpu"], precisions=["fp32"])
    config["measure"].update(min_seconds=300.0, max_seconds=600.0)
    proc = subprocess.Popen(snakemake_command(work, config), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _measure_jobs(work) and time.monotonic() < deadline:
            assert proc.poll() is None, "snakemake ended before its measure job started"
            time.sleep(1)
        assert _measure_jobs(work), "the measure job never started"
        deadline = time.monotonic() + 30
        while not _forked_step(work) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _forked_step(work), "the measure step was not forked from the fork server"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while _measure_jobs(work, server=True) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _measure_jobs(work, server=True), "the measure job outlived its Snakemake"
    finally:  # whatever failed, nothing of this test keeps running
        proc.kill()
        for pid in _measure_jobs(work, server=True):
            os.kill(pid, signal.SIGKILL)
    assert list((work / ".snakemake" / "locks").glob("*.lock"))  # the dead run's lock
    # One command: the stale lock is cleared, the unfinished job planned again.
    run = snakemake(work, config, "-n")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "removed the lock of a Snakemake that is no longer running" in out
    assert re.search(r"\bmeasure_cpu +1\b", out), out[-3000:]
