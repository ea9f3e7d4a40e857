"""Result files -> one tidy row per cell (the columns of reports/<profile>/results.csv)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deploybench.measure.stats import latency_stats, relative_halfwidth, repeats_median_ci95
from deploybench.metrics import METRICS as METRIC_SPECS
from deploybench.metrics import bootstrapped
from deploybench.report.published import COLUMNS as PUBLISHED
from deploybench.results import load_result

# resolution: the cell's input shape "HxW" ("shape" would shadow DataFrame.shape)
KEY = ["model", "task", "resolution", "backend", "device", "precision", "batch"]
LATENCY = ["median", "mean", "p90", "p95", "p99", "std", "min", "max"]
METRICS = list(METRIC_SPECS)
# The paired bootstrap's 95 % interval of the drop vs PyTorch fp32 (report/drop_intervals.py)
DROP_CI = [f"{m}_drop_ci95_{end}" for m in bootstrapped() for end in ("low", "high")]
PARITY = ["parity_images", "parity_max_abs", "parity_max_rel", "parity_min_cosine",
          "parity_worst_output", "boxes_matched", "cell_boxes_matched", "reference_boxes",
          "cell_boxes", "mean_score_diff", "mean_mask_iou",
          "pixel_agreement"]
STAGES = ["decode", "preprocess", "to_device", "network", "to_host", "proposals", "roi_bbox",
          "roi_mask", "mask_post", "postprocess"]  # the RoI stages: two-stage detectors only
MEASURE_EXTRA = ["latency_ms_median_ci95_low", "latency_ms_median_ci95_high", "first_call_s",
                 *(f"stage_{s}_ms" for s in STAGES), "e2e_ms_median", "e2e_ms_p90", "e2e_cov",
                 "inf_fps_overall", "inf_fps_forward_post",
                 "tensor_preprocess_ms", "tensor_e2e_ms_median",
                 "peak_rss_mib", "gpu_memory_mib", "loadavg_before", "loadavg_after",
                 "cpu_governor", "gpu_throttled", "repeats", "repeat_spread",
                 "speedup", "speedup_ci95_low", "speedup_ci95_high", "speedup_vs", "rounds",
                 "quiet_rounds", "slices", "slice_calls", "group_stopped", "group_window_s",
                 "idle_cores",
                 "ci_rel_halfwidth", "reference_ms", "reference_ms_min", "reference_ms_max",
                 "other_cores_max",
                 "steal_cores_max", "busy", "unstable"]
# measured_at, git_commit, run: the latency's (measure) where the row has one; the accuracy's
# evaluate_*: a publish keeps each step's newest good result, so the two can differ.
ORIGIN = ["measured_at", "git_commit", "run", "evaluated_at", "evaluate_commit", "evaluate_run"]
COLUMNS = [*KEY, "input", "status", "reason", *ORIGIN, "remeasure",
           "checkpoint_sha256", "artifact_sha256",
           *(f"latency_ms_{s}" for s in LATENCY), "latency_cov",
           "fps", "latency_samples", *MEASURE_EXTRA, "eval_images", "split_images",
           "dataset_sha256", "no_detections", *METRICS, *PUBLISHED, *DROP_CI, *PARITY]


def step_of(path: str) -> str:
    parts = Path(path).parts
    return next((p for p in reversed(parts)
                 if p in ("export", "build", "measure", "evaluate", "train")), "")


def _cell_from_path(path: str) -> dict[str, Any]:
    """Identity of a cell whose step never ran, read back from its result path."""
    stem = re.sub(r"-r[0-9]+$", "", Path(path).stem)  # measure results carry their repeat
    backend, precision, batch = stem.rsplit("-", 2)
    device_dir = Path(path).parent  # <step>/<model>/<shape>/<device>/<cell>.json
    return {"model": device_dir.parent.parent.name, "task": "", "shape": device_dir.parent.name,
            "backend": backend, "device": device_dir.name, "precision": precision,
            "batch": int(batch.removeprefix("b"))}


def _train_cell_from_path(path: str) -> dict[str, Any]:
    """A training cell's identity from results/.../train/<model>/<device>/<precision>.json
    (its batch: 0, the config's own, as the plan names it when no batch size is set)."""
    parts = Path(path).parts
    return {"model": parts[-3], "task": "", "shape": "", "backend": "pytorch",
            "device": parts[-2], "precision": Path(path).stem, "batch": 0}


def _logs_of(path: str) -> str:
    """Where the logs of a missing result's step are: results/<profile>/<run>/<step>/<model>/
    ... has its logs in logs/<profile>/<run>/<step>/<model>/."""
    parts = Path(path).parts
    at = len(parts) - 1 - parts[::-1].index(step_of(path))
    run = parts[at - 3: at] if at >= 3 and parts[at - 3] == "results" else ()
    return str(Path("logs", *run[1:], parts[at], parts[at + 1])) + "/"


def read_records(paths: list[str]) -> list[dict[str, Any]]:
    """The records at `paths`, in order. A cell's result that is missing (the step never ran, or
    a step before it failed) becomes a failed record marked `missing`, its cell read from the
    path and its reason the failed export's or build's own, so that publishing keeps it; a
    missing export or build shows through the cells that needed it."""
    records = []
    for path in paths:
        result = load_result(path)
        if result is not None:
            records.append(result)
        elif step_of(path) in ("measure", "evaluate", "train"):
            cell = (_train_cell_from_path if step_of(path) == "train" else _cell_from_path)(path)
            records.append({"step": step_of(path), "cell": cell,
                            "status": "failed", "reason": "", "missing": True, "settings": {},
                            "logs": _logs_of(path)})
    upstream = _upstream_failures(records)
    for r in records:
        if r.get("missing") and not r["reason"]:
            r["reason"] = _why_missing(r, upstream)
    return records


def _upstream_failures(records: list[dict[str, Any]]) -> dict[tuple, str]:
    """(model, shape) of a failed export, (model, shape, backend, device, precision) of a
    failed build -> why it failed."""
    upstream = {}
    for r in records:
        if r["step"] in ("export", "build") and r["status"] == "failed":
            c = {"device": "cpu", "shape": "", **r["cell"]}
            key = ((c["model"], c["shape"]) if r["step"] == "export" else
                   (c["model"], c["shape"], c["backend"], c["device"], c["precision"]))
            upstream[key] = f"{r['step']} failed: {r['reason']}"
    return upstream


def _why_missing(record: dict[str, Any], upstream: dict[tuple, str]) -> str:
    c = {"device": "cpu", "shape": "", **record["cell"]}
    why = upstream.get((c["model"], c["shape"], c["backend"], c["device"], c["precision"])) \
        or upstream.get((c["model"], c["shape"]),
                        f"it or a step before it failed; see {record['logs']} and logs/fetch/")
    return f"no result ({why})"


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """One record per line, keys sorted: the published store that later runs merge into."""
    from deploybench.atomic import write_text

    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_records_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_results(paths: list[str]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    records = read_records(paths)
    return frame_of(records), records


def frame_of(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell. A missing result is a row that says why."""
    rows: dict[tuple, dict[str, Any]] = {}
    upstream = _upstream_failures(records)  # for records published before reasons were kept
    for result in records:
        step = result["step"]
        if step in ("train", "export", "build"):  # training: rows of its own (train_table.py)
            continue
        cell = {"device": "cpu", "shape": "", **result["cell"]}
        cell["resolution"] = cell.pop("shape")
        key = tuple(cell[k] for k in KEY if k != "task")  # a cell that never ran has no task
        row = rows.setdefault(key, {**{k: cell[k] for k in KEY}, "status": "ok", "reason": ""})
        row["task"] = row["task"] or cell["task"]
        if result.get("missing"):
            mark(row, "failed", step, result["reason"] or _why_missing(result, upstream))
            continue
        provenance_columns(row, result)
        if result["status"] != "ok":
            mark(row, result["status"], step, result["reason"])
        elif step == "measure":
            row.setdefault("_repeats", []).append(result)
            if "flags" in result:
                row["_flags"] = result["flags"]
        elif step == "evaluate":
            row["eval_images"] = result["num_images"]
            row["split_images"] = result.get("split_images")
            row["dataset_sha256"] = (result.get("dataset") or {}).get("sha256")
            row.update({f"published_{m}": v for m, v in (result.get("published") or {}).items()
                        if f"published_{m}" in PUBLISHED})
            row["no_detections"] = result.get("no_detections")
            row.update({m: v for m, v in result["metrics"].items() if m in METRICS})
            for metric, (low, high) in (result.get("metric_drop_ci95") or {}).items():
                row[f"{metric}_drop_ci95_low"], row[f"{metric}_drop_ci95_high"] = low, high
            row.update(_parity_columns(result.get("parity")))
    tasks = {row["model"]: row["task"] for row in rows.values() if row["task"]}
    for row in rows.values():
        row["task"] = row["task"] or tasks.get(row["model"], "")  # a cell that never ran
        if row.get("_repeats") and row["status"] == "ok":
            row.update(_pooled(row["_repeats"], row["batch"]))
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    # A measurement's flags are its run's verdict, stored with it (stamp_flags): a later
    # publish, whose merged rows have another median, never recomputes them.
    stored = [row.get("_flags") for row in rows.values()]
    for flag, computed in (("busy", _busy(frame)), ("unstable", _unstable(frame))):
        frame[flag] = pd.Series([_plain(computed.iloc[i]) if f is None else f[flag]
                                 for i, f in enumerate(stored)], dtype=object)
    return frame


def stamp_flags(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` with each good measure result carrying its row's busy and unstable flags, as
    judged within its own records (a run's, or the published ones before a merge); a result
    that carries flags keeps them."""
    return with_flags(records, frame_of(records))


def with_flags(records: list[dict[str, Any]], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """As `stamp_flags`, with `frame` already made from `records`."""
    flags = {_row_key(r): {"busy": _plain(r.busy), "unstable": _plain(r.unstable)}
             for r in frame.itertuples()}
    return [{**r, "flags": flags[_row_key(r["cell"])]}
            if r["step"] == "measure" and r["status"] == "ok" and "flags" not in r
            and not r.get("missing") else r for r in records]


def _row_key(cell: Any) -> tuple:
    """A table row's identity, from a record's cell or from a frame row."""
    if isinstance(cell, dict):
        c = {"device": "cpu", "shape": "", **cell}
        return (c["model"], c["shape"], c["backend"], c["device"], c["precision"], c["batch"])
    return (cell.model, cell.resolution, cell.backend, cell.device, cell.precision, cell.batch)


def _plain(value: Any) -> bool | None:
    return None if value is None or pd.isna(value) else bool(value)


UNSTABLE = 0.05  # a median not known to +-5 % cannot be told from one 10 % away
UNSTABLE_VS_TYPICAL = 1.5  # ... and on a noisy machine: half as wide again as its typical cell


def _unstable(frame: pd.DataFrame) -> pd.Series:
    """A cell whose median is known less well than 5 % and than the run's typical cell: on a
    quiet machine the 5 % bound decides; on a noisy one, where every interval is wider, the
    typical width is the table's resolution (stated at the top) and the flag marks the cells
    well beyond it."""
    typical = frame.groupby("run", dropna=False).ci_rel_halfwidth.transform("median")
    bound = (UNSTABLE_VS_TYPICAL * typical).clip(lower=UNSTABLE)
    return (frame.ci_rel_halfwidth > bound).where(frame.ci_rel_halfwidth.notna())


# Snakemake itself and the kernel's own threads took 0.0-0.26 cores during the windows of a
# run with nothing else on the machine (2-core VM): other work starts well above that.
BUSY_OTHER_CORES = 0.5  # other processes' CPU time during a window, in cores
# The kernel's readings varied by about 10 % (CoV) on that quiet VM: a slowdown the machine
# itself suffered (a noisy neighbour, clock changes) stands out above 25 %.
BUSY_REFERENCE = 1.25  # the reference kernel this much slower than the run's typical


def _busy(frame: pd.DataFrame) -> pd.Series:
    """A cell measured while the machine did other work or ran slow: other processes took half
    a core or more during one of its timed windows, or the reference kernel around one of its
    windows ran 25 % slower than the median cell of its run."""
    typical = frame.groupby("run", dropna=False).reference_ms.transform("median")
    slow = frame.reference_ms > BUSY_REFERENCE * typical
    return ((frame.other_cores_max > BUSY_OTHER_CORES) | slow).where(
        frame.reference_ms.notna() | frame.other_cores_max.notna())


def provenance_columns(row: dict[str, Any], result: dict[str, Any]) -> None:
    """When, by which commit and in which run the row's numbers were made: the latency's
    (measure's) as the row's own, or the newest result's where it has no measure result; the
    accuracy's (evaluate's) beside it. And a failed re-measurement whose last good numbers the
    published docs kept (report/publish.py)."""
    prov = result.get("provenance") or {}
    created, commit = prov.get("created", ""), prov.get("git_commit", "")
    run = result.get("run", "")
    if result["step"] == "evaluate":
        row.update(evaluated_at=created, evaluate_commit=commit, evaluate_run=run)
    rank = (result["step"] == "measure", created)
    if rank >= row.get("_origin", (False, "")):
        row["_origin"] = rank
        used = prov.get("files_sha256") or {}
        row.update(measured_at=created, git_commit=commit, run=run,
                   checkpoint_sha256=used.get("checkpoint"),
                   artifact_sha256=used.get("artifact"))
    if result.get("remeasured"):
        again = result["remeasured"]
        row["remeasure"] = (f"{again['status']} on {again['created'][:10] or 'a later run'} "
                            f"(run {again['run']}): {again['reason']}")


def _pooled(repeats: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """A cell's latency: its measure group's record (older results: statistics of the
    samples pooled over its repeats, and how far the repeats' own medians lie apart)."""
    samples = [ms for r in repeats for ms in r["samples_ms"]]
    stats = latency_stats(samples, batch)
    first = repeats[0]
    if len(repeats) == 1 and "rounds_ms" in first:  # a measure group's interval, over rounds
        low, high = first["latency_ms"]["median_ci95_low"], first["latency_ms"]["median_ci95_high"]
    else:
        low, high = repeats_median_ci95([r["samples_ms"] for r in repeats])
    medians = [r["latency_ms"]["median"] for r in repeats]
    states = [r.get("machine_state") or {} for r in repeats]
    references = [v for s in states for v in (s.get("reference_ms") or {}).values()
                  if v is not None]
    # Each window's best reading of the kernel (before or after it); the cell's is its
    # slowest window's: one window on a slow machine is enough to distort the cell.
    readings = [min(v for v in s["reference_ms"].values() if v is not None) for s in states
                if any(v is not None for v in (s.get("reference_ms") or {}).values())]
    others = [s["other_load"] for s in states if s.get("other_load")]
    return {**{f"latency_ms_{s}": stats[s] for s in LATENCY},
            "input": "x".join(map(str, first["input_shape"])), "latency_cov": stats["cov"],
            "fps": stats["fps"], "latency_samples": stats["count"],
            "first_call_s": first.get("first_call_seconds"),
            **_measure_extras(first), **_group_columns(first),
            "latency_ms_median_ci95_low": low, "latency_ms_median_ci95_high": high,
            "ci_rel_halfwidth": (high - low) / 2 / stats["median"],
            "reference_ms": max(readings, default=None),
            "reference_ms_min": min(references, default=None),
            "reference_ms_max": max(references, default=None),
            "other_cores_max": max((o["other_cores"] for o in others), default=None),
            "steal_cores_max": max((o["steal_cores"] for o in others), default=None),
            "repeats": len(repeats),
            "repeat_spread": (max(medians) - min(medians)) / float(np.median(medians))}


def _group_columns(result: dict[str, Any]) -> dict[str, Any]:
    """The measure group's figures for its cell: the speed-up over the group's reference with
    its interval, the rounds and slices that ran and why they stopped, and the CPU the cell's
    worker took while it waited (absent in results from before groups)."""
    group = result.get("group")
    if not group:
        return {}
    speedup = result.get("speedup") or {}
    idle = result.get("idle") or {}
    return {"speedup": speedup.get("estimate"), "speedup_ci95_low": speedup.get("ci95_low"),
            "speedup_ci95_high": speedup.get("ci95_high"), "speedup_vs": speedup.get("vs"),
            "rounds": group.get("cell_rounds", group["rounds"]),
            "quiet_rounds": group.get("cell_quiet_rounds"), "slices": group["slices"],
            "slice_calls": group.get("slice_calls"), "group_stopped": group["stopped"],
            "group_window_s": group["window_s"], "idle_cores": idle.get("cores")}


def speedup_halfwidth(row: Any) -> float:
    """The speed-up's 95 % interval's half-width, relative (NaN without one)."""
    if pd.isna(getattr(row, "speedup_ci95_low", float("nan"))):
        return float("nan")
    return relative_halfwidth(row.speedup_ci95_low, row.speedup_ci95_high, row.speedup)


def mark(row: dict[str, Any], status: str, step: str, reason: str) -> None:
    # failed outranks skipped outranks ok; every distinct reason is kept, with its steps.
    rank = {"ok": 0, "skipped": 1, "failed": 2}
    if rank[status] > rank[row["status"]]:
        row["status"] = status
    why = row.setdefault("_why", {})
    steps = why.setdefault(reason, [])
    if step not in steps:
        steps.append(step)
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
            **{k: parity[k] for k in ("boxes_matched", "cell_boxes_matched", "reference_boxes",
                                      "cell_boxes", "mean_score_diff", "mean_mask_iou",
                                      "pixel_agreement") if k in parity}}


def _measure_extras(result: dict[str, Any]) -> dict[str, Any]:
    """Stages, memory and machine state of one measure result (absent in older results)."""
    row: dict[str, Any] = {}
    stages = result.get("stages") or {}
    reference, tensor = stages.get("reference"), stages.get("tensor")
    if reference:
        row.update({f"stage_{s}_ms": reference["stages_ms"][s]["median"] for s in STAGES
                    if s in reference["stages_ms"]})
        e2e = reference["end_to_end_ms"]
        row.update(e2e_ms_median=e2e["median"], e2e_ms_p90=e2e["p90"], e2e_cov=e2e["cov"],
                   inf_fps_overall=1000 / e2e["median"])
        if reference.get("forward_post_ms"):  # absent in older results
            row["inf_fps_forward_post"] = 1000 / reference["forward_post_ms"]["median"]
    if tensor and "skipped" not in tensor:
        row.update(tensor_preprocess_ms=tensor["stages_ms"]["preprocess"]["median"],
                   tensor_e2e_ms_median=tensor["end_to_end_ms"]["median"])
    memory = result.get("memory") or {}
    row["peak_rss_mib"] = memory.get("peak_rss_mib")
    row["gpu_memory_mib"] = (memory.get("torch_cuda_max_allocated_mib")
                             or memory.get("device_used_mib"))
    state = result.get("machine_state") or {}
    if state.get("before") and state.get("after"):
        row.update(loadavg_before=state["before"]["loadavg_1m"],
                   loadavg_after=state["after"]["loadavg_1m"],
                   cpu_governor=state["before"]["governor"],
                   gpu_throttled=(state.get("gpu") or {}).get("throttled"))
    return row
