"""Bad configs fail before any job runs, naming the key and what was expected."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploybench.commands import model_args
from deploybench.config import read_yaml, validate
from deploybench.errors import UserError
from deploybench.plan import Plan
from deploybench.zoo import config_path

from .conftest import DEFAULT_CONFIG, REPO


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(REPO)  # model config paths are relative to the repository
    return copy.deepcopy(DEFAULT_CONFIG)


def test_default_config_is_valid_and_defaults_fill(config: dict) -> None:
    del config["measure"], config["matrix"]
    valid = validate(config)
    assert valid["measure"]["min_rounds"] == 10 and valid["measure"]["threads"] == 0
    assert valid["matrix"]["backends"] == ["pytorch", "torchscript", "onnxruntime", "openvino"]
    assert valid["matrix"]["devices"] == ["cpu"]
    plan = Plan(valid)
    assert [(c.backend, c.precision) for c in plan.cells()][:3] == [
        ("pytorch", "fp32"), ("torchscript", "fp32"), ("onnxruntime", "fp32")]
    assert {c.shape for c in plan.cells()} == {"160x160", "192x192"}  # each model's own
    assert plan.artifact("m", "96x128", "onnxruntime", "cpu", "int8").endswith(
        "build/m/96x128/onnxruntime-int8.onnx")
    assert plan.artifact("m", "96x128", "torchscript", "cpu", "fp32") is None
    assert plan.artifact("m", "96x128", "openvino", "cpu", "fp32").endswith(
        "export/m/96x128.onnx")
    assert plan.artifact("m", "96x128", "tensorrt", "cuda", "fp16").endswith(
        "build/m/96x128/tensorrt-fp16.engine")
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
    # TensorRT int8 and fp16 start from a symmetric int8 QDQ model and the fp16 ONNX model,
    # which are built too.
    assert ("rtmdet_tiny_shapes", "160x160", "qdq", "cpu", "int8") in plan.builds()
    assert plan.build_source("m", "160x160", "tensorrt", "cuda", "int8").endswith(
        "m/160x160/tensorrt-int8-qdq.onnx")
    assert ("rtmdet_tiny_shapes", "160x160", "onnxruntime", "cuda", "fp16") in plan.builds()
    assert len(plan.builds()) == 6


def test_batches_are_measured_and_evaluated_at_batch_one(config: dict) -> None:
    config["matrix"].update(models=["fast_scnn_shapes"], backends=["onnxruntime"],
                            devices=["cpu"], precisions=["fp32"], batches=[1, 8])
    del config["models"]["fast_scnn_shapes"]["batches"]  # the default's own sweep
    plan = Plan(validate(config))
    assert [c.batch for c in plan.cells()] == [1, 8] and plan.max_batch("fast_scnn_shapes") == 8
    cells = [p for p in plan.all_results() if "/measure/" in p or "/evaluate/" in p]
    assert ["/".join(p.rsplit("/", 3)[1:]) for p in cells] == [
        "192x192/cpu/onnxruntime-fp32-b1.json", "192x192/cpu/onnxruntime-fp32-b1.json",
        "192x192/cpu/onnxruntime-fp32-b8.json"]
    assert list(plan.measure_groups()) == [("fast_scnn_shapes", "192x192", "cpu", 1),
                                           ("fast_scnn_shapes", "192x192", "cpu", 8)]


def test_a_model_s_own_batches_replace_the_matrix_s(config: dict) -> None:
    """A throughput sweep for one model: only its cells multiply, and only its export gets
    a dynamic batch axis."""
    config["matrix"].update(models=["fast_scnn_shapes", "rtmdet_tiny_shapes"],
                            backends=["onnxruntime"], devices=["cpu"], precisions=["fp32"])
    config["models"]["fast_scnn_shapes"]["batches"] = [4, 1, 2]
    plan = Plan(validate(config))
    assert [(c.model, c.batch) for c in plan.cells()] == [
        ("fast_scnn_shapes", 1), ("fast_scnn_shapes", 2), ("fast_scnn_shapes", 4),
        ("rtmdet_tiny_shapes", 1)]
    assert plan.max_batch("fast_scnn_shapes") == 4 and plan.max_batch("rtmdet_tiny_shapes") == 1
    config["models"]["fast_scnn_shapes"]["batches"] = [2, 2]
    with pytest.raises(UserError, match="batches"):
        validate(config)


def test_shapes_are_a_matrix_dimension(config: dict) -> None:
    config["matrix"].update(backends=["pytorch", "onnxruntime"], devices=["cpu"],
                            precisions=["fp32", "int8"], shapes=["default", [320, 256]])
    config["models"]["fast_scnn_shapes"]["shapes"] = [[384, 384], "default", [384, 384]]
    plan = Plan(validate(config))
    assert plan.shapes("rtmdet_tiny_shapes") == ["160x160", "320x256"]
    assert plan.shapes("fast_scnn_shapes") == ["384x384", "192x192"]  # its own list, once each
    assert plan.exported()[:2] == [("rtmdet_tiny_shapes", "160x160"),
                                   ("rtmdet_tiny_shapes", "320x256")]
    models = len(config["models"])
    # x shapes x (pytorch, ORT fp32, ORT int8); Fast-SCNN at 3 batches (the default's sweep)
    assert len(plan.cells()) == (models + 2) * 2 * 3
    results = plan.all_results()
    assert any(p.endswith("evaluate/rtmdet_tiny_shapes/320x256/cpu/onnxruntime-int8-b1.json")
               for p in results)
    assert any(p.endswith("build/fast_scnn_shapes/384x384/onnxruntime-int8.onnx.json")
               for p in results)
    # Only a shape other than the model's own changes its test pipeline.
    assert "--resize-pipeline" not in model_args(plan, "rtmdet_tiny_shapes", "160x160")
    assert model_args(plan, "rtmdet_tiny_shapes", "320x256").endswith(
        "--input-shape 320 256 --resize-pipeline")


@pytest.mark.parametrize("shape", [[16, 16], [160], "native"])
def test_bad_shape_is_named(config: dict, shape: object) -> None:
    config["matrix"]["shapes"] = [shape]
    with pytest.raises(UserError, match="matrix.shapes.0"):
        validate(config)


def test_wrong_type_names_the_key(config: dict) -> None:
    config["measure"]["min_rounds"] = "many"
    with pytest.raises(UserError, match=r"measure\.min_rounds: 'many' is not of type 'integer'"):
        validate(config)


def test_a_nested_number_from_the_command_line_says_to_use_a_file(config: dict) -> None:
    """Snakemake reads `--config key={nested: 1}` with YAML's BaseLoader: the 1 is a string."""
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    given = parse_config(["cluster={gpu-node: {gpus: 1}}", "measure={min_rounds: many}"])
    assert given["cluster"]["gpu-node"]["gpus"] == "1"
    update_config(config, given)
    config["profile"] = "gpu-node"
    with pytest.raises(UserError) as error:
        validate(config)
    lines = str(error.value).splitlines()
    hint = "if it was given with --config: Snakemake passes a value inside a mapping there as a "
    gpus = next(line for line in lines if "cluster.gpu-node.gpus" in line)
    assert "'1' is not of type 'integer'" in gpus and hint in gpus and "--configfile" in gpus
    # A string that is no number in YAML either is just wrong: no hint.
    iters = next(line for line in lines if "measure.min_rounds" in line)
    assert "'many' is not of type 'integer'" in iters and hint not in iters


def test_unknown_key_is_named(config: dict) -> None:
    config["measure"]["repeats"] = 3  # the setting before measure groups: what replaced it
    with pytest.raises(UserError, match=r"measure.repeats is gone: each model's cells are timed"):
        validate(config)
    del config["measure"]["repeats"]
    config["measure"]["min_ruonds"] = 3
    with pytest.raises(UserError, match=r"measure: .*'min_ruonds' was unexpected"):
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


def test_a_misspelt_gate_lists_the_gated_metrics(config: dict) -> None:
    config["gates"] = {"bbox_map": {"fp32": 0.01}}
    with pytest.raises(UserError, match=r"gates: 'bbox_map' is not one of \['bbox_mAP', "):
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


def test_an_overlay_s_yaml_error_names_its_file_and_line(tmp_path: Path) -> None:
    """Snakemake reads --configfile before the Snakefile, and says only "not valid JSON or
    YAML": the project's reader (installed by envs/setup.sh) names the place."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("measure:\n  threads: 2\nmatrix:\n  backends: [pytorch, onnxruntime\n"
                       "  devices: [cpu]\n")
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(snakemake), "--cores", "1", "-n", "--configfile", str(overlay),
                           "--directory", str(tmp_path / "work"), "-s", str(REPO / "Snakefile")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert f"Config file {overlay}, line 5, column 10: not valid YAML" in said, said[-2000:]


def test_cells_this_machine_cannot_run_are_one_job(config: dict) -> None:
    import torch

    from deploybench import unavailable

    if torch.cuda.is_available():
        pytest.skip("this machine can run the CUDA cells")
    config["matrix"].update(models=["rtmdet_tiny_shapes"], devices=["cpu", "cuda"],
                            backends=["onnxruntime", "tensorrt"], precisions=["fp32", "int8"])
    plan = Plan(validate(config))
    outputs = unavailable.outputs(plan)
    cuda = [p for p in plan.all_results() if "/cuda/" in p]
    assert cuda and set(cuda) <= set(outputs)
    assert not [p for p in outputs if "/cpu/" in p]  # the CPU cells keep their own jobs
    # TensorRT engines (and their records) are skipped builds; the int8 QDQ model is not.
    assert any(p.endswith("160x160/tensorrt-int8.engine") for p in outputs)
    assert not any("onnxruntime-int8" in p for p in outputs)
    # ... and so is the symmetric QDQ model TensorRT int8 is built from: made only where
    # TensorRT int8 runs.
    assert any(p.endswith("160x160/tensorrt-int8-qdq.onnx") for p in outputs)
    # (PyTorch's CUDA fp32: the model's CUDA training cells, fp32 and amp)
    assert set(unavailable.reasons(plan)) == {"onnxruntime/cuda/fp32", "tensorrt/cuda/fp32",
                                              "tensorrt/cuda/int8", "qdq/cpu/int8",
                                              "pytorch/cuda/fp32"}
    assert {p for p in outputs if "/train/" in p} == {
        f"{plan.results_dir()}/train/rtmdet_tiny_shapes/cuda/{p}.json" for p in ("fp32", "amp")}


def test_a_cluster_node_type_without_gpus_skips_the_same_cells(config: dict) -> None:
    """On a cluster the node type decides in place of this machine: without GPUs (`gpus`
    0), its CUDA cells and TensorRT builds are written as skipped; with GPUs, none is."""
    from deploybench import unavailable
    from deploybench.job_resources import node_type_reason
    from deploybench.plan import profile_plans

    config["matrix"].update(models=["rtmdet_tiny_shapes"], devices=["cpu", "cuda"],
                            backends=["onnxruntime", "tensorrt"], precisions=["fp32", "int8"])
    config.update(profile=["epyc", "h100"], cluster={"epyc": {"slurm_partition": "cpu"},
                                                     "h100": {"slurm_partition": "gpu",
                                                              "gpus": 8}})
    plans = profile_plans(validate(config))
    assert [p.results_dir() for p in plans.values()] == ["results/epyc/local",
                                                         "results/h100/local"]
    epyc = unavailable.outputs(plans["epyc"], node_type_reason(config, "epyc"))
    cuda = [p for p in plans["epyc"].all_results() if "/cuda/" in p]
    assert cuda and set(cuda) <= set(epyc) and not [p for p in epyc if "/cpu/" in p]
    assert all(p.startswith("results/epyc/") for p in epyc)
    assert any(p.endswith("160x160/tensorrt-int8-qdq.onnx") for p in epyc)
    assert unavailable.outputs(plans["h100"], node_type_reason(config, "h100")) == []


@pytest.mark.parametrize("name", ["x; touch pwned", "../../etc", "a/b", "modèle", "with space",
                                  "$(id)", ".hidden", ""])
def test_unsafe_names_are_refused(config: dict, name: str) -> None:
    """Names become paths and job arguments: only plain identifiers pass, named in the error."""
    config["models"][name] = config["models"].pop("rtmdet_tiny_shapes")
    with pytest.raises(UserError, match=r"models: key .* is not valid; expected a name of ASCII"):
        validate(config)
    with pytest.raises(UserError, match=r"profile: value '\.\.' is not valid"):
        validate({**copy.deepcopy(DEFAULT_CONFIG), "profile": ".."})
    # A list of profiles (a cluster run): names each, distinct, and "auto" names no node type.
    for profiles in (["h100", name], ["auto", "h100"], ["h100", "h100"], []):
        with pytest.raises(UserError, match=r"profile: value .* is not valid; expected a "
                                            r"hardware profile's name .* a list of distinct"):
            validate({**copy.deepcopy(DEFAULT_CONFIG), "profile": profiles})
    assert validate({**copy.deepcopy(DEFAULT_CONFIG), "profile": ["h100", "a10"]})["profile"] \
        == ["h100", "a10"]


def test_name_pattern_is_the_schemas() -> None:
    from deploybench.config import NAME_PATTERN, SCHEMA_PATH

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert schema["$defs"]["name"]["pattern"] == f"^{NAME_PATTERN}$"


def test_paths_stay_in_the_working_tree(config: dict) -> None:
    config["build"]["tensorrt_timing_cache"] = "/etc/passwd"
    with pytest.raises(UserError, match=r"build\.tensorrt_timing_cache: value '/etc/passwd'"):
        validate(config)
    config["build"]["tensorrt_timing_cache"] = "../../cache"
    with pytest.raises(UserError, match=r"tensorrt_timing_cache"):
        validate(config)
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["models"]["rtmdet_tiny_shapes"]["config"] = "../outside.py"
    with pytest.raises(UserError, match=r"models\.rtmdet_tiny_shapes\.config: \.\./outside\.py "
                                        r"leads outside the working directory"):
        validate(config)
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["datasets"]["shapes"] = {"kind": "directory", "path": "../../data"}
    with pytest.raises(UserError, match=r"datasets\.shapes\.path: .* leads outside"):
        validate(config)


def test_a_matrix_entry_that_plans_nothing_is_an_error(config: dict) -> None:
    config["matrix"].update(backends=["pytorch"], devices=["cpu"], precisions=["int8"])
    with pytest.raises(UserError, match=r"matrix\.backends: pytorch plans no cell with devices "
                                        r"\['cpu'\] and precisions \['int8'\]; pytorch has cpu: "
                                        r"fp32; cuda: fp32, fp16"):
        validate(config)


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    from deploybench.cli import main

    bad = tmp_path / "overlay.yaml"
    bad.write_text("models:\n  a: [1, 2\n  b: 3\n")
    with pytest.raises(UserError, match=r"overlay\.yaml, line 3, column 4: not valid YAML"):
        read_yaml(bad)
    assert main(["check-config", str(REPO / "config.yaml"), str(bad)]) == 2


def test_a_config_cannot_run_commands_or_escape_the_tree(tmp_path: Path) -> None:
    """The overlay a new user tried: a model named to run a command, and its fetch target.
    Snakemake stops while reading the config; nothing runs and nothing is written."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    pwned = tmp_path / "PWNED"
    name = f"x;touch {pwned};y"
    config["models"] = {name: config["models"]["rtmdet_tiny_shapes"]}
    overlay = tmp_path / "evil.yaml"
    overlay.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(snakemake), "--cores", "1", "--configfile", str(overlay),
                           "--directory", str(work), "-s", str(REPO / "Snakefile"),
                           f"resources/checkpoints/{name}.pth"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    assert "models: key 'x;touch" in proc.stdout + proc.stderr
    assert not pwned.exists() and not (work / "resources").exists()


def zoo_config(config: dict, tmp_path: Path, **entry: object) -> dict:
    (tmp_path / "coco").mkdir(exist_ok=True)
    config["datasets"]["coco"] = {"kind": "directory", "path": str(tmp_path / "coco")}
    config["models"] = {"frcnn": {"zoo": "faster-rcnn_r50_fpn_1x_coco", **entry}}
    return config


def test_a_zoo_model_is_one_line(config: dict, tmp_path: Path) -> None:
    from deploybench import zoo

    valid = validate(zoo_config(config, tmp_path))
    model = valid["models"]["frcnn"]
    assert model["task"] == "detection" and model["dataset"] == "coco"
    assert model["config"] == "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"
    assert config_path(model["config"]) == zoo.lookup("faster-rcnn_r50_fpn_1x_coco").config
    assert model["checkpoint"] == {"url": "https://download.openmmlab.com/mmdetection/v2.0/"
                                   "faster_rcnn/faster_rcnn_r50_fpn_1x_coco/faster_rcnn_r50_fpn"
                                   "_1x_coco_20200130-047c8118.pth"}
    assert model["input_shape"] == [800, 1344] and model["resize_pipeline"] is True
    assert model["published"] == {"bbox_mAP": 0.374}
    args = model_args(Plan(valid), "frcnn", "800x1344").split()
    assert args[args.index("--checkpoint-lock") + 1] == "checkpoints.lock"
    assert args[args.index("--checkpoint-url") + 1] == model["checkpoint"]["url"]
    assert args[-1] == "--resize-pipeline"  # keep-ratio without a pad: set to the shape
    # The metafile's 2.x Name and the config file's stem are the same model.
    config["models"] = {"yolox": {"zoo": "yolox_s_8x8_300e_coco"},
                        "yolox_stem": {"zoo": "yolox_s_8xb8-300e_coco"}}
    both = validate(config)["models"]
    assert {**both["yolox"], "zoo": ""} == {**both["yolox_stem"], "zoo": ""}
    assert both["yolox"]["input_shape"] == [640, 640] and not both["yolox"]["resize_pipeline"]


def test_what_the_config_gives_wins_over_the_zoo(config: dict, tmp_path: Path) -> None:
    entry = {"input_shape": [320, 480], "dataset": "shapes", "task": "detection",
             "checkpoint": {"url": "file:fixtures/checkpoints/rtmdet_tiny_shapes.pth",
                            "sha256": "ab" * 32}}
    model = validate(zoo_config(config, tmp_path, **entry))["models"]["frcnn"]
    assert {k: model[k] for k in entry} == entry
    assert model["resize_pipeline"] is True  # not the pipeline's own shape


@pytest.mark.parametrize(("entry", "message"), [
    ({"zoo": "faster-rcnn_r50_fpn_1x_cocco"},
     r"models\.frcnn\.zoo: no zoo model named 'faster-rcnn_r50_fpn_1x_cocco'.*closest: "
     r"faster-rcnn_r50_fpn_1x_coco"),
    ({"zoo": "deepsort_faster-rcnn_r50_fpn_8xb2-4e_mot17halftrain_test-mot17halfval"},
     r"models\.frcnn\.zoo: .* is other: Multiple Object Tracking"),
    ({"zoo": "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024"},
     r"models\.frcnn\.dataset: .* is evaluated on Cityscapes; add a dataset named 'cityscapes'"),
    ({"task": "detection"}, r"models\.frcnn: give zoo; or task, config, checkpoint, dataset, "
                            r"input_shape \(missing: config, checkpoint, dataset, input_shape\)"),
])
def test_zoo_mistakes_are_named(config: dict, tmp_path: Path, entry: dict, message: str) -> None:
    config = zoo_config(config, tmp_path)
    config["models"]["frcnn"] = entry
    with pytest.raises(UserError, match=message):
        validate(config)


def test_a_checkpoint_without_a_checksum_needs_a_hashed_name(config: dict) -> None:
    checkpoint = config["models"]["rtmdet_tiny_shapes"]["checkpoint"]
    del checkpoint["sha256"]
    with pytest.raises(UserError, match=r"models\.rtmdet_tiny_shapes\.checkpoint: .*no 8-hex "
                                        r"sha256 prefix; set models.<name>.checkpoint.sha256"):
        validate(config)
    checkpoint["url"] = "https://example.org/rtmdet_tiny_shapes_20240101-0123abcd.pth"
    valid = validate(config)
    assert Plan(valid).checksum_args("rtmdet_tiny_shapes") == ["--lock", "checkpoints.lock"]


@pytest.mark.parametrize(("kind", "layout", "message"), [
    ("coco", [], r"has no annotations/instances_val2017\.json and no val2017 \(COCO 2017 val\); "
                 r"download http://images\.cocodataset\.org/zips/val2017\.zip .* or set "
                 r"download: true"),
    ("cityscapes", ["leftImg8bit/val/x", "gtFine/val/x"],
     r"gtFine/val has no \*_labelTrainIds\.png .* tools/dataset_converters/cityscapes\.py"),
    ("cityscapes", [], r"has no leftImg8bit/val and no gtFine/val; Cityscapes needs a login: "
                       r"register at https://www\.cityscapes-dataset\.com"),
])
def test_a_dataset_not_laid_out_as_its_kind_says_what_to_do(config: dict, tmp_path: Path,
                                                            kind: str, layout: list[str],
                                                            message: str) -> None:
    for folder in layout:
        (tmp_path / folder).mkdir(parents=True)
    config["datasets"]["real"] = {"kind": kind, "path": str(tmp_path)}
    with pytest.raises(UserError, match=r"datasets\.real\.path: .*" + message):
        validate(config)


def test_zoo_layouts_of_the_synthetic_data_pass_as_coco_and_cityscapes(config: dict,
                                                                       small_dataset: Path
                                                                       ) -> None:
    config["datasets"] |= {"coco": {"kind": "coco", "path": str(small_dataset), "subset": 4},
                           "cityscapes": {"kind": "cityscapes", "path": str(small_dataset)}}
    config["models"]["rtmdet_tiny_shapes"]["dataset"] = "coco"
    config["evaluate"]["limit"] = 10
    plan = Plan(validate(config))
    assert plan.evaluate_limit("rtmdet_tiny_shapes") == 4  # the dataset's subset, the smaller
    assert plan.evaluate_limit("fast_scnn_shapes") == 10
    assert plan.dataset_dir("coco") == str(small_dataset)
