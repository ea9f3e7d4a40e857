"""Notes on models whose backends do not run the whole network as one graph: two-stage
detectors' split graphs, and slide inference's crops."""

from __future__ import annotations

from typing import Any


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
