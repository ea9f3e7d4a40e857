"""The front page's answer to "which backend for this model, at what accuracy": one row per
model, one column per backend and precision, each cell "latency / metric", the fastest cell
whose accuracy passed its gate in bold. In the seeds' shape, and narrow enough for a GitHub page:
at most `COLUMNS` backend columns per table (more combinations: more tables, as even as can be)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.backends import PRECISIONS, names
from deploybench.measure.group import REFERENCE
from deploybench.metrics import METRICS, TASK_METRIC

# Backend x precision columns per table, with the model column 6 in all: cells and headers break
# into lines (latency over metric, backend over precision), and six such columns fit the width
# GitHub gives a folder's README beside the file tree on a laptop (about 820 px of text) without
# a scroll bar; tests/test_docs_in_browser.py measures it. More combinations: more tables.
COLUMNS = 5
# The metric each task is judged by, and how the summary prints it.


def _combo_key(combo: tuple[str, str, str]) -> tuple:
    backend, device, precision = combo
    return (device != "cpu", device, order_index(names(), backend), backend,
            order_index(PRECISIONS, precision))


def order_index(order: tuple[str, ...], name: str) -> int:
    """`name`'s place in `order`; after all of them where it is not in it."""
    return order.index(name) if name in order else len(order)


def _label(combo: tuple[str, str, str], devices: int) -> str:
    backend, device, precision = combo
    return f"{backend}<br>{precision}" + (f" {device}" if devices > 1 or device != "cpu" else "")


def _gate_failed(passed: Any) -> bool:
    """False where the cell passed its gate or none applies (PyTorch fp32, no metric)."""
    return passed is not None and not pd.isna(passed) and not bool(passed)


def _cell(row: Any, metric: str, fmt: str) -> str:
    latency = f"{row.latency_ms_median:.2f} ms"
    speed = "" if pd.isna(getattr(row, "speedup", float("nan"))) else (
        "ref" if (row.backend, row.precision) == REFERENCE else f"x{row.speedup:.2f}")
    value = getattr(row, metric, None)
    accuracy = "" if value is None or pd.isna(value) else format(value, fmt)
    failed = _gate_failed(row.gate_passed)
    return "<br>".join(part for part in (latency, speed, accuracy,
                                          "gate failed" if failed else "") if part)


def separated(fast: Any, slow: Any) -> bool:
    """Whether `fast` is faster than `slow` beyond doubt: their speed-ups' 95 % intervals apart
    where both are over the same reference in the same window (same device and run); else
    their medians' intervals."""
    same = (fast.device == slow.device and fast.run == slow.run
            and pd.notna(fast.speedup_ci95_low) and pd.notna(slow.speedup_ci95_high))
    if same:
        return fast.speedup_ci95_low > slow.speedup_ci95_high
    return fast.latency_ms_median_ci95_high < slow.latency_ms_median_ci95_low


def fastest(rows: list[Any]) -> list[Any]:
    """The fastest of `rows` whose accuracy passed its gate, and every one it is not told
    apart from (a tie); empty where none passed."""
    passed = sorted((r for r in rows if not _gate_failed(r.gate_passed)),
                    key=lambda r: r.latency_ms_median)
    if not passed:
        return []
    return [passed[0], *(r for r in passed[1:] if not separated(passed[0], r))]


def summary_tables(frame: pd.DataFrame) -> str:
    """The summary: batch 1, the cells that have a latency."""
    ok = frame[(frame.batch == 1) & (frame.status == "ok") & frame.latency_ms_median.notna()]
    if ok.empty:
        return "No cell has a latency yet.\n"
    combos = sorted({(r.backend, r.device, r.precision) for r in ok.itertuples()},
                    key=_combo_key)
    devices = len({c[1] for c in combos})
    rows: dict[tuple[str, str], dict[tuple, str]] = {}
    by_model: dict[tuple[str, str], list[Any]] = {}
    for row in ok.itertuples():
        key = (row.model, row.resolution)
        metric = TASK_METRIC.get(row.task, "")
        rows.setdefault(key, {})[(row.backend, row.device, row.precision)] = _cell(
            row, metric, METRICS[metric].summary_fmt if metric in METRICS else "")
        by_model.setdefault(key, []).append(row)
    best = {key: fastest(cells) for key, cells in by_model.items()}
    tables = []
    per_table = -(-len(combos) // -(-len(combos) // COLUMNS))  # as even as the tables can be
    for start in range(0, len(combos), per_table):
        chunk = combos[start:start + per_table]
        lines = []
        for (model, shape), cells in rows.items():
            line = {"Model": f"{model}<br>{shape}"}
            winners = {(r.backend, r.device, r.precision) for r in best[(model, shape)]}
            for combo in chunk:
                text = cells.get(combo, "")
                if combo in winners:
                    text = _bold(text) + ("<br>tie" if len(winners) > 1 else "")
                line[_label(combo, devices)] = text
            lines.append(line)
        tables.append(pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True) + "\n")
    return "\n".join(tables)


def _bold(text: str) -> str:
    return "<br>".join(f"**{part}**" for part in text.split("<br>"))


INTRO = ("Which backend for each model: **network-only median latency**, under it **the "
         "speed-up over PyTorch fp32** (*ref*: PyTorch fp32 itself), timed side by side in one "
         "window, and **the task's metric** (box AP, mask AP: 0-1; mIoU: %), per backend and "
         "precision, at batch 1. **Bold**: the fastest cell whose accuracy passed its gate, "
         "where its speed-up's 95 % interval separates it from the others; cells it is not told "
         "apart from are bold too, marked *tie*. End-to-end times, intervals and the rest are on "
         "the detail page (*Details*, below).\n")
