"""Which rounds of a measure group ran on the machine in its quiet state.

A shared VM passes through states lasting seconds in which its other tenants slow it, and they
slow backends unequally: in one RTMDet-tiny window here ONNX Runtime fp32 ran 49 % slower for
15 s, OpenVINO int8 53 %, PyTorch 23 %; in one Fast-SCNN window two thirds of the rounds ran in
such a state (ONNX Runtime fp32 +58 %, OpenVINO int8 +73 %, PyTorch +34 %). A speed-up then
depends on how much of its window the machine spent in which state, which the next run does not
repeat. A dedicated machine of the same kind runs in the quiet state throughout, so the group's
speed-ups and medians are taken over the rounds in which it was quiet.

A round's *slowdown* is the geometric mean, over the cells that ran in it, of each cell's slice
median over that cell's quiet level (the 10th percentile of its slice medians in the window):
every cell of the group reads the machine, so one cell's own scatter barely moves it. A round is
quiet when its slowdown is within `tolerance` of the quiet level. Every round's slowdown is kept
with the results.

The level needs a tenth of the window quiet. On windows with a quarter or more quiet, the 10th
percentile and the lower quartile gave the same speed-ups here (to 0.3 %); on a window the
machine spent mostly disturbed (RTMDet-tiny, a third of its rounds near 1.0, the rest 1.1-1.7),
the lower quartile fell inside the disturbed rounds and put ONNX Runtime fp32 at x6.11 against
x5.49-5.55 in quiet runs, the 10th percentile at x5.73. A window with no quiet rounds at all has
no level to find; its reference kernel and the *busy machine* flag show it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEVEL_QUANTILE = 0.10


def slowdowns(medians: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Each round's slowdown (1.0: the quiet level), from every cell's per-round slice medians
    (None where a cell did not run); None for a round no cell ran in."""
    levels = []
    for cell in medians:
        values = [m for m in cell if m]
        levels.append(float(np.quantile(values, LEVEL_QUANTILE)) if values else None)
    out: list[float | None] = []
    for i in range(max((len(c) for c in medians), default=0)):
        logs = [np.log(c[i] / level) for c, level in zip(medians, levels, strict=True)
                if level and i < len(c) and c[i]]
        out.append(float(np.exp(np.mean(logs))) if logs else None)
    return out


def quiet_rounds(medians: Sequence[Sequence[float | None]], tolerance: float) -> list[bool]:
    """Whether each round ran in the quiet state: its slowdown within `tolerance` (0.10: 10 %).
    A tolerance of 0 or less takes every round."""
    slow = slowdowns(medians)
    if tolerance <= 0:
        return [s is not None for s in slow]
    return [s is not None and s <= 1 + tolerance for s in slow]
