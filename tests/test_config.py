"""Bad configs fail before any job runs, naming the key and what was expected."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploybench.config import Plan, validate
from deploybench.errors import UserError

from .conftest import DEFAULT_CONFIG, REPO


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(REPO)  # model config paths are relative to the repository
    return copy.deepcopy(DEFAULT_CONFIG)


def test_default_config_is_valid_and_defaults_fill(config: dict) -> None:
    del config["measure"], config["matrix"]
    valid = validate(config)
    assert valid["measure"]["min_iters"] == 20 and valid["measure"]["threads"] == 0
    assert valid["matrix"]["backends"] == ["pytorch", "torchscript", "onnxruntime", "openvino"]
    assert valid["models"]["rtmdet_tiny_shapes"]["checkpoint"]["allow_pickle"] is False
    assert valid["matrix"]["devices"] == ["cpu"]
    plan = Plan(valid)
    assert [(c.backend, c.precision) for c in plan.cells()][:3] == [
        ("pytorch", "fp32"), ("torchscript", "fp32"), ("onnxruntime", "fp32")]
    assert plan.artifact("m", "onnxruntime", "cpu", "int8").endswith(
        "build/m/onnxruntime-int8.onnx")
    assert plan.artifact("m", "torchscript", "cpu", "fp32") is None
    assert plan.artifact("m", "openvino", "cpu", "fp32").endswith("export/m.onnx")
    assert plan.artifact("m", "tensorrt", "cuda", "fp16").endswith("build/m/tensorrt-fp16.engine")
    assert plan.profile  # derived from this machine


def test_only_combinations_a_backend_has_are_planned(config: dict) -> None:
    config["matrix"].update(models=["rtmdet_tiny_shapes"], devices=["cpu", "cuda"],
                            backends=["pytorch", "openvino", "tensorrt"],
                            precisions=["fp32", "fp16", "int8"])
    plan = Plan(validate(config))
    assert [(c.backend, c.device, c.precision) for c in plan.cells()] == [
        ("pytorch", "cpu", "fp32"), ("openvino", "cpu", "fp32"), ("openvino", "cpu", "int8"),
        ("pytorch", "cuda", "fp32"), ("pytorch", "cuda", "fp16"), ("tensorrt", "cuda", "fp32"),
        ("tensorrt", "cuda", "fp16"), ("tensorrt", "cuda", "int8")]
    # TensorRT int8 and fp16 start from the QDQ and fp16 ONNX models, which are built too.
    assert ("rtmdet_tiny_shapes", "onnxruntime", "cpu", "int8") in plan.builds()
    assert plan.build_source("m", "tensorrt", "cuda", "int8").endswith("onnxruntime-int8.onnx")
    assert ("rtmdet_tiny_shapes", "onnxruntime", "cuda", "fp16") in plan.builds()
    assert len(plan.builds()) == 6


def test_batches_are_measured_and_evaluated_at_batch_one(config: dict) -> None:
    config["matrix"].update(models=["fast_scnn_shapes"], backends=["onnxruntime"],
                            devices=["cpu"], precisions=["fp32"], batches=[1, 8])
    config["measure"]["repeats"] = 2
    plan = Plan(validate(config))
    assert [c.batch for c in plan.cells()] == [1, 8] and plan.dynamic_batch
    cells = [p for p in plan.all_results() if "/measure/" in p or "/evaluate/" in p]
    assert [p.rsplit("/", 2)[1] + "/" + p.rsplit("/", 1)[1] for p in cells] == [
        "cpu/onnxruntime-fp32-b1-r1.json", "cpu/onnxruntime-fp32-b1-r2.json",
        "cpu/onnxruntime-fp32-b1.json", "cpu/onnxruntime-fp32-b8-r1.json",
        "cpu/onnxruntime-fp32-b8-r2.json"]


def test_wrong_type_names_the_key(config: dict) -> None:
    config["measure"]["min_iters"] = "many"
    with pytest.raises(UserError, match=r"measure\.min_iters: 'many' is not of type 'integer'"):
        validate(config)


def test_unknown_key_is_named(config: dict) -> None:
    config["measure"]["min_itres"] = 3
    with pytest.raises(UserError, match=r"measure: .*'min_itres' was unexpected"):
        validate(config)


def test_unknown_backend_lists_the_valid_ones(config: dict) -> None:
    config["matrix"]["backends"] = ["pytorch", "tensorrt9"]
    with pytest.raises(UserError, match=r"matrix\.backends\.1: 'tensorrt9' is not one of "
                                        r"\['pytorch', 'torchscript', 'torch_compile', "):
        validate(config)


def test_unknown_precision_lists_the_valid_ones(config: dict) -> None:
    config["matrix"]["precisions"] = ["fp64"]
    with pytest.raises(UserError, match=r"'fp64' is not one of \['fp32', 'fp16', 'int8'\]"):
        validate(config)


def test_unknown_model_lists_the_valid_ones(config: dict) -> None:
    config["matrix"]["models"] = ["yolo_v99"]
    with pytest.raises(UserError, match=r"unknown model 'yolo_v99'; valid: rtmdet_tiny_shapes, "
                                        r"fast_scnn_shapes"):
        validate(config)


def test_bad_checksum_format(config: dict) -> None:
    config["models"]["fast_scnn_shapes"]["checkpoint"]["sha256"] = "abc"
    with pytest.raises(UserError, match=r"models\.fast_scnn_shapes\.checkpoint\.sha256"):
        validate(config)


def test_missing_dataset_directory_says_which(config: dict, tmp_path: Path) -> None:
    config["datasets"]["coco"] = {"kind": "directory", "path": str(tmp_path / "coco")}
    with pytest.raises(UserError, match=r"datasets\.coco\.path: .*coco does not exist; "
                                        r"download the dataset there"):
        validate(config)


def test_missing_model_config_file(config: dict) -> None:
    config["models"]["rtmdet_tiny_shapes"]["config"] = "configs/nope.py"
    with pytest.raises(UserError, match=r"models\.rtmdet_tiny_shapes\.config: file "
                                        r"configs/nope.py does not exist"):
        validate(config)


def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path: Path) -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["measure"]["min_seconds"] = "long"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(snakemake), "--cores", "1", "--configfile", str(bad),
                           "--directory", str(tmp_path / "work"), "-s", str(REPO / "Snakefile")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    assert "measure.min_seconds: 'long' is not of type 'number'" in proc.stdout + proc.stderr
    assert not (tmp_path / "work" / "resources").exists()
