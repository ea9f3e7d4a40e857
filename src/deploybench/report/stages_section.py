"""The detail page's *End to end, stage by stage*: where each cell's time goes per image, in the
stage study's shape."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.measure.run import END_TO_END
from deploybench.report import plots
from deploybench.report.graph_notes import split_note
from deploybench.report.markdown import md, num

TITLE = "End to end, stage by stage"


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
            line |= {label: num(ms[s]["median"], ".2f") for s, label in STAGE_LABELS.items()
                     if s in ms}
            line |= {"end to end": num(e2e["median"], ".2f"), "e2e p90": num(e2e["p90"], ".2f"),
                     "e2e CoV": num(100 * e2e["cov"], ".1f") + " %",
                     "network share": num(100 * ms["network"]["median"] / e2e["median"], ".0f")
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
        out.append(md(frame))
    return "\n".join(out)


def section(records: list[dict[str, Any]]) -> list[str]:
    """The stage table, with the two preprocessing paths and what *end to end* includes."""
    return [
        f"## {TITLE}\n",
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
    ]
