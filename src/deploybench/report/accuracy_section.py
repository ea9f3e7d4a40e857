"""The detail page's *Accuracy*: each cell's metric on the test split beside PyTorch fp32's, and
the gates' verdicts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.backends import PRECISIONS
from deploybench.metrics import METRICS
from deploybench.report.gates import reference_value
from deploybench.report.markdown import combo, md, num, origin, ran
from deploybench.report.published import published_table

TITLE = "Accuracy"




def _images(group: pd.DataFrame) -> str:
    """How many test images the metric is over: the whole split, or a subset of it."""
    scored = group.eval_images.dropna()
    if scored.empty:
        return ""
    count, split = int(scored.max()), group.split_images.dropna()
    if split.empty:
        return str(count)
    total = int(split.max())
    return f"{count} (all)" if count >= total else f"{count} of {total} (subset)"


def evaluated_data(frame: pd.DataFrame) -> list[str]:
    """Which test data each model was scored on (`results.csv`: dataset_sha256), so that rows
    from different data are never taken for the same."""
    lines = []
    for model, group in frame.dropna(subset=["dataset_sha256"]).groupby("model", sort=False):
        for digest in dict.fromkeys(group.dataset_sha256):
            lines.append(f"{model} `{digest[:12]}`")
    return [("Test data (sha256 of the annotation file and the image list): "
             + ", ".join(lines) + ".\n")] if lines else []


def _evaluated(row: Any) -> str:
    """When, by which commit and in which run the cell was evaluated, and where its latency
    comes from another run (a publish keeps each step's newest good result)."""
    where = origin(row.evaluated_at, row.evaluate_commit, row.evaluate_run)
    other = (isinstance(row.run, str) and row.run and isinstance(row.evaluate_run, str)
             and row.evaluate_run and row.run != row.evaluate_run)
    return where + (f"; latency from run {row.run}" if other else "")


def accuracy_table(frame: pd.DataFrame, gates: pd.DataFrame) -> str:
    """One row per model, input shape and metric; each backend's value and its delta vs PyTorch
    fp32 at that shape."""
    failed = {(g.model, g.resolution, g.backend, g.device, g.precision, g.metric)
              for g in gates.itertuples() if not g.passed}
    noise = {(g.model, g.resolution, g.backend, g.device, g.precision, g.metric)
             for g in gates.itertuples() if g.within_noise}
    rows = []
    for (model, shape), group in ran(frame).groupby(["model", "resolution"], sort=False):
        before = len(rows)
        for metric, spec in METRICS.items():
            if not spec.gated or group[metric].isna().all():
                continue
            ref, _ = reference_value(group, metric)
            line = {"Model": model, "Input": shape, "Images": _images(group),
                    "Metric": f"{metric} ({spec.note})"}
            fmt = spec.fmt
            for row in group.itertuples():
                value = getattr(row, metric)
                if pd.isna(value):
                    line[combo(row)] = row.status if row.status != "ok" else ""
                    continue
                delta = "" if pd.isna(ref) else f" ({value - ref:+{fmt}})"
                at = (model, shape, row.backend, row.device, row.precision, metric)
                mark = (" **outside gate**" if at in failed else
                        " (beyond gate, within noise)" if at in noise else "")
                empty = " (no detections)" if row.no_detections is True else ""
                line[combo(row)] = num(value, fmt) + empty + delta + mark
            rows.append(line)
        if len(rows) > before:
            rows.append({"Model": model, "Input": shape, "Images": "", "Metric": "evaluated",
                         **{combo(r): _evaluated(r) for r in group.itertuples()}})
    if not rows:
        return "No cell was evaluated.\n"
    return md(pd.DataFrame(rows).fillna(""))


def gates_table(gates: pd.DataFrame, tolerances: dict[str, dict[str, float]]) -> str:
    if not tolerances:
        return "No accuracy gates are configured.\n"
    limits = "; ".join(f"{m}: " + ", ".join(f"{p} {tol[p]:g}" for p in PRECISIONS if p in tol)
                       for m, tol in tolerances.items())
    intro = (f"Largest allowed drop vs PyTorch fp32 (config `gates`): {limits}. "
             "`deploybench report --strict` exits non-zero when a cell is outside.\n\n")
    if gates.empty:
        return intro + "No evaluated cell has a gated metric.\n"
    intro += ("A drop beyond its tolerance fails only where the low end of its 95 % interval "
              "(a paired bootstrap over the test images: the cell and PyTorch fp32 on the same "
              "resampled images, 1000 times) is beyond it too; otherwise it is within the "
              "metric's own noise on this split, and said so.\n\n")

    def named(g: Any) -> str:
        interval = ("" if g.drop_ci95 is None else
                    f" (95 % interval {g.drop_ci95[0]:.4g} to {g.drop_ci95[1]:.4g})")
        return (f"{g.model} {g.resolution} {g.backend} {g.precision} ({g.device}) {g.metric} "
                f"drop {g.drop:.4g}{interval} > {g.tolerance:g}")

    bad = gates[~gates.passed]
    noise = gates[gates.within_noise.astype(bool)]
    summary = f"{len(gates) - len(bad)} of {len(gates)} checks passed"
    if not noise.empty:
        summary += (f", {len(noise)} of them within the metric's noise only: "
                    + ", ".join(named(g) for g in noise.itertuples()))
    outside = [named(g) for g in bad.itertuples()]
    def signed(value: float, metric: str) -> str:
        text = format(value, METRICS[metric].drop_fmt)
        return text.replace("+0.0000", "0").replace("-0.0000", "0").replace(
            "+0.00", "0").replace("-0.00", "0") if abs(value) < 5e-5 else text

    rows = [{"Model": g.model, "Input": g.resolution, "Cell": combo(g), "Metric": g.metric,
             "drop": signed(g.drop, g.metric),
             "95 % interval": ("" if g.drop_ci95 is None else
                               f"{signed(g.drop_ci95[0], g.metric)} to "
                               f"{signed(g.drop_ci95[1], g.metric)}"),
             "tolerance": f"{g.tolerance:g}",
             "verdict": ("outside" if not g.passed else
                         "within noise" if g.within_noise else "passed")}
            for g in gates.itertuples()]
    return (intro + summary + (f"; outside: {', '.join(outside)}." if outside else ".")
            + "\n\n" + md(pd.DataFrame(rows)))


def section(frame: pd.DataFrame, gates: pd.DataFrame,
            tolerances: dict[str, dict[str, float]], published: pd.DataFrame) -> list[str]:
    """The accuracy table, the data it is over, the gates and the published figures."""
    return [
        f"## {TITLE}\n",
        "The test split (*Images*: all of it, or the first N with `evaluate.limit`, scored on "
        "those N alone) through the model's own test pipeline, the backend's network, the "
        "model's own post-processing (`predict_by_feat` / `postprocess_result`) and metric "
        "(mmdet `CocoMetric`, mmseg `IoUMetric`). In brackets: the difference to PyTorch fp32 "
        "in this same environment. *no detections*: every prediction was below the model's "
        "score threshold; the metric is 0. *evaluated*: when, by which commit and in which "
        "run each cell's accuracy was measured, and the latency's run where it differs.\n",
        accuracy_table(frame, gates),
        *evaluated_data(frame),
        "### Accuracy gates\n",
        gates_table(gates, tolerances),
        *published_table(published),
    ]
