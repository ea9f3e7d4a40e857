"""The detail page's *Measurement conditions* and *Latency*: the machine's noise floor and busy
cells, the latency table in mmdeploy's shape, every cell's statistics and speed-ups, int8 against
fp32."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.measure.group import REFERENCE
from deploybench.measure.machine_state import REFERENCE_KERNEL
from deploybench.measure.run import SCOPE
from deploybench.report.graph_notes import slide_note, split_note
from deploybench.report.markdown import combo, count, interval, md, num, origin, ran
from deploybench.report.table import (
    BUSY_OTHER_CORES,
    BUSY_REFERENCE,
    UNSTABLE,
    UNSTABLE_VS_TYPICAL,
    speedup_halfwidth,
)

CONDITIONS_TITLE = "Measurement conditions"
TITLE = "Latency"


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
    for _, row in ran(frame).iterrows():
        line = table.setdefault((row.model, row.task, row.resolution, row.batch),
                                {"Model": row.model, "Task": row.task, "Input": ""})
        line["Input"] = line["Input"] or (row.input if isinstance(row.input, str) else
                                          f"{row.batch}x3x{row.resolution}")
        ok = row.status == "ok" and not pd.isna(row.latency_ms_median)
        speed = speedup_text(row)
        line[f"{combo(row)} ms"] = (num(row.latency_ms_median, ".2f")
                                     + (f" ({speed})" if speed else "")) if ok else row.status
        line[f"{combo(row)} FPS"] = num(row.fps, ".1f") if ok else ""
    return md(pd.DataFrame(list(table.values())).fillna(""))


def speedups(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
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
    """When, by which commit and in which run the row's latency was measured (rows can come
    from several runs)."""
    return origin(row.measured_at, row.git_commit, row.run)


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
    lines = [f"## {CONDITIONS_TITLE}\n",
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


def latency_detail(frame: pd.DataFrame) -> str:
    ok = frame[frame.latency_ms_median.notna()]
    if ok.empty:
        return "No cell was measured.\n"
    vs_pytorch, vs_fp32 = speedups(ok)
    rows = [{"Model": r.model, "Input": r.resolution, "Backend": r.backend, "Device": r.device,
             "Precision": r.precision, "Batch": r.batch,
             "median": num(r.latency_ms_median, ".2f"),
             "median 95 % CI": interval(r.latency_ms_median_ci95_low,
                                         r.latency_ms_median_ci95_high, ".2f"),
             "x PyTorch fp32": num(vs_pytorch[i], ".2f"),
             "speed-up 95 % CI": ("reference" if speedup_text(r) == "ref" else
                                  interval(r.speedup_ci95_low, r.speedup_ci95_high, ".3f")),
             "x own fp32": num(vs_fp32[i], ".2f"),
             "mean": num(r.latency_ms_mean, ".2f"),
             "p90": num(r.latency_ms_p90, ".2f"), "p95": num(r.latency_ms_p95, ".2f"),
             "p99": num(r.latency_ms_p99, ".2f"), "std": num(r.latency_ms_std, ".2f"),
             "CoV": num(100 * r.latency_cov, ".1f") + " %",
             "rounds": count(r.rounds), "quiet rounds": count(r.quiet_rounds),
             "calls / slice": count(r.slice_calls),
             "stopped": r.group_stopped if isinstance(r.group_stopped, str) else "",
             "flag": _noise(r),
             "FPS": num(r.fps, ".1f"), "samples": int(r.latency_samples),
             "first call s": num(r.first_call_s, ".2f"),
             "idle cores": num(r.idle_cores, ".3f"),
             "peak RSS MiB": num(r.peak_rss_mib, ".0f"),
             "measured": _measured(r)}
            for i, r in zip(ok.index, ok.itertuples(), strict=True)]
    return md(pd.DataFrame(rows))


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
    _, vs_fp32 = speedups(ok) if not ok.empty else (None, pd.Series(dtype=float))
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
    return md(pd.DataFrame(rows))


def section(frame: pd.DataFrame, records: list[dict[str, Any]]) -> list[str]:
    """The latency table, the statistics and int8 against fp32, with what each column means."""
    measured = [r for r in records if r["step"] == "measure" and r["status"] == "ok"]
    timing = method_sentence(measured)
    return [
        f"## {TITLE}\n",
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
        "tenants slowed the group by more than the quiet tolerance (docs/methodology.md, "
        "*The machine's states*); *stopped*: "
        "*precision* when every speed-up of the group reached its target, *time cap* when the "
        "group's rounds ran out of time first. *idle cores*: the CPU the cell's worker process "
        "took while it waited for its next slice, in cores (its runtime's threads spinning "
        "would show here; docs/methodology.md, *What the numbers mean*). *flag*: *time cap* "
        "with the interval reached; *unstable* when the median's interval's half-width exceeds "
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
        "the gain. docs/methodology.md, *int8 on x86*, has the variants tried.\n",
        int8_table(frame, records),
    ]
