"""The published metric (the model zoo's, from its metafile, or the config's `published`) beside
the measured PyTorch fp32 one, with a gate on their difference.

The check applies only where the measurement can equal the publication: the whole test split.
A subset is shown and said, but not gated on."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.metrics import published

PUBLISHED_METRICS = tuple(published())
COLUMNS = tuple(f"published_{m}" for m in PUBLISHED_METRICS)  # results.csv
REFERENCE = ("pytorch", "fp32")


def published_checks(frame: pd.DataFrame, gates: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per model, input shape and published metric."""
    rows = []
    for (model, shape), group in frame.groupby(["model", "resolution"], sort=False):
        reference = group[(group.backend == REFERENCE[0]) & (group.precision == REFERENCE[1])
                          & group.eval_images.notna()]
        for metric in PUBLISHED_METRICS:
            values = group[f"published_{metric}"].dropna()
            if values.empty:
                continue
            tolerance = (gates.get(metric) or {}).get("published")
            row = {"model": model, "resolution": shape, "metric": metric,
                   "published": float(values.iloc[0]), "measured": None, "difference": None,
                   "tolerance": tolerance, "verdict": "not measured", "passed": True}
            measured = reference[reference[metric].notna()]
            if not measured.empty:
                r = measured.iloc[0]
                row.update(measured=float(r[metric]),
                           difference=float(r[metric]) - row["published"])
                if r.eval_images < r.split_images:
                    row["verdict"] = f"not checked: a subset ({int(r.eval_images)} images)"
                elif tolerance is None:
                    row["verdict"] = f"not checked: no gates.{metric}.published"
                else:
                    row["passed"] = abs(row["difference"]) <= tolerance + 1e-9
                    row["verdict"] = "passed" if row["passed"] else "outside"
            rows.append(row)
    return pd.DataFrame(rows, columns=["model", "resolution", "metric", "published", "measured",
                                       "difference", "tolerance", "verdict", "passed"])


def published_table(checks: pd.DataFrame) -> list[str]:
    """The docs' section, or nothing where no model has a published metric."""
    if checks.empty:
        return []

    def number(value: Any) -> str:
        return "" if value is None or pd.isna(value) else f"{value:.4g}"

    rows = [f"| {c.model} | {c.resolution} | {c.metric} | {number(c.published)} | "
            f"{number(c.measured)} | {number(c.difference)} | {number(c.tolerance)} | "
            f"{c.verdict} |" for c in checks.itertuples()]
    return ["### Published against measured\n",
            "The published metric (the model zoo's metafile, or the config's `published`) and "
            "PyTorch fp32 measured here; the gate `gates.<metric>.published` bounds their "
            "difference, on the whole test split only.\n",
            "\n".join(["| Model | Input | Metric | published | PyTorch fp32 | difference | "
                       "tolerance | verdict |", "|:--|:--|:--|--:|--:|--:|--:|:--|", *rows])
            + "\n"]
