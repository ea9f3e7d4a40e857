"""The detail page's *Builds* and *Cells that did not run*: how each artifact was made, and what
has no numbers (or kept its last good ones) and why."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.report.markdown import md, num

TITLE = "Builds"
PROBLEMS_TITLE = "Cells that did not run"


def _export_how(r: dict[str, Any]) -> str:
    """How a model was exported; a dynamic batch axis is said, as every batch (1 too) of that
    model then runs the one graph, where a batch-1-only model runs a fully static one."""
    if r["status"] != "ok":
        return r.get("reason", "")
    how = f"{r.get('exporter', 'torch.onnx.export')}, opset {r.get('opset')}, "
    how += (f"dynamic batch axis (one graph for batches 1 to {r['dynamic_batch']})"
            if r.get("dynamic_batch") else "static shape")
    rewrites = r.get("rewrites") or []
    return how + (f"; rewrites: {', '.join(rewrites)}" if rewrites else "")


def builds_table(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in sorted(records, key=lambda r: r["step"] != "export"):  # exports first
        if r["step"] not in ("export", "build"):
            continue
        c = r["cell"]
        if r["step"] == "export":
            rows.append({"Model": c["model"], "Input": c.get("shape", ""), "Backend": "ONNX export",
                         "Device": "", "Precision": c["precision"], "Status": r["status"],
                         "Seconds": num(r.get("seconds"), ".1f"),
                         "How": _export_how(r).replace("|", "\\|")})
            continue
        calibration = r.get("calibration") or {}
        how = r.get("quantizer") or r.get("converter") or r.get("builder") or ""
        if r.get("variant"):
            how += f" ({r['variant']})"
        if calibration:
            split = calibration.get("split", "train")
            how += f", {calibration['method']} on {calibration['images']} {split} images"
            if split == "test":
                how += " (the test split: its accuracy is measured on images it was calibrated on)"
        heads = r.get("head_graphs") or {}
        if heads:  # a two-stage detector's RoI heads, built with the first graph
            rois = [str(h["calibration"]["rois"]) for h in heads.values() if "calibration" in h]
            how += f"; RoI head graphs too ({', '.join(heads)}" + (
                f", calibrated on {' / '.join(rois)} of their RoIs" if rois else "") + ")"
        rows.append({"Model": c["model"], "Input": c.get("shape", ""), "Backend": c["backend"],
                     "Device": c.get("device", "cpu"), "Precision": c["precision"],
                     "Status": r["status"], "Seconds": num(r.get("seconds"), ".1f"),
                     "How": how or r.get("reason", "").replace("|", "\\|")})
    return md(pd.DataFrame(rows)) if rows else "No builds.\n"


def problems_table(frame: pd.DataFrame) -> str:
    """Cells without numbers, and cells whose latest re-measurement failed: those keep their
    last good numbers in the tables above, measured when the *measured* column says."""
    kept = frame.remeasure.notna() & (frame.remeasure != "")
    bad = frame[(frame.status != "ok") | kept]
    if bad.empty:
        return "Every cell ran.\n"
    rows = [{"Model": r.model, "Input": r.resolution, "Backend": r.backend, "Device": r.device,
             "Precision": r.precision,
             "Status": r.status if r.status != "ok" else "last good numbers kept",
             "Reason": (r.reason if r.status != "ok" else f"re-measurement {r.remeasure}")
             .replace("\n", " ").replace("|", "\\|")}
            for r in bad.itertuples()]
    return md(pd.DataFrame(rows))


def section(frame: pd.DataFrame, records: list[dict[str, Any]]) -> list[str]:
    """The builds, then the cells that did not run."""
    return [
        f"## {TITLE}\n",
        "The ONNX export of each model and input shape, and the artifacts made from it for the "
        "cells that run them.\n",
        builds_table(records),
        f"## {PROBLEMS_TITLE}\n",
        problems_table(frame),
    ]
