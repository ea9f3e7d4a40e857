"""Training results -> one tidy row per training cell (results.csv's `workload = train` rows,
and the model-zoo table's Mem and train s/iter)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deploybench.report.table import BUSY_OTHER_CORES, KEY, mark, provenance_columns

TRAIN_COLUMNS = ["lr_schedule", "train_s_iter_median", "train_s_iter_ci95_low",
                 "train_s_iter_ci95_high", "train_rel_halfwidth", "train_data_s_median",
                 "train_compute_s_median", "train_images_per_s", "train_mem_mib",
                 "train_mem_kind", "train_iters", "train_other_cores", "train_busy",
                 "train_stopped", "train_window_s", "train_reference_ms", "train_losses_finite",
                 "train_optim_wrapper",
                 "train_weights", "config"]


def _figures(train: dict[str, Any]) -> dict[str, Any]:
    per_iter = train["s_per_iter"]
    other = (train.get("other_load") or {}).get("other_cores")
    memory = train["memory"]
    return {"batch": train["batch_size"], "lr_schedule": train["lr_schedule"],
            "train_s_iter_median": per_iter["median"],
            "train_s_iter_ci95_low": per_iter["ci95_low"],
            "train_s_iter_ci95_high": per_iter["ci95_high"],
            "train_rel_halfwidth": train["rel_halfwidth"],
            "train_data_s_median": train["data_s"]["median"],
            "train_compute_s_median": train["compute_s"]["median"],
            "train_images_per_s": train["images_per_s"], "train_mem_mib": memory["peak_mib"],
            "train_mem_kind": memory["kind"], "train_iters": train["iters"],
            # other processes' CPU during the window, as the latency cells' busy flag reads it
            "train_other_cores": other,
            "train_busy": other is not None and other > BUSY_OTHER_CORES,
            "train_stopped": train["stopped"], "train_window_s": train["window_s"],
            # the window's machine-speed index: its median reading of the reference kernel
            "train_reference_ms": float(np.median(train["reference_readings_ms"])),
            "train_losses_finite": train["losses_finite"],
            "train_optim_wrapper": train["optim_wrapper"], "train_weights": train["weights"]}


def train_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per training cell, in the records' order (a missing result says why)."""
    rows = []
    for result in records:
        if result["step"] != "train":
            continue
        cell = {"device": "cpu", "shape": "", **result["cell"]}
        row = {**{k: cell[k] for k in KEY if k != "resolution"}, "resolution": "",
               "status": "ok", "reason": "", "workload": "train",
               "config": (result.get("settings") or {}).get("config")}
        if result.get("missing"):
            mark(row, "failed", "train", result["reason"] or "no result (it or a step "
                 f"before it failed; see {result['logs']} and logs/fetch/)")
        else:
            provenance_columns(row, result)
            if result["status"] != "ok":
                mark(row, result["status"], "train", result["reason"])
            else:
                row.update(_figures(result["train"]))
        rows.append({k: v for k, v in row.items() if not k.startswith("_")})
    return pd.DataFrame(rows, columns=[*KEY, "status", "reason", "measured_at", "git_commit",
                                       "run", "remeasure", "workload", *TRAIN_COLUMNS])
