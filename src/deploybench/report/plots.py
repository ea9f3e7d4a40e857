"""The docs' figures, drawn by matplotlib as SVG.

Text stays text (small, diffable files), and nothing in a file depends on when or where it was
drawn: no date, no matplotlib version, ids from a fixed salt; so the same results give the
same bytes. Each backend has one colour and marker in every figure of every profile; the
precision is the marker's fill (fp32 full, fp16 half, int8 hollow).

Every figure is one column of panels, WIDTH wide: on a phone (GitHub's page is 358 px wide in
a 390 px window) it shows at its own size, and its smallest text (7.5 pt) reads at 10 px; on
a laptop it is not stretched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deploybench.atomic import atomic_path
from deploybench.backends import names
from deploybench.backends.registry import specs
from deploybench.metrics import METRICS, TASK_METRIC
from deploybench.report.summary import order_index

FILL = {"fp32": "full", "fp16": "left", "int8": "none"}
STAGE_COLOURS = {"decode": "#c7c7c7", "preprocess": "#9edae5", "to_device": "#dbdb8d",
                 "network": "#1f77b4", "to_host": "#bcbd22", "proposals": "#ff9896",
                 "roi_bbox": "#d62728", "roi_mask": "#e377c2", "mask_post": "#f7b6d2",
                 "postprocess": "#ff7f0e"}
RC = {"svg.hashsalt": "deploybench", "svg.fonttype": "none", "font.family": "DejaVu Sans",
      "font.size": 8, "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "legend.fontsize": 7.5,
      "axes.titlesize": 8, "axes.grid": True, "grid.alpha": 0.3, "axes.axisbelow": True}
WIDTH = 3.75  # inches: 360 px, a phone's page width
LEGEND_COLUMNS = 3
# Always drawn (empty figures say why); throughput only where a batch > 1 was measured.
FIGURES = ("latency-accuracy.svg", "stages.svg", "latency-distribution.svg")
THROUGHPUT = "throughput.svg"


def _style(backend: str) -> tuple[str, str]:
    """The backend's colour and marker (its spec's); a backend no longer registered (older
    records) in grey."""
    known = specs().get(backend)
    return known.style if known else ("#7f7f7f", "*")


def _log_ms(ax: Any) -> None:
    """A log-scale ms axis labelled in plain numbers (5, 10, 20), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _ordered(backends: Any) -> list[str]:
    """The backends in the project's order, any other after them by name."""
    return sorted(set(backends), key=lambda b: (order_index(names(), b), b))


def _grid(count: int, height: float = 2.6) -> tuple[Any, list[Any]]:
    """One panel per row."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(count, 1, figsize=(WIDTH, height * count), squeeze=False)
    return fig, list(axes[:, 0])


def _legend(fig: Any, backends: list[str], precisions: list[str]) -> int:
    """The figure's legend at its foot; the rows it takes."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=_style(b)[0], marker=_style(b)[1], linestyle="", label=b)
               for b in backends]
    handles += [Line2D([], [], color="#555555", marker="o", fillstyle=FILL.get(p, "full"),
                       linestyle="", label=p) for p in precisions]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), LEGEND_COLUMNS),
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    return math.ceil(len(handles) / LEGEND_COLUMNS)


def _save(fig: Any, path: Path, legend_rows: int = 1) -> None:
    import matplotlib.pyplot as plt

    # Room at the bottom for the figure legend: about a quarter inch per row.
    fig.tight_layout(rect=(0, min(0.5, 0.27 * legend_rows / fig.get_figheight()), 1, 1))
    with atomic_path(path, suffix=".svg") as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


def _empty(path: Path, why: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    _save(fig, path, 0)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both latency (lower) and metric (higher), by
    latency."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def latency_accuracy(frame: pd.DataFrame, path: Path) -> None:
    """Per model: network latency (median, log scale) against its task's metric, one point
    per backend x precision, the Pareto front drawn."""
    import matplotlib.pyplot as plt  # noqa: F401 - the backend is set by `write_figures`

    ok = frame[(frame.batch == 1) & frame.latency_ms_median.notna()]
    models = []
    for (model, task, shape, device), group in ok.groupby(
            ["model", "task", "resolution", "device"], sort=False):
        metric = TASK_METRIC.get(task, "")
        if metric in group and group[metric].notna().any():
            models.append((f"{model} {shape} ({device})", task, group[group[metric].notna()]))
    if not models:
        _empty(path, "No cell has both a latency and an accuracy.")
        return
    fig, axes = _grid(len(models))
    for ax, (title, task, group) in zip(axes, models, strict=True):
        metric = TASK_METRIC[task]
        for row in group.itertuples():
            colour, marker = _style(row.backend)
            ax.plot(row.latency_ms_median, getattr(row, metric), marker=marker, color=colour,
                    fillstyle=FILL.get(row.precision, "full"), linestyle="", markersize=7)
        front = pareto(list(zip(group.latency_ms_median, group[metric], strict=True)))
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#333333",
                linewidth=0.8, linestyle="--", label="Pareto front")
        _log_ms(ax)
        low, high = float(group[metric].min()), float(group[metric].max())
        # At least 5 % of the metric's value from bottom to top: differences in the third
        # decimal do not fill the axis as if they mattered.
        pad = max(0.0, 0.05 * abs(high) - (high - low)) / 2 + 0.05 * max(high - low, 1e-9)
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(title)
        ax.set_xlabel("network latency, median ms (log scale)")
        ax.set_ylabel(METRICS[metric].label)
    _save(fig, path, _legend(fig, _ordered(ok.backend), sorted(set(ok.precision))))


def stage_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cell's stage breakdown: its measure record that has one (the first repeat)."""
    seen, firsts = set(), []
    for r in records:
        c = r["cell"]
        key = (c["model"], c.get("shape", ""), c["backend"], c.get("device", "cpu"),
               c["precision"], c["batch"])
        if r["step"] == "measure" and r["status"] == "ok" and r.get("stages") and key not in seen:
            seen.add(key)
            firsts.append(r)
    return firsts


def stage_bars(records: list[dict[str, Any]], path: Path) -> None:
    """Per model: end to end as stacked bars of its stages (median ms), one bar per backend,
    precision and preprocessing path."""
    by_model: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for r in stage_records(records):
        c = r["cell"]
        for name, stages in r["stages"].items():
            if not isinstance(stages, dict) or "stages_ms" not in stages:
                continue
            label = f"{c['backend']} {c['precision']} ({c.get('device', 'cpu')})\n{name}"
            medians = {s: v["median"] for s, v in stages["stages_ms"].items()}
            by_model.setdefault(f"{c['model']} {c.get('shape', '')}", []).append((label, medians))
    if not by_model:
        _empty(path, "No cell was timed end to end.")
        return
    import matplotlib.pyplot as plt

    rows = sum(len(bars) for bars in by_model.values())
    fig, axes = plt.subplots(len(by_model), 1, figsize=(WIDTH, 1.2 + 0.34 * rows + 0.6 *
                                                        len(by_model)), squeeze=False,
                             gridspec_kw={"height_ratios": [len(b) for b in by_model.values()]})
    used: list[str] = []
    for ax, (model, bars) in zip(axes[:, 0], by_model.items(), strict=True):
        labels = [label for label, _ in bars]
        left = np.zeros(len(bars))
        for stage, colour in STAGE_COLOURS.items():
            widths = np.array([medians.get(stage, 0.0) for _, medians in bars])
            if widths.any():
                ax.barh(labels, widths, left=left, color=colour, label=stage, height=0.7)
                left += widths
                if stage not in used:
                    used.append(stage)
        ax.invert_yaxis()
        ax.set_title(model)
        ax.set_xlabel("median ms per image, stage by stage")
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=STAGE_COLOURS[s], label=s) for s in used],
               loc="lower center", ncol=min(len(used), LEGEND_COLUMNS), frameon=False)
    _save(fig, path, math.ceil(len(used) / LEGEND_COLUMNS))


def latency_distribution(records: list[dict[str, Any]], path: Path) -> None:
    """Per model: each cell's latency samples (every repeat pooled) as a box plot, the noise
    the medians above come from."""
    cells: dict[str, dict[tuple[str, str, str], list[float]]] = {}
    for r in records:
        c = r["cell"]
        if r["step"] != "measure" or r["status"] != "ok" or c["batch"] != 1:
            continue
        model = f"{c['model']} {c.get('shape', '')}"
        key = (c["backend"], c["precision"], c.get("device", "cpu"))
        cells.setdefault(model, {}).setdefault(key, []).extend(r.get("samples_ms") or [])
    cells = {m: {k: v for k, v in group.items() if v} for m, group in cells.items()}
    cells = {m: group for m, group in cells.items() if group}
    if not cells:
        _empty(path, "No latency samples.")
        return
    fig, axes = _grid(len(cells), height=1.3 + 0.3 * max(len(g) for g in cells.values()))
    for ax, (model, group) in zip(axes, cells.items(), strict=True):
        keys = list(group)
        parts = ax.boxplot([group[k] for k in keys], orientation="horizontal",
                           tick_labels=[f"{b} {p}" for b, p, _ in keys], whis=(5, 95),
                           showfliers=False, patch_artist=True)
        for box, (backend, _, _) in zip(parts["boxes"], keys, strict=True):
            box.set_facecolor(_style(backend)[0])
            box.set_alpha(0.6)
        _log_ms(ax)
        ax.invert_yaxis()
        ax.set_title(model)
        ax.set_xlabel("network latency per call, ms (log scale)")
    fig.text(0.5, 0.01, "box: quartiles, line: median;\nwhiskers: 5th to 95th percentile",
             ha="center")
    _save(fig, path, 2)


def throughput(frame: pd.DataFrame, path: Path) -> bool:
    """Per model: images per second against batch size; False (nothing drawn) where no batch
    above 1 was planned, an empty figure saying why where none was measured."""
    if frame.empty or frame.batch.max() <= 1:
        return False
    ok = frame[frame.fps.notna()]
    groups = [(f"{m} {s}", g) for (m, s), g in ok.groupby(["model", "resolution"], sort=False)
              if g.batch.nunique() > 1]
    if not groups:
        _empty(path, "No model was measured at more than one batch size: see the detail "
               "page's cells that did not run.")
        return True
    fig, axes = _grid(len(groups))
    for ax, (title, group) in zip(axes, groups, strict=True):
        for (backend, precision, device), cell in group.groupby(
                ["backend", "precision", "device"], sort=False):
            colour, marker = _style(backend)
            cell = cell.sort_values("batch")
            ax.plot(cell.batch, cell.fps, color=colour, marker=marker,
                    fillstyle=FILL.get(precision, "full"), label=f"{backend} {precision} "
                    f"({device})")
        ax.set_xscale("log", base=2)
        batches = sorted(set(group.batch))  # the measured batches, as plain numbers
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_title(title)
        ax.set_xlabel("batch size")
        ax.set_ylabel("images / s")
    _save(fig, path, _legend(fig, _ordered(ok.backend), sorted(set(ok.precision))))
    return True


def write_figures(frame: pd.DataFrame, records: list[dict[str, Any]], out_dir: Path
                  ) -> list[str]:
    """Draw every figure into `out_dir`; the file names drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draw: dict[str, Callable[[Path], Any]] = {
        "latency-accuracy.svg": lambda p: latency_accuracy(frame, p),
        "stages.svg": lambda p: stage_bars(records, p),
        "latency-distribution.svg": lambda p: latency_distribution(records, p)}
    with plt.rc_context(RC):
        for name, fn in draw.items():
            fn(out_dir / name)
        drawn = list(FIGURES)
        if throughput(frame, out_dir / THROUGHPUT):
            drawn.append(THROUGHPUT)
    return drawn
