"""Result files -> one tidy row per cell (the columns of reports/<profile>/results.csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from deploybench.results import load_result

KEY = ["model", "task", "backend", "device", "precision", "batch"]
LATENCY = ["median", "mean", "p90", "p95", "p99", "std", "min", "max"]
METRICS = ["bbox_mAP", "bbox_mAP_50", "segm_mAP", "mIoU", "aAcc", "mAcc"]
PARITY = ["parity_images", "parity_max_abs", "parity_max_rel", "parity_min_cosine",
          "parity_worst_output", "boxes_matched", "mean_score_diff", "pixel_agreement"]
COLUMNS = [*KEY, "input", "status", "reason", *(f"latency_ms_{s}" for s in LATENCY), "latency_cov",
           "fps", "latency_samples", "first_call_s", "eval_images", *METRICS, *PARITY]


def _step_of(path: str) -> str:
    parts = Path(path).parts
    return next((p for p in reversed(parts) if p in ("export", "build", "measure", "evaluate")), "")


def _cell_from_path(path: str) -> dict[str, Any]:
    """Identity of a cell whose step never ran, read back from its result path."""
    backend, precision, batch = Path(path).stem.rsplit("-", 2)
    return {"model": Path(path).parent.parent.name, "task": "", "backend": backend,
            "device": Path(path).parent.name, "precision": precision,
            "batch": int(batch.removeprefix("b"))}


def load_results(paths: list[str]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """(one row per cell, every record read). A missing result is a row that says why."""
    records: list[dict[str, Any]] = []
    rows: dict[tuple, dict[str, Any]] = {}
    upstream: dict[Any, str] = {}  # model (export) or cell key (build) -> why it failed
    for path in paths:
        result = load_result(path)
        step = result["step"] if result else _step_of(path)
        if step in ("export", "build"):
            if result and result["status"] == "failed":
                c = result["cell"]
                key = (c["model"] if step == "export" else
                       (c["model"], c["backend"], c.get("device", "cpu"), c["precision"]))
                upstream[key] = f"{step} failed: {result['reason']}"
            if result:
                records.append(result)
            continue
        cell = {"device": "cpu", **(result["cell"] if result else _cell_from_path(path))}
        key = tuple(cell[k] for k in KEY if k != "task")  # a cell that never ran has no task
        row = rows.setdefault(key, {**{k: cell[k] for k in KEY}, "status": "ok", "reason": ""})
        row["task"] = row["task"] or cell["task"]
        if result is None:
            why = upstream.get((cell["model"], cell["backend"], cell["device"], cell["precision"])
                               ) or upstream.get(
                cell["model"], f"it or a step before it failed; see logs/{step}/{cell['model']}/ "
                "and logs/fetch/")
            _mark(row, "failed", step, f"no result ({why})")
            continue
        records.append(result)
        if result["status"] != "ok":
            _mark(row, result["status"], step, result["reason"])
        elif step == "measure":
            row.update({f"latency_ms_{s}": result["latency_ms"][s] for s in LATENCY})
            row.update(input="x".join(map(str, result["input_shape"])),
                       latency_cov=result["latency_ms"]["cov"], fps=result["fps"],
                       latency_samples=result["latency_ms"]["count"],
                       first_call_s=result.get("first_call_seconds"))
        elif step == "evaluate":
            row["eval_images"] = result["num_images"]
            row.update({m: v for m, v in result["metrics"].items() if m in METRICS})
            row.update(_parity_columns(result.get("parity")))
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    return frame, records


def _mark(row: dict[str, Any], status: str, step: str, reason: str) -> None:
    # failed outranks skipped outranks ok; every distinct reason is kept, with its steps.
    rank = {"ok": 0, "skipped": 1, "failed": 2}
    if rank[status] > rank[row["status"]]:
        row["status"] = status
    why = row.setdefault("_why", {})
    why.setdefault(reason, []).append(step)
    row["reason"] = "; ".join(f"{', '.join(steps)}: {r}" for r, steps in why.items())


def _parity_columns(parity: dict[str, Any] | None) -> dict[str, Any]:
    if not parity:
        return {}
    outputs = parity["outputs"]
    worst = max(outputs, key=lambda o: o["max_rel"]) if outputs else None
    return {"parity_images": parity["images"],
            "parity_max_abs": max((o["max_abs"] for o in outputs), default=None),
            "parity_max_rel": worst["max_rel"] if worst else None,
            "parity_min_cosine": min((o["cosine"] for o in outputs), default=None),
            "parity_worst_output": worst["output"] if worst else None,
            **{k: parity[k] for k in ("boxes_matched", "mean_score_diff", "pixel_agreement")
               if k in parity}}
