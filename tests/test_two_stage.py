"""Two-stage detectors: the first graph (backbone + neck + RPN head) and the RoI heads' graphs
exported and run in ONNX Runtime and OpenVINO, proposals, RoIAlign and NMS between them in
PyTorch: the same predictions as mmdet's own `predict`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deploybench.backends import get_backend
from deploybench.export.onnx_export import export_onnx
from deploybench.fixture.zoo_weights import random_init_checkpoint
from deploybench.measure.stages import time_stages
from deploybench.models.adapter import TwoStageDetectionAdapter, load_adapter
from deploybench.models.instance_masks import paste_masks
from deploybench.zoo import lookup


def _adapter(name: str, root: Path) -> TwoStageDetectionAdapter:
    """The zoo model at random init, every detection kept (score_thr 0) so that random weights
    still give boxes to compare, at a small non-square shape."""
    config = root / f"{name}.py"
    config.write_text(f"_base_ = '{lookup(name).config_ref}'\n"
                      "model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))\n")
    weights = random_init_checkpoint(name, root)
    adapter = load_adapter(config, weights, "cpu", (224, 288))
    assert isinstance(adapter, TwoStageDetectionAdapter)
    return adapter


@pytest.mark.parametrize("name", ["faster-rcnn_r50_fpn_1x_coco", "mask-rcnn_r50_fpn_1x_coco",
                                  "cascade-rcnn_r50_fpn_1x_coco"])
def test_two_stage_in_onnx_runtime_predicts_as_mmdet(name: str, small_dataset: Path,
                                                     tmp_path: Path) -> None:
    adapter = _adapter(name, tmp_path)
    dataset = adapter.dataset(small_dataset)
    raw, batch, samples = next(adapter.batches(dataset, 1))
    assert tuple(batch.shape) == (1, 3, 224, 288)
    with torch.inference_mode():
        expected = adapter.model.predict(batch, [s.clone() for s in samples])[0].pred_instances
    assert len(expected) > 0
    export_onnx(adapter, batch, tmp_path / "graph.onnx", opset=17)
    # The RoI heads as graphs of their own beside the first (a cascade's stay in PyTorch).
    heads = [] if "cascade" in name else ["roi_bbox"] + (["roi_mask"] if "mask" in name else [])
    assert sorted(p.name for p in tmp_path.glob("graph.*.onnx")) == [
        f"graph.{h}.onnx" for h in heads]
    for backend, artifact in (("pytorch", None), ("onnxruntime", tmp_path / "graph.onnx"),
                              ("openvino", tmp_path / "graph.onnx")):
        runner = get_backend(backend).load(adapter, artifact, "fp32", "cpu", 2)
        assert adapter.placement()["roi_heads_on_backend"] == ([] if backend == "pytorch"
                                                               else heads)
        outputs = adapter.infer(runner.infer, batch)
        assert len(outputs) == 5 + 5 + 5  # FPN levels, RPN scores, RPN boxes
        got = adapter.postprocess(outputs, batch, [s.clone() for s in samples])[0].pred_instances
        # The exported graphs agree to float rounding; the ranking after them may then swap
        # near-equal scores, so compare the top boxes by score.
        top = min(20, len(expected))
        np.testing.assert_allclose(got.bboxes[:top].numpy(), expected.bboxes[:top].numpy(),
                                   atol=1e-2 if backend != "pytorch" else 0)
        if "masks" in expected:
            agree = (got.masks[:top] == expected.masks[:top]).float().mean()
            assert float(agree) > (0.999 if backend != "pytorch" else 1 - 1e-9)


def test_ssd_predicts_despite_mmdets_missing_loss_cls(small_dataset: Path,
                                                     tmp_path: Path) -> None:
    """mmdet 3.3's SSDHead cannot run its own predict (no `loss_cls`, upstream); the adapter
    works around it, and its post-processing then gives mmdet's own predictions."""
    name = "ssd300_coco"
    adapter = load_adapter(lookup(name).config_ref, random_init_checkpoint(name, tmp_path),
                           "cpu", (300, 300))
    assert adapter.model.bbox_head.loss_cls is None
    _, batch, samples = next(adapter.batches(adapter.dataset(small_dataset), 1))
    runner = get_backend("pytorch").load(adapter, None, "fp32", "cpu", 2)
    got = adapter.postprocess(adapter.infer(runner.infer, batch), batch,
                              [s.clone() for s in samples])[0].pred_instances
    with torch.inference_mode():
        expected = adapter.model.predict(batch, [s.clone() for s in samples])[0].pred_instances
    assert len(got) == len(expected) > 0
    np.testing.assert_array_equal(got.bboxes.numpy(), expected.bboxes.numpy())


def test_mask_rcnn_stages_and_native_masks(small_dataset: Path, tmp_path: Path) -> None:
    """Mask R-CNN's post-processing timed as the stage study splits it, each stage charged its
    own time; native masks (each box's 28x28 mask) paste into mmdet's own full-image masks."""
    adapter = _adapter("mask-rcnn_r50_fpn_1x_coco", tmp_path)
    assert adapter.has_masks
    dataset = adapter.dataset(small_dataset)
    _, batch, samples = next(adapter.batches(dataset, 1))
    outputs = adapter.run_network(batch)
    full = adapter.postprocess(outputs, batch, [s.clone() for s in samples])[0]
    native = adapter.postprocess(outputs, batch, [s.clone() for s in samples],
                                 native_masks=True)[0]
    f, n = full.pred_instances, native.pred_instances
    assert len(f) > 0 and "masks" not in n and n.mask_probs.shape[1:] == (28, 28)
    for key in ("bboxes", "scores", "labels"):
        torch.testing.assert_close(n[key], f[key], rtol=0, atol=0)
    pasted = paste_masks(n, native.metainfo, adapter.model.roi_head.test_cfg.mask_thr_binary)
    np.testing.assert_array_equal(pasted.masks.numpy(), f.masks.numpy())

    runner = get_backend("pytorch").load(adapter, None, "fp32", "cpu", 2)
    for native_masks in (False, True):
        timed = time_stages(adapter, dataset, runner, 2, 1, native_masks=native_masks)
        stages = timed["stages_ms"]
        assert list(stages) == ["decode", "preprocess", "to_device", "network", "to_host",
                                "proposals", "roi_bbox", "roi_mask", "mask_post", "postprocess"]
        assert all(stages[s]["median"] > 0 for s in ("proposals", "roi_bbox", "roi_mask",
                                                     "mask_post"))
        # A stage timed inside another is not counted twice: the stages never exceed the total.
        assert timed["unaccounted_ms_median"] >= 0
    # Without the paste, the mask post-processing is a fraction of itself.
    assert stages["mask_post"]["median"] < time_stages(
        adapter, dataset, runner, 2, 1)["stages_ms"]["mask_post"]["median"]


def test_mask_rcnn_fixture_finds_the_shapes_through_onnx_runtime(small_dataset: Path,
                                                                  tmp_path: Path) -> None:
    """The trained two-stage fixture: its graphs in ONNX Runtime, proposals, RoIAlign and NMS
    between them, boxes and masks scored by the model's own COCO metric on the first val images."""
    from deploybench.cell import CellInputs
    from deploybench.evaluate import evaluate_cell
    from deploybench.results import Cell

    from .conftest import checkpoint_path, model_entry

    name = "mask_rcnn_r18_shapes"
    config, weights = Path(model_entry(name)["config"]), checkpoint_path(name)
    adapter = load_adapter(config, weights)
    _, batch, _ = next(adapter.batches(adapter.dataset(small_dataset), 1))
    export_onnx(adapter, batch, tmp_path / "graph.onnx", opset=17)
    inputs = CellInputs(config, weights, small_dataset, tmp_path / "graph.onnx", threads=2)
    cell = Cell(name, "instance_segmentation", "onnxruntime", "fp32")
    status, reason, data = evaluate_cell(cell, inputs, [1, 3, 160, 160])
    assert (status, reason, data["num_images"]) == ("ok", "", 6)
    assert data["roi_heads_on_backend"] == ["roi_bbox", "roi_mask"]  # graphs of their own
    assert data["metrics"]["bbox_mAP"] >= 0.5 and data["metrics"]["segm_mAP"] >= 0.4


def test_int8_builds_quantize_the_roi_heads_too(small_dataset: Path, tmp_path: Path) -> None:
    """ONNX Runtime's and OpenVINO's int8 builds of the Mask R-CNN fixture make the RoI heads'
    graphs beside the first, calibrated on the RoI features of the calibration images; the
    cells run them, and the model still finds the shapes."""
    import onnx

    from deploybench.cell import CellInputs
    from deploybench.evaluate import evaluate_cell
    from deploybench.export.build import BuildOptions, build_artifact
    from deploybench.results import Cell

    from .conftest import checkpoint_path, model_entry

    name = "mask_rcnn_r18_shapes"
    config, weights = Path(model_entry(name)["config"]), checkpoint_path(name)
    adapter = load_adapter(config, weights)
    _, batch, _ = next(adapter.batches(adapter.dataset(small_dataset), 1))
    export_onnx(adapter, batch, tmp_path / "graph.onnx", opset=17)
    options = BuildOptions.of({"calibration_images": 6, "calibration_split": "test"})
    for backend, out in (("onnxruntime", tmp_path / "int8.onnx"),
                         ("openvino", tmp_path / "int8.xml")):
        info = build_artifact(adapter, small_dataset, backend, "cpu", "int8",
                              tmp_path / "graph.onnx", out, options)
        heads = info["head_graphs"]
        assert sorted(heads) == ["roi_bbox", "roi_mask"]
        for head in heads.values():
            assert Path(head["artifact"]).is_file() and head["calibration"]["rois"] > 0
        if backend == "onnxruntime":
            ops = {n.op_type for n in onnx.load(heads["roi_bbox"]["artifact"]).graph.node}
            assert "QuantizeLinear" in ops  # the heads are int8, not copies of the fp32 ones
        inputs = CellInputs(config, weights, small_dataset, out, threads=2)
        cell = Cell(name, "instance_segmentation", backend, "int8")
        status, reason, data = evaluate_cell(cell, inputs, [1, 3, 160, 160])
        assert (status, reason) == ("ok", "")
        assert data["roi_heads_on_backend"] == ["roi_bbox", "roi_mask"]
        assert data["metrics"]["bbox_mAP"] >= 0.5 and data["metrics"]["segm_mAP"] >= 0.4
