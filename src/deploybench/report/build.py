"""The report step: a pure function of result files -> reports/<profile>/ benchmark.md, results.csv.

Same inputs, byte-identical outputs: rows keep the order of the result list, numbers have fixed
formats, and nothing reads the clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from deploybench.atomic import write_json, write_text
from deploybench.backends import PRECISIONS
from deploybench.measure.group import REFERENCE
from deploybench.measure.machine_state import REFERENCE_KERNEL
from deploybench.measure.run import END_TO_END, SCOPE
from deploybench.report import drop_intervals, plots
from deploybench.report.published import published_checks, published_table
from deploybench.report.summary import INTRO as SUMMARY_INTRO
from deploybench.report.summary import summary_tables
from deploybench.report.table import (
    BUSY_OTHER_CORES,
    BUSY_REFERENCE,
    METRICS,
    UNSTABLE,
    UNSTABLE_VS_TYPICAL,
    frame_of,
    read_records,
    speedup_halfwidth,
    write_records,
)


def _noise(r: Any) -> str:
    # Per-call CoV is no signal here: a few slow calls (page faults, a timer interrupt) raise it
    # on every cell of a busy or small machine, and the median ignores them.
    why = []
    if r.group_stopped == "time cap" and speedup_halfwidth(r) > 0:  # not the reference
        why.append(f"time cap (speed-up +-{100 * speedup_halfwidth(r):.1f} %)")
    if r.unstable is True:
        why.append(f"unstable (+-{100 * r.ci_rel_halfwidth:.0f} %)")
    if r.busy is True:
        why.append("busy machine")
    if r.gpu_throttled is True:
        why.append("GPU throttled")
    return ", ".join(why)
METRIC_NOTES = {"bbox_mAP": "COCO box AP, 0-1", "bbox_mAP_50": "COCO box AP@0.5, 0-1",
                "segm_mAP": "COCO mask AP, 0-1", "mIoU": "mean IoU, %", "aAcc": "pixel accuracy, %",
                "mAcc": "mean class accuracy, %"}


def _num(value: Any, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True) + "\n"


def _combo(row: Any) -> str:
    return f"{row.backend} {row.precision}" + ("" if row.device == "cpu" else f" ({row.device})")


def _ran(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells of the (backend, device, precision) combinations that ran for at least one model:
    the wide tables leave out what this machine skips altogether (listed under "did not run")."""
    ran = frame[frame.status != "skipped"][["backend", "device", "precision"]].drop_duplicates()
    return frame.merge(ran, on=["backend", "device", "precision"])


def speedup_text(row: Any) -> str:
    """"x3.42" with the speed-up over the group's reference; "ref" for the reference itself."""
    if pd.isna(getattr(row, "speedup", float("nan"))):
        return ""
    return "ref" if row.backend == REFERENCE[0] and row.precision == REFERENCE[1] \
        else f"x{row.speedup:.2f}"


def latency_table(frame: pd.DataFrame) -> str:
    """mmdeploy's shape: one row per model and input, `ms` (and the speed-up over PyTorch
    fp32) and `FPS` per backend and precision."""
    table: dict[tuple, dict[str, str]] = {}
    for _, row in _ran(frame).iterrows():
        line = table.setdefault((row.model, row.task, row.resolution, row.batch),
                                {"Model": row.model, "Task": row.task, "Input": ""})
        line["Input"] = line["Input"] or (row.input if isinstance(row.input, str) else
                                          f"{row.batch}x3x{row.resolution}")
        ok = row.status == "ok" and not pd.isna(row.latency_ms_median)
        speed = speedup_text(row)
        line[f"{_combo(row)} ms"] = (_num(row.latency_ms_median, ".2f")
                                     + (f" ({speed})" if speed else "")) if ok else row.status
        line[f"{_combo(row)} FPS"] = _num(row.fps, ".1f") if ok else ""
    return _md(pd.DataFrame(list(table.values())).fillna(""))


def _speedups(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Speed-up of each cell vs PyTorch fp32 (its measure group's paired estimate; for results
    from before groups, the ratio of medians) and vs its own backend's fp32 (same device, model,
    input shape and batch: the ratio of the two speed-ups over the same reference); > 1 is
    faster."""
    keys = ["model", "resolution", "device", "batch"]
    medians = frame.set_index([*keys, "backend", "precision"]).latency_ms_median
    paired = frame.set_index([*keys, "backend", "precision"]).speedup

    def ratio(row: Any, backend: str) -> float:
        key = (row.model, row.resolution, row.device, row.batch, backend, "fp32")
        if pd.notna(row.speedup) and pd.notna(paired.get(key, float("nan"))):
            return row.speedup / paired[key]
        return medians.get(key, float("nan")) / row.latency_ms_median

    vs_pytorch = frame.apply(lambda r: ratio(r, REFERENCE[0]), axis=1)
    vs_fp32 = frame.apply(lambda r: ratio(r, r.backend) if r.precision != "fp32"
                          else float("nan"), axis=1)
    return vs_pytorch, vs_fp32


def _measured(row: Any) -> str:
    """When and by which commit the row's numbers were made (rows can come from several runs)."""
    if not isinstance(row.measured_at, str) or not row.measured_at:
        return ""
    commit = row.git_commit if isinstance(row.git_commit, str) else ""
    short = commit[:8] + ("-dirty" if commit.endswith("-dirty") else "")
    return f"{row.measured_at[:10]} {short}".strip()


def conditions(frame: pd.DataFrame) -> str:
    """The machine's own noise floor and the cells measured while it was busy: what a reader
    needs before trusting any number below."""
    timed = frame[frame.reference_ms_min.notna()]
    if timed.empty:
        return ""
    busy = timed[timed.busy == True]  # noqa: E712 - a nullable column
    floor = (f"the reference kernel ({REFERENCE_KERNEL}, timed before and after every "
             f"window) took {timed.reference_ms_min.min():.2f} ms at "
             f"its quietest and {timed.reference_ms_max.max():.2f} ms at its slowest "
             f"(x{timed.reference_ms_max.max() / timed.reference_ms_min.min():.2f})")
    others = (f"other processes took up to {timed.other_cores_max.max():.2f} cores during a "
              f"timed window (steal up to {timed.steal_cores_max.max():.2f})"
              if timed.other_cores_max.notna().any() else "")
    halfwidths = timed.apply(speedup_halfwidth, axis=1)
    widths = [w for w in halfwidths.dropna() if w > 0]  # not the references themselves
    capped = timed[(timed.group_stopped == "time cap") & (halfwidths > 0)]
    if len(widths):
        resolution = (
            "Each model's cells at one input shape, device and batch were timed side by side in "
            "one window, in interleaved rounds (*Latency statistics* says how): their speed-ups "
            "over PyTorch fp32 come from the per-round paired ratios, in which the machine's "
            "drift cancels. The typical speed-up is known to within "
            f"+-{100 * float(pd.Series(widths).median()):.1f} % (95 % interval; the widest "
            f"+-{100 * max(widths):.1f} %). Absolute medians carry the drift between windows: "
            "compare them across models or runs with the reference kernel's figure beside them. "
            + (f"{len(capped)} cells stopped at their group's time cap before their interval "
               "reached the target (flagged *time cap*)." if not capped.empty else
               "Every group reached its precision target before its time cap."))
    else:  # results from before measure groups
        factor = float(((timed.latency_ms_median_ci95_high
                         / timed.latency_ms_median_ci95_low) ** 0.5).median())
        resolution = (f"The typical cell's median is known to within a factor of {factor:.2f} "
                      "either way (the median over cells of the square root of the 95 % "
                      "interval's upper over lower bound, below): medians less than about "
                      f"{factor ** 2:.1f} x apart are not told apart by these runs.")
    lines = ["## Measurement conditions\n",
             f"Noise floor of this machine over the runs shown: {floor}; {others}. A cell is "
             f"flagged *busy machine* when other processes took {BUSY_OTHER_CORES:g} cores or "
             f"more during its window, or the kernel around its window ran "
             f"{100 * (BUSY_REFERENCE - 1):.0f} % slower than around the median cell of its "
             f"run (the median here: {timed.reference_ms.median():.2f} ms). {resolution}\n"]
    if not busy.empty:
        names = ", ".join(f"{r.model} {r.backend} {r.precision} ({r.device}, b{r.batch})"
                          for r in busy.itertuples())
        lines.append(f"**{len(busy)} of {len(timed)} cells were measured while this machine "
                     f"was busy with other work or running slow; their latency is not "
                     f"representative:** {names}.\n")
    else:
        lines.append(f"None of the {len(timed)} cells was measured while the machine was busy "
                     "or running slow.\n")
    return "\n".join(lines)


def _interval(low: Any, high: Any, fmt: str) -> str:
    return f"{low:{fmt}}-{high:{fmt}}" if pd.notna(low) and pd.notna(high) else ""


def latency_detail(frame: pd.DataFrame) -> str:
    ok = frame[frame.latency_ms_median.notna()]
    if ok.empty:
        return "No cell was measured.\n"
    vs_pytorch, vs_fp32 = _speedups(ok)
    rows = [{"Model": r.model, "Input": r.resolution, "Backend": r.backend, "Device": r.device,
             "Precision": r.precision, "Batch": r.batch,
             "median": _num(r.latency_ms_median, ".2f"),
             "median 95 % CI": _interval(r.latency_ms_median_ci95_low,
                                         r.latency_ms_median_ci95_high, ".2f"),
             "x PyTorch fp32": _num(vs_pytorch[i], ".2f"),
             "speed-up 95 % CI": ("reference" if speedup_text(r) == "ref" else
                                  _interval(r.speedup_ci95_low, r.speedup_ci95_high, ".3f")),
             "x own fp32": _num(vs_fp32[i], ".2f"),
             "mean": _num(r.latency_ms_mean, ".2f"),
             "p90": _num(r.latency_ms_p90, ".2f"), "p95": _num(r.latency_ms_p95, ".2f"),
             "p99": _num(r.latency_ms_p99, ".2f"), "std": _num(r.latency_ms_std, ".2f"),
             "CoV": _num(100 * r.latency_cov, ".1f") + " %",
             "rounds": _count(r.rounds), "quiet rounds": _count(r.quiet_rounds),
             "calls / slice": _count(r.slice_calls),
             "stopped": r.group_stopped if isinstance(r.group_stopped, str) else "",
             "flag": _noise(r),
             "FPS": _num(r.fps, ".1f"), "samples": int(r.latency_samples),
             "first call s": _num(r.first_call_s, ".2f"),
             "idle cores": _num(r.idle_cores, ".3f"),
             "peak RSS MiB": _num(r.peak_rss_mib, ".0f"),
             "measured": _measured(r)}
            for i, r in zip(ok.index, ok.itertuples(), strict=True)]
    return _md(pd.DataFrame(rows))


def _count(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(int(value))


STAGE_LABELS = {"decode": "decode", "preprocess": "preprocess", "to_device": "to device",
                "network": "network", "to_host": "to host", "proposals": "proposals",
                "roi_bbox": "RoI bbox", "roi_mask": "RoI mask", "mask_post": "mask post",
                "postprocess": "postprocess"}
TWO_STAGE_NOTE = (
    "Two-stage detectors, in the stage study's shape: *network* is their first graph "
    "(backbone + neck + RPN head); after it, on the cell's device: *proposals* (the RPN's "
    "decode + NMS, in PyTorch), *RoI bbox* (RoIAlign + bbox head + NMS), *RoI mask* "
    "(RoIAlign + mask head; models with masks), *mask post* (the paste into full-image masks; "
    "with native masks only each box's mask at the head's 28x28 is kept), *postprocess* the "
    "rest. RoIAlign and NMS run in PyTorch in every cell; the bbox and mask heads run as "
    "graphs of their own on the cell's backend where *RoI heads* says *backend*, in PyTorch "
    "where it says *PyTorch*.\n")


def stages_table(records: list[dict[str, Any]]) -> str:
    """The stage study's shape: one row per model, backend and preprocessing path, one column
    per stage (median ms); from each cell's first measure repeat. Models with different stages
    (two-stage detectors) get a table of their own."""
    tables: dict[bool, list[dict[str, str]]] = {}  # two-stage or not
    for r in plots.stage_records(records):
        c = r["cell"]
        key = (c["model"], c.get("shape", ""), c["backend"], c.get("device", "cpu"),
               c["precision"], c["batch"])
        for path, stages in r["stages"].items():
            if not isinstance(stages, dict) or path in ("scope", "runner_settings"):
                continue
            label = {"tensor_native_masks": "tensor + native masks"}.get(path, path)
            line = {"Model": key[0], "Input": key[1], "Backend": key[2], "Device": key[3],
                    "Precision": key[4], "Path": label}
            if "roi_heads" in r:
                line["RoI heads"] = "backend" if r.get("roi_heads_on_backend") else "PyTorch"
            if "skipped" in stages:
                skipped = line | {"decode": f"skipped: {stages['skipped']}"}
                tables.setdefault(False, []).append(skipped)
                continue
            ms = stages["stages_ms"]
            e2e = stages["end_to_end_ms"]
            line |= {label: _num(ms[s]["median"], ".2f") for s, label in STAGE_LABELS.items()
                     if s in ms}
            line |= {"end to end": _num(e2e["median"], ".2f"), "e2e p90": _num(e2e["p90"], ".2f"),
                     "e2e CoV": _num(100 * e2e["cov"], ".1f") + " %",
                     "network share": _num(100 * ms["network"]["median"] / e2e["median"], ".0f")
                     + " %"}
            tables.setdefault("proposals" in ms, []).append(line)
    if not tables:
        return "No cell was timed end to end.\n"
    out = []
    for two_stage in sorted(tables):  # the two-stage detectors' table last
        frame = pd.DataFrame(tables[two_stage])
        order = ["Model", "Input", "Backend", "Device", "Precision", "Path", "RoI heads",
                 *STAGE_LABELS.values(), "end to end", "e2e p90", "e2e CoV", "network share"]
        frame = frame[[c for c in order if c in frame.columns]].fillna("")
        out += [TWO_STAGE_NOTE] if two_stage else []
        out.append(_md(frame))
    return "\n".join(out)


GATED = ("bbox_mAP", "segm_mAP", "mIoU", "aAcc")


def _reference_row(group: pd.DataFrame, metric: str) -> Any:
    """PyTorch fp32 on the CPU; on the GPU where the matrix has no CPU cells; else None."""
    ref = group[(group.backend == REFERENCE[0]) & (group.precision == REFERENCE[1])
                & group[metric].notna()].sort_values("device", key=lambda d: d != "cpu")
    return None if ref.empty else ref.iloc[0]


def _reference(group: pd.DataFrame, metric: str) -> tuple[float, str]:
    """(the reference's value, its device)."""
    ref = _reference_row(group, metric)
    return (float("nan"), "") if ref is None else (ref[metric], ref.device)


def _drop_interval(row: Any, metric: str, reference: Any) -> tuple[float, float] | None:
    """The drop's bootstrap interval, where the cell and the reference come from the same run
    (the interval was drawn against that reference)."""
    low = getattr(row, f"{metric}_drop_ci95_low", None)
    high = getattr(row, f"{metric}_drop_ci95_high", None)
    if low is None or pd.isna(low) or pd.isna(high) or reference is None \
            or reference.run != row.run:
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
            reference = _reference_row(group, metric)
            ref, ref_device = _reference(group, metric)
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


def split_note(records: list[dict[str, Any]]) -> list[str]:
    """Models whose exported graph is only part of the network: what runs in PyTorch, and
    which cells ran the RoI heads' graphs on their backend."""
    split = {(r["cell"]["model"], r.get("graph"), r.get("in_pytorch") or "",
              ", ".join(g["holds"] for g in (r.get("head_graphs") or {}).values()))
             for r in records if r["step"] == "export" and r.get("graph")}
    notes = []
    for model, graph, rest, heads in sorted(split):
        if not rest:
            notes.append(f"{model}: the graph every backend runs is {graph}, the whole "
                         "network.\n")
            continue
        note = (f"{model}: the graph every backend runs first is {graph}; {rest} run after it "
                "in PyTorch on the cell's device, for every backend, timed in post-processing.")
        if heads:
            on = _cells_running_heads(records, model)
            note += (f" The RoI heads ({heads}) are graphs of their own, run by the backend in "
                     f"{on or 'no cell'}, and in PyTorch in the other cells (a TensorRT engine "
                     "holds the first graph alone).")
        notes.append(note + "\n")
    return notes


def _cells_running_heads(records: list[dict[str, Any]], model: str) -> str:
    cells = sorted({(r["cell"]["backend"], r["cell"]["precision"], r["cell"].get("device", "cpu"))
                    for r in records if r["cell"]["model"] == model
                    and r["step"] in ("measure", "evaluate") and r.get("roi_heads_on_backend")})
    return ", ".join(f"{b} {p} ({d})" for b, p, d in cells)


def slide_note(records: list[dict[str, Any]]) -> list[str]:
    """Models that slide a window over the image: their latency is per crop."""
    slides = {}
    for r in records:
        if r["step"] == "measure" and r.get("crops_per_image"):
            shape = "x".join(map(str, r["input_shape"][-2:]))
            slides[(r["cell"]["model"], r["cell"].get("shape", ""))] = (
                r["crops_per_image"], shape)
    if not slides:
        return []
    listed = ", ".join(f"{model} {image}: {n} crops of {crop}"
                       for (model, image), (n, crop) in sorted(slides.items()))
    return [f"Slide inference ({listed}): the network latency above is per crop; the stage "
            "breakdown's network and end to end are per image (every crop through the backend, "
            "with its transfers, and the overlap averaging).\n"]


def evaluated_data(frame: pd.DataFrame) -> list[str]:
    """Which test data each model was scored on (`results.csv`: dataset_sha256), so that rows
    from different data are never taken for the same."""
    lines = []
    for model, group in frame.dropna(subset=["dataset_sha256"]).groupby("model", sort=False):
        for digest in dict.fromkeys(group.dataset_sha256):
            lines.append(f"{model} `{digest[:12]}`")
    return [("Test data (sha256 of the annotation file and the image list): "
             + ", ".join(lines) + ".\n")] if lines else []


def accuracy_table(frame: pd.DataFrame, gates: pd.DataFrame) -> str:
    """One row per model, input shape and metric; each backend's value and its delta vs PyTorch
    fp32 at that shape."""
    failed = {(g.model, g.resolution, g.backend, g.device, g.precision, g.metric)
              for g in gates.itertuples() if not g.passed}
    noise = {(g.model, g.resolution, g.backend, g.device, g.precision, g.metric)
             for g in gates.itertuples() if g.within_noise}
    rows = []
    for (model, shape), group in _ran(frame).groupby(["model", "resolution"], sort=False):
        for metric in METRICS:
            if metric not in GATED or group[metric].isna().all():
                continue
            ref, _ = _reference(group, metric)
            line = {"Model": model, "Input": shape, "Images": _images(group),
                    "Metric": f"{metric} ({METRIC_NOTES[metric]})"}
            fmt = ".3f" if metric.endswith("mAP") else ".2f"
            for row in group.itertuples():
                value = getattr(row, metric)
                if pd.isna(value):
                    line[_combo(row)] = row.status if row.status != "ok" else ""
                    continue
                delta = "" if pd.isna(ref) else f" ({value - ref:+{fmt}})"
                at = (model, shape, row.backend, row.device, row.precision, metric)
                mark = (" **outside gate**" if at in failed else
                        " (beyond gate, within noise)" if at in noise else "")
                empty = " (no detections)" if row.no_detections is True else ""
                line[_combo(row)] = _num(value, fmt) + empty + delta + mark
            rows.append(line)
    if not rows:
        return "No cell was evaluated.\n"
    return _md(pd.DataFrame(rows).fillna(""))


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
        text = f"{value:+.2f}" if metric == "mIoU" else f"{value:+.4f}"
        return text.replace("+0.0000", "0").replace("-0.0000", "0").replace(
            "+0.00", "0").replace("-0.00", "0") if abs(value) < 5e-5 else text

    rows = [{"Model": g.model, "Input": g.resolution, "Cell": _combo(g), "Metric": g.metric,
             "drop": signed(g.drop, g.metric),
             "95 % interval": ("" if g.drop_ci95 is None else
                               f"{signed(g.drop_ci95[0], g.metric)} to "
                               f"{signed(g.drop_ci95[1], g.metric)}"),
             "tolerance": f"{g.tolerance:g}",
             "verdict": ("outside" if not g.passed else
                         "within noise" if g.within_noise else "passed")}
            for g in gates.itertuples()]
    return (intro + summary + (f"; outside: {', '.join(outside)}." if outside else ".")
            + "\n\n" + _md(pd.DataFrame(rows)))


def _share(value: Any, boxes: Any) -> str:
    """A matched share, with how many boxes it is over; n/a over none (not "100 %")."""
    if pd.isna(value):
        return "n/a (no box)"
    if pd.isna(boxes):  # a record older than the box counts
        return f"{100 * value:.1f} %"
    return f"{round(value * boxes)}/{int(boxes)} ({100 * value:.1f} %)"


def parity_table(frame: pd.DataFrame) -> str:
    # The reference itself (PyTorch fp32 on the CPU) is left out: it matches itself.
    itself = (frame.backend == REFERENCE[0]) & (frame.precision == REFERENCE[1]) & (
        frame.device == "cpu")
    ok = frame[frame.parity_images.notna() & ~itself]
    if ok.empty:
        return "No cell was compared.\n"
    rows = []
    for r in ok.itertuples():
        line = {"Model": r.model, "Input": r.resolution, "Backend": r.backend, "Device": r.device,
                "Precision": r.precision, "Images": int(r.parity_images),
                "max abs err": _num(r.parity_max_abs, ".2e"),
                "max rel err": _num(r.parity_max_rel, ".2e"),
                "min cosine": _num(r.parity_min_cosine, ".6f"),
                "worst output": r.parity_worst_output or ""}
        if r.task != "segmentation":
            found = _share(r.boxes_matched, r.reference_boxes)
            kept = _share(r.cell_boxes_matched, r.cell_boxes)
            line["agreement"] = (f"reference boxes found {found}; cell boxes in the reference "
                                 f"{kept}; mean score diff "
                                 f"{_num(r.mean_score_diff, '.4f') or 'n/a'}"
                                 + (f", mask IoU {r.mean_mask_iou:.4f}"
                                    if pd.notna(r.mean_mask_iou) else ""))
        else:
            line["agreement"] = f"{100 * r.pixel_agreement:.2f} % pixels agree"
        rows.append(line)
    return _md(pd.DataFrame(rows))


def parity_outputs(records: list[dict[str, Any]]) -> str:
    rows = [{"Model": r["cell"]["model"], "Input": r["cell"].get("shape", ""),
             "Backend": r["cell"]["backend"],
             "Device": r["cell"].get("device", "cpu"), "Precision": r["cell"]["precision"],
             "Output": o["output"], "max abs": _num(o["max_abs"], ".2e"),
             "max rel": _num(o["max_rel"], ".2e"), "cosine": _num(o["cosine"], ".6f")}
            for r in records if r["step"] == "evaluate" and r.get("parity")
            and (r["cell"]["backend"], r["cell"]["precision"], r["cell"].get("device", "cpu"))
            != (*REFERENCE, "cpu")
            for o in r["parity"]["outputs"]]
    if not rows:
        return ""
    return ("<details><summary>Every output</summary>\n\n" + _md(pd.DataFrame(rows))
            + "\n</details>\n")


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
                         "Seconds": _num(r.get("seconds"), ".1f"),
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
                     "Status": r["status"], "Seconds": _num(r.get("seconds"), ".1f"),
                     "How": how or r.get("reason", "").replace("|", "\\|")})
    return _md(pd.DataFrame(rows)) if rows else "No builds.\n"


def _shares(shares: dict[str, float]) -> str:
    ranked = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))  # records keep keys sorted
    return ", ".join(f"{op} {100 * share:.0f} %" for op, share in ranked)


def int8_table(frame: pd.DataFrame, records: list[dict[str, Any]]) -> str:
    """Each int8 cell against its own backend's fp32: the speed-up, the quantization that ran,
    and for ONNX Runtime where the time goes (operator shares from its profiler, fp32 and int8),
    which says why an int8 model is or is not faster."""
    builds = {(r["cell"]["model"], r["cell"].get("shape", ""), r["cell"]["backend"]): r
              for r in records if r["step"] == "build" and r["status"] == "ok"
              and r["cell"]["precision"] == "int8"}
    ok = frame[frame.latency_ms_median.notna()]
    _, vs_fp32 = _speedups(ok) if not ok.empty else (None, pd.Series(dtype=float))
    rows = []
    for i, r in zip(ok.index, ok.itertuples(), strict=True):
        if r.precision != "int8" or pd.isna(vs_fp32[i]):
            continue
        build = builds.get((r.model, r.resolution, r.backend), {})
        profile = build.get("op_time_share") or {}
        rows.append({"Model": r.model, "Input": r.resolution, "Backend": r.backend,
                     "Batch": r.batch, "x own fp32": f"{vs_fp32[i]:.2f}",
                     "verdict": "faster" if vs_fp32[i] > 1 else "**not faster**",
                     "quantization": build.get("variant") or build.get("preset") or "",
                     "fp32 time by operator": _shares(profile.get("fp32", {})),
                     "int8 time by operator": _shares(profile.get("int8", {}))})
    if not rows:
        return "No int8 cell was measured.\n"
    return _md(pd.DataFrame(rows))


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
    return _md(pd.DataFrame(rows))


def _runtime_label(runtime: dict[str, str]) -> str:
    if runtime.get("kind") != "docker":
        return "local (no container)"
    digest = runtime.get("repo_digest") or "no repo digest: built locally"
    return f"docker image {runtime['image']} (id {runtime['image_id']}, {digest})"


def environment_summary(records: list[dict[str, Any]], run: str) -> dict[str, Any]:
    """What `deploybench compare` reads to tell a latency change from a changed environment;
    published beside the docs as environment.json."""
    records = [r for r in records if r.get("provenance")]  # not the cells that never ran
    ok = [r for r in records if r["status"] == "ok"] or records
    if not ok:
        return {"run": run}
    prov = ok[0]["provenance"]
    runtimes = {json.dumps(r["provenance"].get("runtime", {"kind": "local"}), sort_keys=True)
                for r in ok}
    return {"run": run, "runs": sorted({r.get("run", run) for r in records}),
            "versions": prov["versions"], "hardware": prov["hardware"],
            "git_commits": sorted({r["provenance"]["git_commit"] for r in records}),
            "runtimes": [json.loads(r) for r in sorted(runtimes)],
            "created": [min(r["provenance"]["created"] for r in records),
                        max(r["provenance"]["created"] for r in records)]}


def environment(records: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    if "versions" not in summary:
        return "No results yet.\n"
    run = summary["run"]
    versions = pd.DataFrame([{"Package": k, "Version": v}
                             for k, v in summary["versions"].items()])
    hw = summary["hardware"]
    commits = summary["git_commits"]
    created = summary["created"]
    threads = sorted({str(r["settings"].get("threads")) for r in records
                      if r["step"] == "measure" and "threads" in r["settings"]})
    measured = [r for r in records if r["step"] == "measure"
                and (r.get("machine_state") or {}).get("before")]
    loads = [r["machine_state"][k]["loadavg_1m"] for r in measured for k in ("before", "after")]
    governors = sorted({str(r["machine_state"]["before"]["governor"]) for r in measured})
    throttled = [f"{r['cell']['model']} {r['cell']['backend']}" for r in measured
                 if (r["machine_state"].get("gpu") or {}).get("throttled")]
    lines = [f"- CPU: {hw['cpu']} ({hw['cores']} usable cores, {hw['machine']}, {hw['system']})",
             f"- GPU: {hw.get('gpu') or 'none visible to PyTorch'}",
             f"- Intra-op threads per backend: {', '.join(threads) or 'n/a'}",
             f"- Runtime: {'; '.join(map(_runtime_label, summary['runtimes']))}",
             f"- deploybench commit(s): {', '.join(commits)}; run `{run}`",
             f"- Results produced: {created[0]} to {created[-1]} (UTC)"]
    if measured:
        lines += [f"- CPU frequency governor: {', '.join(governors)} (None: not readable here)",
                  f"- 1-minute load average around the timed windows: {min(loads):.2f} to "
                  f"{max(loads):.2f}",
                  f"- GPU throttled during a timed window: {', '.join(throttled) or 'none seen'}"]
    lines.append("")
    return "\n".join(lines) + "\n" + _md(versions)


def _runs_line(summary: dict[str, Any]) -> str:
    runs = summary.get("runs") or [summary["run"]]
    names = ", ".join(f"`{r}`" for r in runs)
    return (f"Cells from run{'s' if len(runs) > 1 else ''} {names}, published by "
            "`deploybench publish`.")


FIGURE_CAPTIONS = {
    "latency-accuracy.svg": ("Latency against accuracy", "per model, one point per backend "
                             "and precision (network-only median; the task's metric), the "
                             "Pareto front dashed: the cells no other cell beats on both"),
    "stages.svg": ("Where the time goes", "end to end per image, stage by stage (medians), "
                   "for each backend, precision and preprocessing path; the detail page's *End "
                   "to end, stage by stage* has the numbers"),
    "latency-distribution.svg": ("Latency distribution", "every latency sample of each cell, "
                                 "its quiet rounds pooled: the spread the medians come from"),
    "throughput.svg": ("Throughput", "images per second against batch size, for the models "
                       "measured at more than one batch (each runs one graph with a dynamic "
                       "batch axis at every batch: the detail page's *Builds* says which)"),
}


def figures_section(figures: list[str]) -> list[str]:
    """The figures the report step drew beside the docs, each with what it shows."""
    if not figures:
        return []
    out = ["## Figures\n", "Drawn by the report step from the same results as the tables; "
           "colours and markers are fixed per backend, the fill per precision (fp32 full, "
           "fp16 half, int8 hollow).\n"]
    for name in figures:
        title, caption = FIGURE_CAPTIONS[name]
        out.append(f"**{title}**: {caption}.\n\n![{title}]({name})\n")
    return out


FRONT_PAGE = "README.md"  # what GitHub shows first when a reader opens reports/<profile>/
DETAILS = {"Measurement conditions": "measurement-conditions", "Latency": "latency",
           "End to end, stage by stage": "end-to-end-stage-by-stage", "Accuracy": "accuracy",
           "Output parity": "output-parity", "Builds": "builds",
           "Cells that did not run": "cells-that-did-not-run", "Environment": "environment"}


def render_front_page(frame: pd.DataFrame, profile: str, summary: dict[str, Any],
                      figures: list[str], model_pages: list[str] | None = None) -> str:
    """What a reader needs in a minute: the machine, when and from what; which backend for
    each model at what accuracy; the figures; links to the details."""
    if "hardware" in summary:
        hw = summary["hardware"]
        commits = ", ".join(c[:8] for c in summary["git_commits"])
        machine = (f"**Machine**: {hw['cpu']}, {hw['cores']} usable cores; GPU: "
                   f"{hw.get('gpu') or 'none'}. **Measured** {summary['created'][0][:10]} to "
                   f"{summary['created'][-1][:10]} (UTC) by deploybench {commits}; runtime: "
                   f"{'; '.join(map(_runtime_label, summary['runtimes']))}.\n")
    else:
        machine = "No results yet.\n"
    links = " · ".join(f"[{title}](benchmark.md#{anchor})" for title, anchor in DETAILS.items())
    return "\n".join([
        f"# Benchmark: {profile}\n",
        "Generated by `deploybench report` from the pipeline's result files; do not edit by hand. "
        f"{_runs_line(summary) if 'run' in summary else ''}\n",
        machine,
        "## Summary\n",
        SUMMARY_INTRO,
        summary_tables(frame),
        *figures_section(figures),
        "## Details\n",
        f"Every number, with its intervals, and what each one includes: {links}.\n",
        *([f"One page per model: {per_model}.\n"] if (per_model := " · ".join(
            f"[{Path(p).stem}]({p})" for p in model_pages or [])) else [])])


def method_sentence(measured: list[dict[str, Any]]) -> str:
    """How the run's measure groups timed their cells, from their settings."""
    groups = [r["settings"]["group_settings"] for r in measured
              if "group_settings" in r["settings"]]
    if not groups:
        return ""
    g = groups[0]
    rounds = [r["group"]["rounds"] for r in measured if r.get("group")]
    return (f" Each cell: its first call apart, a warm-up of at least {g['warmup_iters']} calls "
            f"and {g['warmup_seconds']:g} s; then rounds of one slice per cell (about "
            f"{1000 * g['slice_seconds']:g} ms, at least 3 calls) until every speed-up's 95 % "
            f"interval is within +-{100 * g['precision']:g} % (at least {g['min_rounds']} rounds "
            f"and {g['min_seconds']:g} s) or the group's time cap of {g['max_seconds']:g} s; "
            f"{min(rounds)} to {max(rounds)} rounds ran per group"
            + (f", and the rounds in which the machine ran more than "
               f"{100 * g['quiet_tolerance']:g} % slower than its quiet level were left out."
               if g.get("quiet_tolerance") else "."))


def render(frame: pd.DataFrame, records: list[dict[str, Any]], profile: str,
           gates: pd.DataFrame, tolerances: dict[str, dict[str, float]],
           summary: dict[str, Any], published: pd.DataFrame) -> str:
    measured = [r for r in records if r["step"] == "measure" and r["status"] == "ok"]
    timing = method_sentence(measured)
    parts = [
        f"# Benchmark: {profile}\n",
        "Generated by `deploybench report` from the pipeline's result files; do not edit by hand. "
        f"{_runs_line(summary)} Rerun `snakemake --cores N` to refresh it: a run replaces the "
        "cells it measures and keeps the others (*measured*: when and by which commit). The "
        f"summary and the figures are on the [front page]({FRONT_PAGE}).\n",
        conditions(frame),
        "## Latency\n",
        f"Median latency in ms, **{SCOPE}**; FPS = batch x 1000 / median.{timing} "
        "Combinations that this machine skipped for every model are left out here and listed "
        "under *Cells that did not run*.\n",
        latency_table(frame),
        "### Latency statistics\n",
        f"All in ms, {SCOPE}, over every timed call of the cell's quiet rounds. *x PyTorch fp32*: "
        "the speed-up over PyTorch fp32 on the same device, model, input and batch, from the "
        "rounds of their measure group: in each round every cell ran one slice of calls (in a "
        "new random order), the ratio of the two slices' medians is that round's reading, and "
        "the estimate is their geometric mean; *speed-up 95 % CI*: Student's t interval, on a "
        "log scale, over the means of 8 consecutive runs of those rounds (batch means: a "
        "shared machine's states last seconds and slow backends unequally, and the interval "
        "spans the states the window passed through). *x own fp32*: the same against the backend's "
        "own fp32 cell. *median 95 % CI*: the absolute median's interval, a bootstrap that "
        "resamples the rounds, then the calls within each; it holds this window's noise, not "
        "the drift between windows. *rounds*, *calls / slice*: what ran; *quiet rounds*: the "
        "rounds the statistics are over, the others having run while the machine's other "
        "tenants slowed the group by more than the quiet tolerance (README, *The machine's "
        "states*); *stopped*: "
        "*precision* when every speed-up of the group reached its target, *time cap* when the "
        "group's rounds ran out of time first. *idle cores*: the CPU the cell's worker process "
        "took while it waited for its next slice, in cores (its runtime's threads spinning "
        "would show here; README, *What the numbers mean*). *flag*: *time cap* with the interval "
        "reached; *unstable* when the median's interval's half-width exceeds "
        f"{100 * UNSTABLE:g} % and {UNSTABLE_VS_TYPICAL:g} x the run's typical half-width; "
        "*busy machine* as under *Measurement conditions*. "
        "Per-call CoV is shown but flags nothing: a few slow calls raise it on any busy or "
        "small machine while the median ignores them. "
        "*first call s*: the first call, timed apart and left out of the samples (it includes "
        "TorchScript tracing, torch.compile compiling from cold caches, lazy initialization).\n",
        latency_detail(frame),
        *slide_note(records),
        *split_note(records),
        "### int8 against fp32\n",
        "Each int8 cell's median speed-up over the same backend at fp32 (network only), the "
        "quantization that ran, and for ONNX Runtime where each model's time goes: the share "
        "of kernel time per operator type from ONNX Runtime's profiler (one thread, 30 calls, "
        "at build time). An int8 model is faster where integer kernels replace most of the "
        "float work; where quantized activations run as separate operators (e.g. a SiLU as "
        "`QLinearSigmoid` + `QLinearMul`, fused into one `QuickGelu` in fp32) they can eat "
        "the gain. README, *int8 on x86*, has the variants tried.\n",
        int8_table(frame, records),
        "## End to end, stage by stage\n",
        f"Median ms per stage, **{END_TO_END}**, image by image over the first test images "
        "(cycled), after a warm-up. Two preprocessing paths: *reference*, the model's mmcv "
        "pipeline in numpy on the CPU, then a float32 batch to the device; *tensor*, the same "
        "decode, the uint8 image to the device (counted in *to device*), then resize, pad and "
        "normalize as torch ops there (same bytes as the reference, tested); for instance "
        "segmentation also *tensor + native masks*, the masks left at the mask head's "
        "resolution instead of pasted into full-image masks (pasted only for the metric; "
        "the same masks, tested). *end to end* is "
        "the median of the per-image totals, so the stage medians need not add up to it "
        "exactly. *network share*: network over end to end. ONNX Runtime runs here with "
        "intra-op spinning off (`session.intra_op.allow_spinning=0`): with ORT's default its "
        "idle worker threads keep spinning through the processing that follows each call and "
        "slow it 2-3x on few cores. The network-only latency above keeps ORT's spinning "
        "within each call (`session.force_spinning_stop=1` stops it only when a call "
        "returns).\n",
        stages_table(records),
        *split_note(records),
        "## Accuracy\n",
        "The test split (*Images*: all of it, or the first N with `evaluate.limit`, scored on "
        "those N alone) through the model's own test pipeline, the backend's network, the "
        "model's own post-processing (`predict_by_feat` / `postprocess_result`) and metric "
        "(mmdet `CocoMetric`, mmseg `IoUMetric`). In brackets: the difference to PyTorch fp32 "
        "in this same environment. *no detections*: every prediction was below the model's "
        "score threshold; the metric is 0.\n",
        accuracy_table(frame[frame.batch == 1], gates),
        *evaluated_data(frame[frame.batch == 1]),
        "### Accuracy gates\n",
        gates_table(gates, tolerances),
        *published_table(published),
        "## Output parity\n",
        "Each cell against PyTorch fp32 (CPU) on the same preprocessed test images. Errors over "
        "all raw network outputs, the worst output shown: max |cell - reference|, that over "
        "max |reference| (*rel*), and the lowest cosine similarity. Agreement after the model's "
        "post-processing: detection, both ways: the reference boxes (score >= the configured "
        "threshold) that the cell finds with the same label at IoU >= the configured IoU, and "
        "the cell's boxes (score >= the threshold) that the reference has, so that boxes a "
        "backend loses and boxes it adds both show; n/a where there is no such box. Then the "
        "mean score difference of the matched pairs (with instance masks, also their mean mask "
        "IoU). Segmentation: the share of pixels with the same label.\n",
        parity_table(frame[frame.batch == 1]),
        parity_outputs(records),
        "## Builds\n",
        "The ONNX export of each model and input shape, and the artifacts made from it for the "
        "cells that run them.\n",
        builds_table(records),
        "## Cells that did not run\n",
        problems_table(frame),
        "## Environment\n",
        environment(records, summary),
    ]
    return "\n".join(parts)


def build_report(results: list[str], profile: str, out_dir: Path,
                 tolerances: dict[str, dict[str, float]] | None = None,
                 run: str = "local") -> tuple[int, int]:
    """Write a run's docs from its result files; return (failed cells, gate checks outside
    their tolerance)."""
    records = [{**r, "run": run} for r in read_records(list(results))]
    drop_intervals.annotate(records, list(results))
    return write_report(records, profile, out_dir, tolerances, run)


def write_report(records: list[dict[str, Any]], profile: str, out_dir: Path,
                 tolerances: dict[str, dict[str, float]] | None = None,
                 run: str = "local") -> tuple[int, int]:
    """Write the docs of `records` (and the records themselves, one JSON per line, which
    `deploybench publish` merges into the published ones)."""
    frame = frame_of(records)
    tolerances = tolerances or {}
    gates = gate_results(frame[frame.batch == 1], tolerances)  # accuracy is per image
    published = published_checks(frame[frame.batch == 1], tolerances)
    frame["gate_passed"] = [
        _gate_of(gates, r) if r.batch == 1 else None for r in frame.itertuples()]
    summary = environment_summary(records, run)
    from deploybench.report.model_pages import write_model_pages

    figures = plots.write_figures(frame, records, out_dir)
    pages = write_model_pages(frame, records, gates, tolerances, profile, out_dir)
    write_text(out_dir / FRONT_PAGE, render_front_page(frame, profile, summary, figures, pages))
    write_text(out_dir / "benchmark.md", render(frame, records, profile, gates, tolerances,
                                                summary, published))
    write_json(out_dir / "environment.json", summary)
    write_records(out_dir / "records.jsonl", records)
    write_text(out_dir / "results.csv", frame.to_csv(index=False, float_format="%.6g",
                                                     lineterminator="\n"))
    return (int((frame.status == "failed").sum()),
            int((~gates.passed).sum()) + int((~published.passed.astype(bool)).sum()))


def _gate_of(gates: pd.DataFrame, row: Any) -> Any:
    """The cell's verdict over its gated metrics: True, False, or empty where none applies."""
    mine = gates[(gates.model == row.model) & (gates.resolution == row.resolution)
                 & (gates.backend == row.backend)
                 & (gates.device == row.device) & (gates.precision == row.precision)]
    return bool(mine.passed.all()) if not mine.empty else None
