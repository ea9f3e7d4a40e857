"""The detail page's *Output parity*: each cell's raw outputs and post-processed predictions
against PyTorch fp32 on the CPU."""

from __future__ import annotations

from typing import Any

import pandas as pd

from deploybench.measure.group import REFERENCE
from deploybench.report.markdown import md, num

TITLE = "Output parity"


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
                "max abs err": num(r.parity_max_abs, ".2e"),
                "max rel err": num(r.parity_max_rel, ".2e"),
                "min cosine": num(r.parity_min_cosine, ".6f"),
                "worst output": r.parity_worst_output or ""}
        if r.task != "segmentation":
            found = _share(r.boxes_matched, r.reference_boxes)
            kept = _share(r.cell_boxes_matched, r.cell_boxes)
            line["agreement"] = (f"reference boxes found {found}; cell boxes in the reference "
                                 f"{kept}; mean score diff "
                                 f"{num(r.mean_score_diff, '.4f') or 'n/a'}"
                                 + (f", mask IoU {r.mean_mask_iou:.4f}"
                                    if pd.notna(r.mean_mask_iou) else ""))
        else:
            line["agreement"] = f"{100 * r.pixel_agreement:.2f} % pixels agree"
        rows.append(line)
    return md(pd.DataFrame(rows))


def parity_outputs(records: list[dict[str, Any]]) -> str:
    rows = [{"Model": r["cell"]["model"], "Input": r["cell"].get("shape", ""),
             "Backend": r["cell"]["backend"],
             "Device": r["cell"].get("device", "cpu"), "Precision": r["cell"]["precision"],
             "Output": o["output"], "max abs": num(o["max_abs"], ".2e"),
             "max rel": num(o["max_rel"], ".2e"), "cosine": num(o["cosine"], ".6f")}
            for r in records if r["step"] == "evaluate" and r.get("parity")
            and (r["cell"]["backend"], r["cell"]["precision"], r["cell"].get("device", "cpu"))
            != (*REFERENCE, "cpu")
            for o in r["parity"]["outputs"]]
    if not rows:
        return ""
    return ("<details><summary>Every output</summary>\n\n" + md(pd.DataFrame(rows))
            + "\n</details>\n")


def section(frame: pd.DataFrame, records: list[dict[str, Any]]) -> list[str]:
    """The parity table and, folded, every output's errors."""
    return [
        f"## {TITLE}\n",
        "Each cell against PyTorch fp32 (CPU) on the same preprocessed test images. Errors over "
        "all raw network outputs, the worst output shown: max |cell - reference|, that over "
        "max |reference| (*rel*), and the lowest cosine similarity. Agreement after the model's "
        "post-processing: detection, both ways: the reference boxes (score >= the configured "
        "threshold) that the cell finds with the same label at IoU >= the configured IoU, and "
        "the cell's boxes (score >= the threshold) that the reference has, so that boxes a "
        "backend loses and boxes it adds both show; n/a where there is no such box. Then the "
        "mean score difference of the matched pairs (with instance masks, also their mean mask "
        "IoU). Segmentation: the share of pixels with the same label.\n",
        parity_table(frame),
        parity_outputs(records),
    ]
