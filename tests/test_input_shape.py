"""Shape as a matrix dimension: the real models run at input shapes their configs do not name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from deploybench.backends import get_backend
from deploybench.cell import CellInputs, check_input_shape
from deploybench.errors import UserError
from deploybench.evaluate import evaluate_cell
from deploybench.export.onnx_export import export_onnx
from deploybench.models.adapter import load_adapter
from deploybench.models.input_shape import default_input_shape, set_input_shape
from deploybench.preprocess.tensor_path import TensorPreprocessor
from deploybench.results import Cell

from .conftest import checkpoint_path, model_entry


@pytest.mark.parametrize(("name", "shape"), [("rtmdet_tiny_shapes", (256, 224)),
                                             ("rtmdet_ins_tiny_shapes", (224, 288)),
                                             ("fast_scnn_shapes", (384, 384))])
def test_model_runs_at_another_shape(name: str, shape: tuple[int, int], small_dataset: Path,
                                     tmp_path: Path) -> None:
    adapter = load_adapter(model_entry(name)["config"], checkpoint_path(name), "cpu",
                           shape)
    dataset = adapter.dataset(small_dataset)
    _, batch, samples = next(adapter.batches(dataset))
    check_input_shape([1, 3, *shape], tuple(batch.shape))
    # The tensor path follows the changed pipeline, byte for byte.
    data = TensorPreprocessor(adapter, dataset, "cpu")(0)
    assert float((data["inputs"] - batch).abs().max()) == 0.0
    # The export is made at that shape, and ONNX Runtime agrees with PyTorch there.
    meta = export_onnx(adapter, batch, tmp_path / "m.onnx", opset=17)
    assert meta["input_shape"] == [1, 3, *shape]
    x = np.ascontiguousarray(batch.numpy())
    reference = get_backend("pytorch").load(adapter, None, "fp32", "cpu", 2).infer(x)
    ort = get_backend("onnxruntime").load(adapter, tmp_path / "m.onnx", "fp32", "cpu", 2).infer(x)
    for a, b in zip(ort, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # Predictions come back in the original image's frame, whatever the network saw.
    pred = adapter.prediction_arrays(adapter.postprocess(reference, batch, samples)[0])
    if "bboxes" in pred:
        confident = pred["bboxes"][pred["scores"] > 0.3]
        assert len(confident) and confident.max() <= 160.5  # the padding holds no objects
        if "masks" in pred:
            assert pred["masks"].shape[1:] == (160, 160)
    else:
        assert pred["labels"].shape == (160, 160)


def test_accuracy_holds_at_a_larger_shape(small_dataset: Path) -> None:
    entry = model_entry("rtmdet_tiny_shapes")
    inputs = CellInputs(Path(entry["config"]), checkpoint_path("rtmdet_tiny_shapes"),
                        small_dataset, threads=2, pipeline_shape=(320, 320))
    cell = Cell("rtmdet_tiny_shapes", "detection", "pytorch", "fp32", shape="320x320")
    status, reason, data = evaluate_cell(cell, inputs, [1, 3, 320, 320], None)
    assert (status, reason) == ("ok", "")
    assert data["metrics"]["bbox_mAP"] > 0.3  # trained at 160 px; still finds the shapes


def test_a_keep_ratio_pipeline_without_a_pad_gets_one(small_dataset: Path) -> None:
    # Fast-SCNN's pipeline resizes keeping the ratio and does not pad: a square image becomes
    # 192x192, and the preprocessor's test-time pad (what it pads to a divisor with) makes it
    # the static 384x192 the cell runs at.
    adapter = load_adapter(model_entry("fast_scnn_shapes")["config"],
                           checkpoint_path("fast_scnn_shapes"), "cpu", (384, 192))
    _, batch, samples = next(adapter.batches(adapter.dataset(small_dataset)))
    check_input_shape([1, 3, 384, 192], tuple(batch.shape))
    assert samples[0].metainfo["img_shape"] == (192, 192)
    assert float(batch[0, :, 192:].abs().max()) == 0.0  # padded below, with the normalized 0


def _config(pipeline: list[dict], **preprocessor: object) -> Config:
    return Config(dict(test_dataloader=dict(dataset=dict(pipeline=pipeline)),
                       model=dict(data_preprocessor=preprocessor)))


def test_resize_pad_and_test_time_pad_follow_the_shape() -> None:
    cfg = _config([dict(type="LoadImageFromFile"),
                   dict(type="mmdet.Resize", scale=(640, 640), keep_ratio=True),
                   dict(type="Pad", size=(640, 640)), dict(type="Pad", size_divisor=32)],
                  test_cfg=dict(size=(640, 640)))
    set_input_shape(cfg, (480, 320))
    resize, pad, divisor = cfg.test_dataloader.dataset.pipeline[1:]
    assert resize.scale == (320, 480) and pad.size == (320, 480)  # mmcv: (w, h)
    assert divisor.size_divisor == 32 and divisor.get("size") is None
    assert cfg.model.data_preprocessor.test_cfg.size == (480, 320)  # mmseg: (h, w)


@pytest.mark.parametrize(("pipeline", "message"), [
    ([dict(type="LoadImageFromFile")], "has no Resize"),
    ([dict(type="Resize", scale_factor=0.5)], "uses scale_factor, not scale"),
    ([dict(type="TestTimeAug", transforms=[])], "uses TestTimeAug"),
])
def test_pipeline_that_cannot_take_a_shape_is_named(pipeline: list[dict], message: str) -> None:
    with pytest.raises(UserError, match=message):
        set_input_shape(_config(pipeline), (320, 320))


def _zoo_detector_pipeline() -> list[dict]:
    """A zoo detector's test pipeline (Faster R-CNN's): keep-ratio resize, no pad."""
    return [dict(type="LoadImageFromFile"),
            dict(type="Resize", scale=(1333, 800), keep_ratio=True),
            dict(type="LoadAnnotations", with_bbox=True),
            dict(type="PackDetInputs")]


def test_a_zoo_detector_fits_and_pads_at_a_static_shape() -> None:
    from mmdet.utils import register_all_modules
    from mmengine.dataset import Compose

    register_all_modules()
    cfg = _config(_zoo_detector_pipeline(), mean=[123.675, 116.28, 103.53], bgr_to_rgb=True,
                  pad_size_divisor=32)
    cfg.default_scope = "mmdet"
    assert default_input_shape(cfg) == ((800, 1344), False)  # mmdeploy's static COCO shape
    set_input_shape(cfg, (800, 1344))
    resize = cfg.test_dataloader.dataset.pipeline[1]
    assert resize.type == "FixShapeResize" and resize.keep_ratio
    assert resize.pad_val["img"] == (104, 116, 124)  # the mean pixel, BGR
    # Landscape and portrait images alike fit inside the shape and are padded to it.
    transform = Compose(cfg.test_dataloader.dataset.pipeline[1:2])
    for h, w in ((480, 640), (640, 427), (300, 1500)):
        results = transform({"img": np.zeros((h, w, 3), np.uint8), "img_shape": (h, w)})
        assert results["img"].shape == (800, 1344, 3)


def _zoo_segmentor_pipeline() -> list[dict]:
    return [dict(type="LoadImageFromFile"),
            dict(type="Resize", scale=(2048, 1024), keep_ratio=True), dict(type="PackSegInputs")]


def test_a_zoo_segmentor_pads_at_test_time() -> None:
    cfg = _config(_zoo_segmentor_pipeline(), size_divisor=32)
    cfg.default_scope = "mmseg"
    assert default_input_shape(cfg) == ((1024, 2048), False)
    set_input_shape(cfg, (512, 1024))
    assert cfg.model.data_preprocessor.test_cfg.size == (512, 1024)
    cfg = _config(_zoo_segmentor_pipeline(), size_divisor=32)
    cfg.model.test_cfg = dict(mode="slide", crop_size=(1024, 1024), stride=(768, 768))
    assert default_input_shape(cfg) == ((1024, 2048), False)  # slide: crops of this input


@pytest.mark.parametrize(("pipeline", "shape"), [
    ([dict(type="Resize", scale=(640, 640), keep_ratio=True), dict(type="Pad", size=(640, 640))],
     ((640, 640), True)),
    ([dict(type="Resize", scale=(640, 640), keep_ratio=True),
      dict(type="Pad", pad_to_square=True)], ((640, 640), True)),
    ([dict(type="Resize", scale=(300, 300), keep_ratio=False)], ((300, 300), True)),
    ([dict(type="Resize", scale=(608, 608), keep_ratio=True), dict(type="Pad", size_divisor=32)],
     ((608, 608), False)),
])
def test_default_input_shapes_of_zoo_pipelines(pipeline: list[dict],
                                              shape: tuple[tuple[int, int], bool]) -> None:
    assert default_input_shape(_config(pipeline)) == shape
