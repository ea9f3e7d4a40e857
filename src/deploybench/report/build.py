"""The report step: a pure function of result files -> reports/<profile>/ benchmark.md, results.csv.

Same inputs, byte-identical outputs: rows keep the order of the result list, numbers have fixed
formats, and nothing reads the clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from deploybench.atomic import write_text
from deploybench.measure.run import SCOPE
from deploybench.report.table import METRICS, load_results

REFERENCE = ("pytorch", "fp32")
HIGH_COV = 0.025  # trtexec warns above 2.5 %
METRIC_NOTES = {"bbox_mAP": "COCO box AP, 0-1", "bbox_mAP_50": "COCO box AP@0.5, 0-1",
                "segm_mAP": "COCO mask AP, 0-1", "mIoU": "mean IoU, %", "aAcc": "pixel accuracy, %",
                "mAcc": "mean class accuracy, %"}


def _num(value: Any, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True) + "\n"


def _combo(row: pd.Series) -> str:
    return f"{row.backend} {row.precision}"


def latency_table(frame: pd.DataFrame) -> str:
    """mmdeploy's shape: one row per model and input, `ms` and `FPS` per backend and precision."""
    table: dict[tuple, dict[str, str]] = {}
    for _, row in frame.iterrows():
        line = table.setdefault((row.model, row.task, row.batch),
                                {"Model": row.model, "Task": row.task, "Input": ""})
        line["Input"] = line["Input"] or (row.input if isinstance(row.input, str) else "")
        ok = row.status == "ok" and not pd.isna(row.latency_ms_median)
        line[f"{_combo(row)} ms"] = _num(row.latency_ms_median, ".2f") if ok else row.status
        line[f"{_combo(row)} FPS"] = _num(row.fps, ".1f") if ok else ""
    return _md(pd.DataFrame(list(table.values())).fillna(""))


def latency_detail(frame: pd.DataFrame) -> str:
    ok = frame[frame.latency_ms_median.notna()]
    if ok.empty:
        return "No cell was measured.\n"
    rows = [{"Model": r.model, "Backend": r.backend, "Precision": r.precision, "Batch": r.batch,
             "median": _num(r.latency_ms_median, ".2f"), "mean": _num(r.latency_ms_mean, ".2f"),
             "p90": _num(r.latency_ms_p90, ".2f"), "p95": _num(r.latency_ms_p95, ".2f"),
             "p99": _num(r.latency_ms_p99, ".2f"), "std": _num(r.latency_ms_std, ".2f"),
             "CoV": _num(100 * r.latency_cov, ".1f") + " %" + (
                 " (noisy)" if r.latency_cov > HIGH_COV else ""),
             "FPS": _num(r.fps, ".1f"), "samples": int(r.latency_samples)}
            for r in ok.itertuples()]
    return _md(pd.DataFrame(rows))


def accuracy_table(frame: pd.DataFrame) -> str:
    """One row per model and metric; each backend's value and its delta vs PyTorch fp32."""
    rows = []
    for model, group in frame.groupby("model", sort=False):
        reference = group[(group.backend == REFERENCE[0]) & (group.precision == REFERENCE[1])]
        for metric in METRICS:
            if metric not in {"bbox_mAP", "segm_mAP", "mIoU", "aAcc"} or group[metric].isna().all():
                continue
            ref = reference[metric].iloc[0] if not reference.empty else float("nan")
            line = {"Model": model, "Metric": f"{metric} ({METRIC_NOTES[metric]})"}
            fmt = ".3f" if metric.endswith("mAP") else ".2f"
            for row in group.itertuples():
                value = getattr(row, metric)
                if pd.isna(value):
                    line[_combo(row)] = row.status if row.status != "ok" else ""
                    continue
                delta = "" if pd.isna(ref) else f" ({value - ref:+{fmt}})"
                line[_combo(row)] = _num(value, fmt) + delta
            rows.append(line)
    if not rows:
        return "No cell was evaluated.\n"
    return _md(pd.DataFrame(rows).fillna(""))


def problems_table(frame: pd.DataFrame) -> str:
    bad = frame[frame.status != "ok"]
    if bad.empty:
        return "Every cell ran.\n"
    rows = [{"Model": r.model, "Backend": r.backend, "Precision": r.precision,
             "Status": r.status, "Reason": r.reason.replace("\n", " ").replace("|", "\\|")}
            for r in bad.itertuples()]
    return _md(pd.DataFrame(rows))


def environment(records: list[dict[str, Any]]) -> str:
    ok = [r for r in records if r["status"] == "ok"] or records
    if not ok:
        return "No results yet.\n"
    prov = ok[0]["provenance"]
    versions = pd.DataFrame([{"Package": k, "Version": v} for k, v in prov["versions"].items()])
    hw = prov["hardware"]
    commits = sorted({r["provenance"]["git_commit"] for r in records})
    created = sorted(r["provenance"]["created"] for r in records)
    threads = sorted({str(r["settings"].get("threads")) for r in records
                      if r["step"] == "measure" and "threads" in r["settings"]})
    lines = [f"- CPU: {hw['cpu']} ({hw['cores']} usable cores, {hw['machine']}, {hw['system']})",
             f"- Intra-op threads per backend: {', '.join(threads) or 'n/a'}",
             f"- deploybench commit(s): {', '.join(commits)}",
             f"- Results produced: {created[0]} to {created[-1]} (UTC)", ""]
    return "\n".join(lines) + "\n" + _md(versions)


def render(frame: pd.DataFrame, records: list[dict[str, Any]], profile: str) -> str:
    measured = [r for r in records if r["step"] == "measure" and r["status"] == "ok"]
    rule = measured[0]["settings"]["stopping_rule"] if measured else None
    timing = ("" if rule is None else
              f" Warm-up of at least {rule['warmup_iters']} calls and "
              f"{rule['warmup_seconds']:g} s, "
              f"then timed until at least {rule['min_iters']} calls and {rule['min_seconds']:g} s.")
    parts = [
        f"# Benchmark: {profile}\n",
        "Generated by `deploybench report` from the pipeline's result files; do not edit by hand. "
        "Rerun `snakemake --cores N` to refresh it.\n",
        "## Latency\n",
        f"Median latency in ms, **{SCOPE}**; FPS = batch x 1000 / median.{timing}\n",
        latency_table(frame),
        "### Latency statistics\n",
        f"All in ms, {SCOPE}. CoV above {100 * HIGH_COV:g} % is flagged noisy (as trtexec does).\n",
        latency_detail(frame),
        "## Accuracy\n",
        "The whole test split through the model's own test pipeline, the backend's network, the "
        "model's own post-processing (`predict_by_feat` / `postprocess_result`) and metric "
        "(mmdet `CocoMetric`, mmseg `IoUMetric`). In brackets: the difference to PyTorch fp32 "
        "in this same environment.\n",
        accuracy_table(frame),
        "## Cells that did not run\n",
        problems_table(frame),
        "## Environment\n",
        environment(records),
    ]
    return "\n".join(parts)


def build_report(results: list[str], profile: str, out_dir: Path) -> int:
    """Write the docs; return the number of failed cells."""
    frame, records = load_results(list(results))
    write_text(out_dir / "benchmark.md", render(frame, records, profile))
    write_text(out_dir / "results.csv", frame.to_csv(index=False, float_format="%.6g",
                                                     lineterminator="\n"))
    return int((frame.status == "failed").sum())
