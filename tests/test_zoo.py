"""The model zoo from the installed mmdet and mmseg metafiles, offline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploybench import zoo
from deploybench.errors import UserError

from .conftest import REPO

DEPLOYBENCH = str(Path(sys.executable).with_name("deploybench"))


def test_a_model_by_its_name_or_its_config_stem() -> None:
    retinanet = zoo.lookup("retinanet_r50_fpn_1x_coco")
    assert retinanet.codebase == "mmdet" and retinanet.task == "detection"
    assert retinanet.config.is_file() and retinanet.config.name == "retinanet_r50_fpn_1x_coco.py"
    assert retinanet.dataset == "COCO" and retinanet.metrics["bbox_mAP"] == pytest.approx(0.365)
    assert retinanet.weights.startswith("https://download.openmmlab.com/")
    assert retinanet.sha256_prefix and len(retinanet.sha256_prefix) == 8
    # mmdet's Name keeps the 2.x spelling; the config file's stem finds it too
    yolox = zoo.lookup("yolox_s_8xb8-300e_coco")
    assert yolox.name == "yolox_s_8x8_300e_coco" and yolox is zoo.lookup(yolox.name)
    mask = zoo.lookup("mask-rcnn_r50_fpn_1x_coco")
    assert mask.task == "instance_segmentation" and set(mask.metrics) == {"bbox_mAP", "segm_mAP"}
    psp = zoo.lookup("pspnet_r50-d8_4xb2-40k_cityscapes-512x1024")
    assert (psp.codebase, psp.task, psp.dataset) == ("mmseg", "segmentation", "Cityscapes")
    assert psp.metrics == {"mIoU": 77.85} and psp.config.is_file()


def test_a_name_that_does_not_exist_gets_the_closest() -> None:
    with pytest.raises(UserError, match=r"closest: retinanet_r50_fpn_1x_coco\b"):
        zoo.lookup("retinanet_r50_fpn_1x_cocoo")


def test_a_bad_pattern_is_named() -> None:
    with pytest.raises(UserError, match=r"--grep '\(' is not a regular expression"):
        zoo.search(grep="(")


def test_the_seed_tables_models_are_in_the_zoo() -> None:
    """The architectures of the pages deploybench regenerates (../shared/seeds/)."""
    for pattern, task in [("^retinanet_r50_fpn_1x", "detection"), ("^fcos_", "detection"),
                          ("^yolov3_", "detection"), ("^ssdlite_", "detection"),
                          ("^faster[-_]rcnn_r50_fpn_1x", "detection"),
                          ("^mask[-_]rcnn_r50_fpn_1x", "instance_segmentation"),
                          ("^cascade[-_]rcnn_r50_fpn_1x", "detection"),
                          ("^fcn_r50-d8", "segmentation"), ("^pspnet_r50-d8", "segmentation"),
                          ("^deeplabv3plus_r50-d8", "segmentation"),
                          ("^fast_scnn", "segmentation"), ("^segformer_mit-b0", "segmentation")]:
        found = [m for m in zoo.search(grep=pattern) if m.supported]
        assert found and all(m.task == task for m in found), pattern


def test_the_cli_lists_and_shows() -> None:
    listing = subprocess.run([DEPLOYBENCH, "zoo", "list", "--task", "segmentation", "--dataset",
                              "cityscapes", "--grep", "^pspnet_r50-d8_4xb2-40k"],
                             capture_output=True, text=True, check=True).stdout
    assert "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024" in listing and "mIoU 77.85" in listing
    assert "retinanet" not in listing
    shown = subprocess.run([DEPLOYBENCH, "zoo", "show", "yolox_s_8xb8-300e_coco"],
                           capture_output=True, text=True, check=True).stdout
    assert "yolox_s_8x8_300e_coco" in shown and "bbox_mAP 0.405" in shown
    assert "shape:     640x640 (input_shape default: what its test pipeline makes)" in shown
    shown = subprocess.run([DEPLOYBENCH, "zoo", "show", "faster-rcnn_r50_fpn_1x_coco"],
                           capture_output=True, text=True, check=True).stdout
    for line in ("configs/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "bbox_mAP 0.374",
                 "faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth", "shape:     800x1344",
                 "sha256:    starts with 047c8118"):
        assert line in shown, line
    missing = subprocess.run([DEPLOYBENCH, "zoo", "show", "no_such_model"], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "no zoo model named 'no_such_model'" in missing.stderr


def test_the_seed_tables_config_plans_every_model_offline(tmp_path: Path) -> None:
    """config/zoo.yaml: every model by its zoo name, planned without weights or data."""
    import yaml

    models = yaml.safe_load((REPO / "config" / "zoo.yaml").read_text())["models"]
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    run = subprocess.run([snakemake, "-n", "-s", str(REPO / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(REPO / "config" / "zoo.yaml"),
                          "--cores", "2"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    stats = dict(line.split() for line in run.stdout.splitlines()
                 if re.fullmatch(r"[a-z_]+\s+\d+", line.strip()))
    assert int(stats["fetch_checkpoint"]) == int(stats["export_onnx"]) == len(models) >= 40
    assert "datasets.cityscapes.path: data/cityscapes does not exist" in run.stderr  # warned
