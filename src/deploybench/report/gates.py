"""Accuracy gates: each evaluated cell's drop against PyTorch fp32 at the same input shape,
and whether it is within the configured tolerance or the metric's own noise."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.measure.group import REFERENCE
from deploybench.metrics import gated

GATED = tuple(gated())


def reference_row(group: pd.DataFrame, metric: str) -> Any:
    """PyTorch fp32 on the CPU; on the GPU where the matrix has no CPU cells; else None."""
    ref = group[(group.backend == REFERENCE[0]) & (group.precision == REFERENCE[1])
                & group[metric].notna()].sort_values("device", key=lambda d: d != "cpu")
    return None if ref.empty else ref.iloc[0]


def reference_value(group: pd.DataFrame, metric: str) -> tuple[float, str]:
    """(the reference's value, its device)."""
    ref = reference_row(group, metric)
    return (float("nan"), "") if ref is None else (ref[metric], ref.device)


def _evaluated_in(row: Any) -> Any:
    """The run that evaluated the row (its run, in frames from before the two were apart)."""
    return getattr(row, "evaluate_run", getattr(row, "run", None))


def _drop_interval(row: Any, metric: str, reference: Any) -> tuple[float, float] | None:
    """The drop's bootstrap interval, where the cell and the reference were evaluated in the
    same run (the interval was drawn against that reference)."""
    low = getattr(row, f"{metric}_drop_ci95_low", None)
    high = getattr(row, f"{metric}_drop_ci95_high", None)
    if low is None or pd.isna(low) or pd.isna(high) or reference is None \
            or _evaluated_in(reference) != _evaluated_in(row):
        return None
    return float(low), float(high)


def gate_results(frame: pd.DataFrame, gates: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per evaluated cell and gated metric: its drop vs PyTorch fp32 at the same input
    shape, and the verdict."""
    rows = []
    for _, group in frame.groupby(["model", "resolution"], sort=False):
        for metric, tolerances in gates.items():
            if metric not in group or group[metric].isna().all():
                continue
            reference = reference_row(group, metric)
            ref, ref_device = reference_value(group, metric)
            for r in group.itertuples():
                value, tol = getattr(r, metric), tolerances.get(r.precision)
                if pd.isna(value) or pd.isna(ref) or tol is None:
                    continue
                if (r.backend, r.precision, r.device) == (*REFERENCE, ref_device):
                    continue  # the reference itself: a check that cannot fail
                drop = ref - value
                interval = _drop_interval(r, metric, reference)
                beyond = drop > tol + 1e-9
                # Outside only where even the interval's low end is beyond the tolerance:
                # a drop that one image's difference can make is the metric's noise.
                noise = beyond and interval is not None and interval[0] <= tol + 1e-9
                rows.append({"model": r.model, "resolution": r.resolution, "backend": r.backend,
                             "device": r.device, "precision": r.precision, "metric": metric,
                             "value": value, "drop": drop, "tolerance": tol,
                             "drop_ci95": interval, "within_noise": noise,
                             "passed": not beyond or noise})
    return pd.DataFrame(rows, columns=["model", "resolution", "backend", "device", "precision",
                                       "metric", "value", "drop", "tolerance", "drop_ci95",
                                       "within_noise", "passed"])


def gate_of(gates: pd.DataFrame, row: Any) -> Any:
    """The cell's verdict over its gated metrics: True, False, or empty where none applies."""
    mine = gates[(gates.model == row.model) & (gates.resolution == row.resolution)
                 & (gates.backend == row.backend)
                 & (gates.device == row.device) & (gates.precision == row.precision)]
    return bool(mine.passed.all()) if not mine.empty else None
