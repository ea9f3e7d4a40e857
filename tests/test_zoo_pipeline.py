"""Zoo models through the whole Snakemake pipeline at random init and reduced shapes, on the
synthetic data's COCO and Cityscapes layouts: Faster and Mask R-CNN (two-stage), PSPNet (pyramid
pooling), SegFormer, and a slide-mode segmentor; PyTorch, ONNX Runtime and OpenVINO, with
parity."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deploybench.fixture.zoo_weights import random_init_checkpoint

from .conftest import DEFAULT_CONFIG, model_entry
from .test_pipeline import snakemake

pytestmark = pytest.mark.slow


def _zoo_model(name: str, shape: list[int], weights: Path) -> dict:
    """The zoo model `name` at random init (served from `weights`), on the synthetic data."""
    checkpoint = random_init_checkpoint(name, weights)
    return {"zoo": name, "dataset": "shapes", "input_shape": shape,
            "checkpoint": {"url": checkpoint.as_uri()}}


def test_zoo_models_through_the_pipeline(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    slide = model_entry("fast_scnn_shapes")
    slide["config"] = str(Path(slide["config"]).with_name("fast_scnn_shapes_slide.py"))
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["profile"] = "ci"
    config["datasets"]["shapes"].update(num_train=2, num_val=6)
    config["models"] = {
        "frcnn": _zoo_model("faster-rcnn_r50_fpn_1x_coco", [224, 288], weights),
        "mask_rcnn": _zoo_model("mask-rcnn_r50_fpn_1x_coco", [224, 288], weights),
        "pspnet": _zoo_model("pspnet_r50-d8_4xb2-80k_cityscapes-512x1024", [128, 256], weights),
        "segformer": _zoo_model("segformer_mit-b0_8xb1-160k_cityscapes-1024x1024", [128, 256],
                                weights),
        "fast_scnn_slide": slide}
    config["matrix"].update(models=[], backends=["pytorch", "onnxruntime", "openvino"],
                            devices=["cpu"], precisions=["fp32"])
    config["parity"]["images"] = 3
    config["measure"].update(warmup_iters=1, warmup_seconds=0.0, min_rounds=2, min_seconds=0.0,
                             max_seconds=2.0, slice_seconds=0.01, stage_images=2)
    # Training zoo configs is test_training.py's (Faster R-CNN, Fast-SCNN): here R50 iterations
    # at the train pipelines' 800-1024 px would take minutes of the suite.
    config["train"]["enabled"] = False
    work = tmp_path / "work"
    work.mkdir()
    run = snakemake(work, config, "--keep-going")
    assert run.returncode == 0, run.stderr[-4000:]
    docs = (work / "reports" / "ci" / "benchmark.md").read_text()
    frame = pd.read_csv(work / "reports" / "ci" / "results.csv")
    assert set(frame.status) == {"ok"}, frame[frame.status != "ok"][["model", "reason"]]
    # The zoo checkpoint was checked by its name's prefix and locked with its whole digest.
    lock = yaml.safe_load((work / "checkpoints.lock").read_text())
    assert lock == {w.name: hashlib.sha256(w.read_bytes()).hexdigest()
                    for w in weights.glob("*.pth")}
    assert len(lock) == 4
    # What runs where is said: the two-stage graph, and the slide windows.
    assert ("frcnn: the graph every backend runs first is backbone + neck + RPN head; proposals "
            "(decode + NMS), RoIAlign and the RoI NMS run after it") in docs
    # ... and the RoI heads' own graphs ran on ONNX Runtime and OpenVINO.
    for model, heads in (("frcnn", "bbox head"), ("mask_rcnn", "bbox head, mask head")):
        assert re.search(rf"{model}: [^\n]* The RoI heads \({heads}\) are graphs of their "
                         r"own, run by the backend in onnxruntime fp32 \(cpu\), openvino fp32 "
                         r"\(cpu\), and in PyTorch", docs)
    assert "Slide inference (fast_scnn_slide 192x192: 9 crops of 96x96)" in docs
    evaluated = frame[frame.eval_images.notna()].set_index(["model", "backend"])
    for backend in ("onnxruntime", "openvino"):
        assert evaluated.loc[("fast_scnn_slide", backend), "pixel_agreement"] == 1.0
        for model in ("pspnet", "segformer"):
            assert evaluated.loc[(model, backend), "pixel_agreement"] > 0.99
        for model in ("frcnn", "mask_rcnn"):
            assert evaluated.loc[(model, backend), "parity_max_abs"] < 1e-3
    # Mask R-CNN's stage table has the stage study's columns, native masks included.
    assert re.search(r"\| proposals +\| RoI bbox +\| RoI mask +\| mask post +\| postprocess +\|",
                     docs)
    for backend, heads in (("onnxruntime", "backend"), ("openvino", "backend"),
                           ("pytorch", "PyTorch")):
        assert re.search(rf"\| mask_rcnn +\| 224x288 +\| {backend} +\| cpu +\| fp32 +\| "
                         rf"tensor \+ native masks +\| {heads} +\|", docs)
    assert docs.count("Two-stage detectors, in the stage study's shape") == 1
    # Trained weights in slide mode still segment the shapes; the zoo model's published AP is
    # beside its (random-init) measurement, and the gate says they differ.
    assert evaluated.loc[("fast_scnn_slide", "pytorch"), "mIoU"] > 50
    assert "| frcnn | 224x288 | bbox_mAP | 0.374 |" in docs
