"""Adaptive average pooling at sizes the ONNX exporter refuses: exact bins, in ONNX Runtime too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from deploybench.export.exportable import ExactAdaptiveAvgPool2d, exportable


@pytest.mark.parametrize(("size", "out"), [((8, 16), (3, 3)), ((33, 65), (6, 6)), ((7, 5), 2),
                                           ((16, 32), (1, 2)), ((10, 10), (None, 3))])
def test_exact_bins_equal_eager(size: tuple[int, int], out: object) -> None:
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    expected = nn.AdaptiveAvgPool2d(out)(x)
    assert torch.allclose(ExactAdaptiveAvgPool2d(out)(x), expected, rtol=0, atol=1e-12)
    x32 = x.float()
    diff = (ExactAdaptiveAvgPool2d(out)(x32) - nn.AdaptiveAvgPool2d(out)(x32)).abs().max()
    assert float(diff) <= 5e-7


class PyramidPooling(nn.Module):
    """PSPNet's pooling pyramid: scales 1, 2, 3, 6 over an 8x16 map (3 and 6 do not divide)."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(4, 4, 1))
                                    for s in (1, 2, 3, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] + [nn.functional.interpolate(s(x), x.shape[-2:], mode="bilinear")
                                for s in self.stages], 1)


def test_pyramid_pooling_exports_and_matches_in_onnx_runtime(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = PyramidPooling().eval()
    x = torch.randn(1, 4, 8, 16)
    with pytest.raises(Exception, match="adaptive_avg_pool2d"):
        torch.onnx.export(net, (x,), str(tmp_path / "refused.onnx"), dynamo=False)
    with torch.no_grad(), exportable(net) as rewrites:
        torch.onnx.export(net, (x,), str(tmp_path / "m.onnx"), input_names=["x"], dynamo=False)
    assert rewrites == ["4 AdaptiveAvgPool2d as exact slice-and-mean bins"]
    assert all(isinstance(s[0], nn.AdaptiveAvgPool2d) for s in net.stages)  # put back
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), rtol=0, atol=1e-5)


class FunctionalPooling(nn.Module):
    """APCNet's way: `F.adaptive_avg_pool2d` called directly, at sizes that do not divide."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([nn.functional.adaptive_avg_pool2d(x, s).flatten(1) for s in (2, 3)], 1)


def test_functional_pooling_exports_and_matches_in_onnx_runtime(tmp_path: Path) -> None:
    net = FunctionalPooling().eval()
    x = torch.randn(1, 4, 8, 16)
    with torch.no_grad(), exportable(net) as rewrites:
        torch.onnx.export(net, (x,), str(tmp_path / "m.onnx"), input_names=["x"], dynamo=False)
    assert rewrites == ["1 F.adaptive_avg_pool2d calls as exact slice-and-mean bins"]
    assert nn.functional.adaptive_avg_pool2d.__name__ == "adaptive_avg_pool2d"  # put back
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, net(x).numpy(), rtol=0, atol=5e-7)


class DeformableConv(nn.Module):
    """RepPoints' layer: mmcv's DeformConv2d with offsets from a plain convolution."""

    def __init__(self) -> None:
        super().__init__()
        from mmcv.ops import DeformConv2d

        self.offset = nn.Conv2d(4, 18, 3, padding=1)
        self.conv = DeformConv2d(4, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.offset(x))


def test_deform_conv_exports_as_onnx_deformconv_and_openvino_cells_skip(tmp_path: Path) -> None:
    from deploybench.backends.openvino import OpenVinoRunner
    from deploybench.errors import CellSkipped
    from deploybench.export.exportable import minimum_opset
    from deploybench.results import Cell, load_result, run_step

    torch.manual_seed(0)
    net = DeformableConv().eval()
    x = torch.randn(1, 4, 12, 16)
    assert minimum_opset(net) == 19 and minimum_opset(PyramidPooling()) == 0
    model = tmp_path / "m.onnx"
    with torch.no_grad(), exportable(net) as rewrites:
        torch.onnx.export(net, (x,), str(model), input_names=["x"], opset_version=19,
                          dynamo=False)
    assert rewrites == ["1 mmcv DeformConv2d as ONNX DeformConv (opset 19)"]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), rtol=0, atol=1e-4)
    # OpenVINO has no rule for DeformConv: the cell is skipped, with that reason.
    with pytest.raises(CellSkipped, match="no ONNX conversion rule for DeformConv"):
        OpenVinoRunner(model, 1)
    out = tmp_path / "result.json"
    code = run_step("measure", Cell("m", "detection", "openvino", "fp32"), out, {}, [],
                    lambda: OpenVinoRunner(model, 1))
    result = load_result(out)
    assert code == 0 and result["status"] == "skipped" and "DeformConv" in result["reason"]
