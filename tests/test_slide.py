"""Slide inference around the backend: mmseg's own `slide_inference`, whichever backend runs the
crops (PyTorch here, ONNX Runtime on the exported crop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deploybench.backends import get_backend
from deploybench.export.onnx_export import export_onnx
from deploybench.models.adapter import SegmentationAdapter, load_adapter

from .conftest import checkpoint_path, model_entry


@pytest.fixture(scope="module")
def sliding(tmp_path_factory: pytest.TempPathFactory) -> SegmentationAdapter:
    """The Fast-SCNN fixture in slide mode: 96x96 crops, stride 64, over 160x224 inputs (2 x 3
    overlapping windows, the last ones shifted back to the edge)."""
    from mmengine.config import Config

    entry = model_entry("fast_scnn_shapes")
    cfg = Config.fromfile(entry["config"])
    cfg.model.test_cfg = dict(mode="slide", crop_size=(96, 96), stride=(64, 64))
    path = tmp_path_factory.mktemp("slide") / "fast_scnn_slide.py"
    cfg.dump(str(path))
    adapter = load_adapter(path, checkpoint_path("fast_scnn_shapes"))
    assert isinstance(adapter, SegmentationAdapter) and adapter.slides
    return adapter


def _mmseg_own(adapter: SegmentationAdapter, inputs: torch.Tensor, samples: list) -> list:
    with torch.inference_mode():
        return adapter.model.predict(inputs, samples)


def test_windows_are_mmsegs() -> None:
    adapter = object.__new__(SegmentationAdapter)
    adapter.slide = ((96, 96), (64, 64))
    assert adapter.windows(160, 224) == [(0, 96, 0, 96), (0, 96, 64, 160), (0, 96, 128, 224),
                                         (64, 160, 0, 96), (64, 160, 64, 160),
                                         (64, 160, 128, 224)]
    assert adapter.windows(96, 96) == [(0, 96, 0, 96)]


def test_slide_around_the_backend_is_mmsegs_slide_inference(sliding: SegmentationAdapter,
                                                            tmp_path: Path) -> None:
    torch.manual_seed(0)
    inputs = torch.randn(1, 3, 160, 224)
    from mmseg.structures import SegDataSample

    metas = dict(ori_shape=(160, 224), img_shape=(160, 224), pad_shape=(160, 224),
                 padding_size=[0, 0, 0, 0])
    expected = _mmseg_own(sliding, inputs, [SegDataSample(metainfo=dict(metas))])
    reference = expected[0].seg_logits.data
    assert sliding.crops(inputs) == 6
    crop = sliding.graph_input(inputs)
    assert tuple(crop.shape) == (1, 3, 96, 96)
    export_onnx(sliding, crop, tmp_path / "crop.onnx", opset=17)
    for backend, artifact in (("pytorch", None), ("onnxruntime", tmp_path / "crop.onnx")):
        runner = get_backend(backend).load(sliding, artifact, "fp32", "cpu", 2)
        outputs = sliding.infer(runner.infer, inputs)
        predicted = sliding.postprocess(outputs, inputs, [SegDataSample(metainfo=dict(metas))])
        got = predicted[0].seg_logits.data
        assert float((got - reference).abs().max()) < 1e-4, backend
        np.testing.assert_array_equal(predicted[0].pred_sem_seg.data.numpy(),
                                      expected[0].pred_sem_seg.data.numpy())
