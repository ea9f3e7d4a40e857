"""The detail page's *Model zoo*: the mmdetection and mmsegmentation model-zoo tables' columns
(Lr schd, Mem, train s/iter, inference fps, the metric, the published metric, the config), one
row per model, device and training precision, from the pipeline's own training and inference
results."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.metrics import METRICS
from deploybench.report.markdown import md, num, origin

TITLE = "Model zoo: training and inference"

# Each codebase's own table: which inference fps it shows as "Inf time", and its metrics.
DETECTION = ("detection", "instance_segmentation")
TABLES = {
    "mmdetection": {"tasks": DETECTION, "fps": "inf_fps_overall", "other": "inf_fps_forward_post",
                    "fps_label": "Inf time (fps)", "other_label": "fps, forward + post",
                    "fps_note": "overall: loading + forward + post-processing",
                    "metrics": ("bbox_mAP", "segm_mAP")},
    "mmsegmentation": {"tasks": ("segmentation",), "fps": "inf_fps_forward_post",
                       "other": "inf_fps_overall", "fps_label": "Inf time (fps)",
                       "other_label": "fps, with loading", "metrics": ("mIoU",),
                       "fps_note": "forward + post-processing, no data loading"},
}
HEADERS = {"bbox_mAP": "box AP", "segm_mAP": "mask AP", "mIoU": "mIoU"}

INTRO = (
    "The model-zoo pages' columns, from this pipeline's runs. *Lr schd* is the config's "
    "training length (1x = 12 epochs). *Train time (s/iter)* is the median over timed "
    "iterations of the model's own training step at the config's batch size (the *Batch* "
    "column: images per iteration on one device), with its 95 % interval's half-width and "
    "*data / compute* split as mmengine's IterTimerHook splits it (data: the wait for the "
    "dataloader's next batch; compute: forward, losses, backward and the optimizer step, "
    "synchronized on CUDA). *Mem (GB)* is `torch.cuda.max_memory_allocated()` during training "
    "on CUDA, as the zoo pages define it; on the CPU it is the training process's peak "
    "resident memory above its level before the first iteration, marked *(RSS)*. *Inf time "
    "(fps)* is each codebase's own definition, from the PyTorch fp32 cell's end-to-end stage "
    "timing at batch 1 on the same device: mmdetection's is overall (image loading, the test "
    "pipeline, forward and post-processing: 1000 / end-to-end median ms); mmsegmentation's is "
    "forward and post-processing alone (its benchmark starts the clock after the data loader "
    "and the data preprocessor); each table also gives the other definition. The metric is "
    "PyTorch fp32's on this run's test split, on the zoo pages' scale (AP in %), and "
    "*published* the zoo's own. *trained*: when, by which commit and in which run the "
    "training was timed, and the inference columns' run where it differs. How training is "
    "timed: docs/methodology.md, *Training*.\n")


def _scaled(value: Any, metric: str) -> str:
    spec = METRICS[metric]
    return num(value / spec.zoo_scale if pd.notna(value) else None,
               ".1f" if spec.zoo_scale != 1 else ".2f")


def _memory(row: Any) -> str:
    if pd.isna(row.train_mem_mib):
        return ""
    rss = "" if row.device == "cuda" else " (RSS)"
    return f"{row.train_mem_mib / 1024:.2f}{rss}"


def _train_time(row: Any) -> str:
    if row.status != "ok":
        return f"{row.status}: {row.reason}"
    marks = [m for m, on in (("busy machine", row.train_busy),
                             ("time cap", row.train_stopped == "time cap"))
             if pd.notna(on) and bool(on)]
    text = f"{row.train_s_iter_median:.3f} ±{row.train_rel_halfwidth:.1%}"
    return text + (f" ({', '.join(marks)})" if marks else "")


def _inference(frame: pd.DataFrame, model: str, device: str) -> Any:
    """The model's PyTorch fp32 cell at batch 1 on `device`: its fps and its metric."""
    rows = frame[(frame.model == model) & (frame.backend == "pytorch") &
                 (frame.precision == "fp32") & (frame.batch == 1) & (frame.device == device)]
    return next(rows.itertuples(), None)


def _rows(frame: pd.DataFrame, train: pd.DataFrame) -> list[tuple[Any, Any, Any]]:
    """(model, train row or None, inference row or None) in the order the models appear:
    each trained (or failed) training cell; a model without one gets a row per device its
    PyTorch fp32 cell ran on (none without one: nothing of the zoo's columns to show)."""
    out = []
    for model in dict.fromkeys([*frame.model, *train.model]):
        mine = train[(train.model == model) & (train.status != "skipped")]
        if len(mine):
            out += [(model, t, _inference(frame, model, t.device)) for t in mine.itertuples()]
            continue
        devices = frame[(frame.model == model) & (frame.status == "ok")].device.unique()
        out += [(model, None, inf) for d in devices
                if (inf := _inference(frame, model, d)) is not None]
    return out


def _training(t: Any) -> dict[str, str]:
    """The training columns of a training row, or blanks and "not trained" without one."""
    if t is None:
        return {"Training": "", "Batch": "", "Lr schd": "", "Mem (GB)": "",
                "Train time (s/iter)": "not trained", "data / compute (s)": ""}
    return {"Training": t.precision, "Batch": str(int(t.batch)) if t.batch else "",
            "Lr schd": t.lr_schedule if pd.notna(t.lr_schedule) else "",
            "Mem (GB)": _memory(t), "Train time (s/iter)": _train_time(t),
            "data / compute (s)": (f"{t.train_data_s_median:.3f} / "
                                   f"{t.train_compute_s_median:.3f}" if t.status == "ok" else "")}


def _line(model: str, t: Any, inf: Any, table: dict[str, Any]) -> dict[str, str]:
    line = {"Model": model, "Device": t.device if t is not None else inf.device, **_training(t),
            table["fps_label"]: num(getattr(inf, table["fps"], None), ".1f"),
            table["other_label"]: num(getattr(inf, table["other"], None), ".1f")}
    for metric in table["metrics"]:
        line[HEADERS[metric]] = _scaled(getattr(inf, metric, None), metric)
    line["published"] = ", ".join(f"{HEADERS[m]} {_scaled(v, m)}" for m in table["metrics"]
                                  if pd.notna(v := getattr(inf, f"published_{m}", None)))
    trained = t is not None and pd.notna(t.config) and t.config
    line["Config"] = f"`{t.config}`" if trained else ""
    line["trained"] = _trained(t, inf)
    return line


def _trained(t: Any, inf: Any) -> str:
    """When, by which commit and in which run the training row was measured, and the runs of
    its inference columns where they differ (a publish keeps each step's newest result)."""
    where = origin(t.measured_at, t.git_commit, t.run) if t is not None else ""
    others = sorted({r for r in (getattr(inf, "run", None), getattr(inf, "evaluate_run", None))
                     if isinstance(r, str) and r and (t is None or r != t.run)})
    return where + ("; " if where and others else "") + (
        f"inference from run {', '.join(others)}" if others else "")


def _skipped(train: pd.DataFrame) -> list[str]:
    skipped = train[train.status == "skipped"]
    if not len(skipped):
        return []
    by_reason: dict[str, list[str]] = {}
    for t in skipped.itertuples():
        by_reason.setdefault(t.reason, []).append(f"{t.model} {t.device} {t.precision}")
    return ["Training cells not run here:\n", *(f"- {', '.join(cells)}: {reason}"
                                                for reason, cells in by_reason.items()), ""]


def zoo_tables(frame: pd.DataFrame, train: pd.DataFrame) -> list[str]:
    """One table per codebase (its own fps definition first), then the skipped cells."""
    out = []
    rows = _rows(frame, train)
    tasks = {m: t for m, t in [*zip(train.model, train.task, strict=True),
                               *zip(frame.model, frame.task, strict=True)] if t}
    for codebase, table in TABLES.items():
        lines = [_line(m, t, inf, table) for m, t, inf in rows if tasks.get(m) in table["tasks"]]
        if not lines:
            continue
        out += [f"### {codebase}'s columns\n", f"*Inf time (fps)*: {table['fps_note']}.\n",
                md(pd.DataFrame(lines))]
    return out + _skipped(train)


def section(frame: pd.DataFrame, train: pd.DataFrame) -> list[str]:
    return [f"## {TITLE}\n", INTRO, *zoo_tables(frame, train)]
