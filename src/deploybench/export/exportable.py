"""Rewrites that make a network exportable to ONNX without changing what it computes.

Adaptive average pooling whose output size does not divide its input (the pyramid pooling of
PSPNet, UPerNet and Fast-SCNN at most input sizes) has no ONNX form: the exporter refuses it.
For the export only, each `nn.AdaptiveAvgPool2d` computes the same bins explicitly (PyTorch's
edges: floor(i * in / out) to ceil((i + 1) * in / out)) as slices and means, which export as
Slice / ReduceMean / Concat. Where the size divides, it stays one pooling op. (mmdeploy's
`avg_pool2d` rewrite uses equal kernels instead and is not exact: not used.) Calls of the
functional `F.adaptive_avg_pool2d` (APCNet's) get the same bins.

mmcv's `DeformConv2d` (RepPoints) exports as mmcv's own custom op, which ONNX Runtime does not
know; for the export it emits ONNX's standard `DeformConv` (opset 19) instead, same inputs and
arithmetic, so a model with one exports at opset 19 at least (`minimum_opset`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

_ADAPTIVE_AVG_POOL2D = F.adaptive_avg_pool2d  # the original, while the export patches F's
DEFORM_CONV_OPSET = 19  # ONNX's DeformConv


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def _output_size(height: int, width: int,
                 size: int | tuple[int | None, int | None]) -> tuple[int, int]:
    out_h, out_w = (size, size) if isinstance(size, int) else size
    return out_h or height, out_w or width


def exact_adaptive_avg_pool2d(x: torch.Tensor,
                              output_size: int | tuple[int | None, int | None]) -> torch.Tensor:
    height, width = int(x.shape[-2]), int(x.shape[-1])
    out_h, out_w = _output_size(height, width, output_size)
    if height % out_h == 0 and width % out_w == 0:
        return _ADAPTIVE_AVG_POOL2D(x, (out_h, out_w))
    # Bins are rectangles: the mean over rows, then over columns, is the mean over each.
    rows = torch.cat([x[..., a:b, :].mean(-2, keepdim=True) for a, b in _bins(height, out_h)],
                     -2)
    return torch.cat([rows[..., a:b].mean(-1, keepdim=True) for a, b in _bins(width, out_w)],
                     -1)


class ExactAdaptiveAvgPool2d(nn.Module):
    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return exact_adaptive_avg_pool2d(x, self.output_size)


def _pair(value: int | tuple[int, ...]) -> list[int]:
    return list(value) if isinstance(value, tuple | list) else [value, value]


def _onnx_deform_conv(g: Any, input: Any, offset: Any, weight: Any, stride: Any, padding: Any,
                      dilation: Any, groups: int, deform_groups: int, bias: bool = False,
                      im2col_step: int = 32) -> Any:
    """mmcv's deform_conv2d as ONNX DeformConv: X, W, offset (the same (y, x) layout)."""
    from torch.onnx import symbolic_helper

    kernel = symbolic_helper._get_tensor_sizes(weight)[2:]
    return g.op("DeformConv", input, weight, offset, dilations_i=_pair(dilation),
                group_i=groups, kernel_shape_i=kernel, offset_group_i=deform_groups,
                pads_i=_pair(padding) * 2, strides_i=_pair(stride))


def _deform_convs(network: nn.Module) -> int:
    try:
        from mmcv.ops import DeformConv2d
    except ImportError:
        return 0
    return sum(isinstance(m, DeformConv2d) for m in network.modules())


def minimum_opset(network: nn.Module) -> int:
    """The lowest opset the rewrites need for this network (0: any)."""
    return DEFORM_CONV_OPSET if _deform_convs(network) else 0


@contextlib.contextmanager
def exportable(network: nn.Module) -> Iterator[list[str]]:
    """Swap the rewrites in for the duration of an export; yields what was rewritten."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in network.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d):
                swapped.append((parent, name, child))
                setattr(parent, name, ExactAdaptiveAvgPool2d(child.output_size))
    rewrites = [f"{len(swapped)} AdaptiveAvgPool2d as exact slice-and-mean bins"] if swapped else []
    binned = [0]  # functional calls whose size does not divide, counted as the export traces

    def functional(x: torch.Tensor, output_size: Any) -> torch.Tensor:
        out_h, out_w = _output_size(int(x.shape[-2]), int(x.shape[-1]), output_size)
        binned[0] += bool(int(x.shape[-2]) % out_h or int(x.shape[-1]) % out_w)
        return exact_adaptive_avg_pool2d(x, output_size)

    deform = _deform_convs(network)
    if deform:
        from mmcv.ops.deform_conv import DeformConv2dFunction

        rewrites.append(f"{deform} mmcv DeformConv2d as ONNX DeformConv (opset "
                        f"{DEFORM_CONV_OPSET})")
        mmcv_symbolic = DeformConv2dFunction.symbolic
        DeformConv2dFunction.symbolic = staticmethod(_onnx_deform_conv)
    F.adaptive_avg_pool2d = functional
    try:
        yield rewrites
        if binned[0]:
            rewrites.append(f"{binned[0]} F.adaptive_avg_pool2d calls as exact slice-and-mean "
                            "bins")
    finally:
        F.adaptive_avg_pool2d = _ADAPTIVE_AVG_POOL2D
        if deform:
            DeformConv2dFunction.symbolic = staticmethod(mmcv_symbolic)
        for parent, name, child in swapped:
            setattr(parent, name, child)
