"""Rewrites that make a network exportable to ONNX without changing what it computes.

Adaptive average pooling whose output size does not divide its input (the pyramid pooling of
PSPNet, UPerNet and Fast-SCNN at most input sizes) has no ONNX form: the exporter refuses it.
For the export only, each `nn.AdaptiveAvgPool2d` computes the same bins explicitly (PyTorch's
edges: floor(i * in / out) to ceil((i + 1) * in / out)) as slices and means, which export as
Slice / ReduceMean / Concat. Where the size divides, it stays one pooling op. (mmdeploy's
`avg_pool2d` rewrite uses equal kernels instead and is not exact: not used.)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


class ExactAdaptiveAvgPool2d(nn.Module):
    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        size = self.output_size
        out_h, out_w = (size, size) if isinstance(size, int) else size
        out_h, out_w = out_h or height, out_w or width
        if height % out_h == 0 and width % out_w == 0:
            return F.adaptive_avg_pool2d(x, (out_h, out_w))
        # Bins are rectangles: the mean over rows, then over columns, is the mean over each.
        rows = torch.cat([x[..., a:b, :].mean(-2, keepdim=True) for a, b in _bins(height, out_h)],
                         -2)
        return torch.cat([rows[..., a:b].mean(-1, keepdim=True) for a, b in _bins(width, out_w)],
                         -1)


@contextlib.contextmanager
def exportable(network: nn.Module) -> Iterator[list[str]]:
    """Swap the rewrites in for the duration of an export; yields what was rewritten."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in network.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.AdaptiveAvgPool2d):
                swapped.append((parent, name, child))
                setattr(parent, name, ExactAdaptiveAvgPool2d(child.output_size))
    try:
        yield [f"{len(swapped)} AdaptiveAvgPool2d as exact slice-and-mean bins"] if swapped else []
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
