"""Training speed and memory: the train step on real mmdet / mmseg models (the embedded ones and
zoo configs at random init on the synthetic data's COCO and Cityscapes layouts), and what it
refuses, with the message that names the fix."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploybench.config import validate
from deploybench.errors import UserError
from deploybench.plan import Plan
from deploybench.settings import write_section
from deploybench.zoo import lookup

from .conftest import DEFAULT_CONFIG, REPO, checkpoint_path

DEPLOYBENCH = str(Path(sys.executable).with_name("deploybench"))
# A few iterations: the figures' shape, not their precision, is what is tested here.
QUICK = {"warmup_iters": 1, "min_iters": 3, "min_seconds": 0.0, "max_seconds": 0.001}


def _train(tmp_path: Path, config: str, data: Path, *extra: str, task: str = "detection",
           settings: dict | None = None) -> tuple[int, dict]:
    out = tmp_path / "train.json"
    settings_file = tmp_path / "train-settings.json"
    write_section(settings_file, settings or QUICK)
    # Its own process, as the pipeline runs it: a DataLoader forking its workers from the
    # test process, after the suite's other tests loaded their libraries there, crashed it.
    code = subprocess.run(
        [DEPLOYBENCH, "train", "--model", "m", "--task", task, "--config", config, "--data",
         str(data), "--settings", str(settings_file), "--threads", "2", "--out", str(out),
         *extra], cwd=REPO, timeout=600).returncode
    result = out if out.is_file() else out.with_name(out.name + ".failed.json")
    return code, json.loads(result.read_text())


def _check_figures(record: dict, batch: int) -> dict:
    assert record["status"] == "ok", record["reason"]
    train = record["train"]
    assert train["batch_size"] == batch and train["iters"] >= 3
    assert train["losses_finite"] and train["losses_last"]["loss"] > 0
    total = [d + c for d, c in zip(train["data_samples_s"], train["compute_samples_s"],
                                   strict=True)]
    assert min(total) <= train["s_per_iter"]["median"] <= max(total)
    assert train["s_per_iter"]["ci95_low"] <= train["s_per_iter"]["median"] \
        <= train["s_per_iter"]["ci95_high"]
    assert 0 < train["compute_s"]["median"] < train["s_per_iter"]["median"] + 1e-9
    assert train["images_per_s"] == pytest.approx(batch / train["s_per_iter"]["median"])
    assert train["memory"]["kind"].startswith("peak RSS above") and \
        train["memory"]["peak_mib"] > 0
    # one reading of the reference kernel before each iteration and after the last
    assert len(train["reference_readings_ms"]) == train["iters"] + 1
    return train


@pytest.mark.slow
def test_zoo_two_stage_detector_and_segmentor_train(small_dataset: Path, tmp_path: Path
                                                    ) -> None:
    """Faster R-CNN R50 (COCO layout) and Fast-SCNN (Cityscapes layout) from mmdet's and
    mmseg's own configs, at random init: a few real iterations each, their figures whole."""
    frcnn = lookup("faster-rcnn_r50_fpn_1x_coco")
    # batch 1 instead of the config's 2: an 800 px R50 iteration takes seconds on 2 cores
    code, record = _train(tmp_path, frcnn.config_ref, small_dataset, "--batch-size", "1")
    assert code == 0
    train = _check_figures(record, batch=1)
    assert train["lr_schedule"] == "1x" and train["optimizer"] == "SGD"
    assert train["weights"] == "random init" and set(train["losses_last"]) >= {
        "loss_rpn_cls", "loss_cls", "loss_bbox"}
    assert record["cell"] == {"model": "m", "task": "detection", "backend": "pytorch",
                              "precision": "fp32", "batch": 1, "device": "cpu", "shape": ""}

    scnn = lookup("fast_scnn_8xb4-160k_cityscapes-512x1024")
    code, record = _train(tmp_path, scnn.config_ref, small_dataset, task="segmentation")
    assert code == 0
    train = _check_figures(record, batch=4)  # the config's own batch size
    assert train["lr_schedule"] == "160k it" and record["cell"]["batch"] == 0


def test_embedded_model_trains_from_its_checkpoint(small_dataset: Path, tmp_path: Path) -> None:
    code, record = _train(
        tmp_path, str(REPO / "fixtures/configs/fast_scnn_shapes.py"), small_dataset,
        "--checkpoint", str(checkpoint_path("fast_scnn_shapes")), task="segmentation",
        settings={**QUICK, "min_iters": 5})
    assert code == 0
    train = _check_figures(record, batch=8)
    assert train["weights"] == "checkpoint" and train["lr_schedule"] == "3k it"
    assert record["provenance"]["files_sha256"]["checkpoint"]
    # *busy machine*: other processes took more than the latency cells' 0.5 cores.
    from deploybench.report.train_table import train_frame

    flags = []
    for cores in (0.1, 0.8):
        record["train"]["other_load"]["other_cores"] = cores
        flags.append(bool(train_frame([record]).train_busy[0]))
    assert flags == [False, True]


def test_a_batch_size_of_zero_is_refused(small_dataset: Path, tmp_path: Path) -> None:
    code, record = _train(tmp_path, str(REPO / "fixtures/configs/rtmdet_tiny_shapes.py"),
                          small_dataset, "--batch-size", "0")
    assert code == 1 and record["status"] == "failed"
    assert "training batch size 0" in record["reason"] and "train.batch_size" in record["reason"]
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["train"]["batch_size"] = 0
    with pytest.raises(UserError, match=r"train\.batch_size: 0 is less than the minimum of 1"):
        validate(config, require_data=False)
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["models"]["rtmdet_tiny_shapes"]["train_batch_size"] = 0
    with pytest.raises(UserError, match=r"models\.rtmdet_tiny_shapes\.train_batch_size: 0"):
        validate(config, require_data=False)


def test_a_dataset_without_a_train_split_is_a_skipped_cell(small_dataset: Path, tmp_path: Path
                                                           ) -> None:
    data = tmp_path / "val-only"
    shutil.copytree(small_dataset, data)
    (data / "annotations" / "train.json").unlink()
    code, record = _train(tmp_path, str(REPO / "fixtures/configs/rtmdet_tiny_shapes.py"), data)
    assert code == 0 and record["status"] == "skipped"
    assert f"no train split under {data}" in record["reason"]
    assert "annotations/train.json" in record["reason"]


def test_amp_on_the_cpu_is_refused(small_dataset: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """AMP needs a GPU: a CPU-only profile that asks only for it plans nothing and is told so;
    the step itself refuses it on the CPU."""
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["matrix"].update(devices=["cpu"], backends=["pytorch"])
    config["train"]["precisions"] = ["amp"]
    with pytest.raises(UserError, match=r"train\.precisions: \['amp'\] plans no training cell "
                                        r"with devices \['cpu'\]: amp .* CUDA device only"):
        validate(config, require_data=False)
    code, record = _train(tmp_path, str(REPO / "fixtures/configs/rtmdet_tiny_shapes.py"),
                          small_dataset, "--precision", "amp")
    assert code == 1 and "AMP training on cpu" in record["reason"]


def test_the_plan_trains_each_model_per_device_amp_on_cuda_only(monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["models"]["fast_scnn_shapes"]["train_batch_size"] = 2
    plan = Plan(validate(config, require_data=False))
    cells = {(c.model, c.device, c.precision, c.batch) for c in plan.train_cells()}
    assert len(cells) == 3 * len(config["models"])
    assert ("fast_scnn_shapes", "cuda", "amp", 2) in cells
    assert ("rtmdet_tiny_shapes", "cpu", "fp32", 0) in cells
    assert not any(d == "cpu" and p == "amp" for _, d, p, _ in cells)
    assert plan.train_result(plan.train_cells()[0]) in plan.all_results()
    config["train"]["devices"] = ["cuda"]  # as config/zoo.yaml: the zoo pages' GPU figures
    assert {c.device for c in Plan(validate(config, require_data=False)).train_cells()} == {
        "cuda"}
    config["matrix"].update(devices=["cpu"], backends=["pytorch"])
    with pytest.raises(UserError, match=r"train\.devices: \['cuda'\] not in matrix\.devices"):
        validate(config, require_data=False)
    config["train"]["enabled"] = False
    assert Plan(validate(config, require_data=False)).train_cells() == []


def test_failed_and_missing_training_cells_are_rows_that_say_why(tmp_path: Path) -> None:
    from deploybench.report.table import frame_of, read_records
    from deploybench.report.train_table import train_frame
    from deploybench.report.zoo_section import zoo_tables
    from deploybench.results import Cell, run_step

    results = tmp_path / "results" / "p" / "r" / "train"
    failed = results / "seg" / "cpu" / "fp32.json"
    failed.parent.mkdir(parents=True)

    def diverges():
        raise RuntimeError("loss not finite at training iteration 7: loss=nan")

    assert run_step("train", Cell("seg", "segmentation", "pytorch", "fp32", 0, "cpu", ""),
                    failed, {}, [], diverges) == 1
    missing = results / "det" / "cpu" / "fp32.json"  # its step never ran
    records = read_records([str(failed), str(missing)])
    train = train_frame(records)
    assert list(train.status) == ["failed", "failed"] and list(train.workload) == ["train"] * 2
    assert "loss not finite at training iteration 7" in train.reason[0]
    assert f"see {Path('logs', 'p', 'r', 'train', 'det')}/" in train.reason[1]
    assert frame_of(records).empty  # training rows never become inference cells
    table = "\n".join(zoo_tables(frame_of(records), train))
    assert "| seg " in table and "failed: train: RuntimeError: loss not finite" in table
