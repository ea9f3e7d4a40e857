"""A two-stage detector's RoI heads as graphs of their own, run by the cell's backend.

The first graph (backbone + neck + RPN head) ends where the proposals begin. The RPN's decode +
NMS and RoIAlign have no exact ONNX form in mmcv 2.1, so they stay in PyTorch as the glue; what
follows each RoIAlign, the bbox head (shared FCs, class scores, box deltas) and the mask head
(convs, deconv, mask logits), is plain convolution and matmul and exports exactly. Each head is
exported with a dynamic RoI axis (the count varies per image) next to the first graph, as
`<first graph's stem>.<name>.onnx`; a backend that runs ONNX loads them beside it, and the
model's own RoI-head code then calls them where it would call the PyTorch heads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploybench.atomic import atomic_path
from deploybench.errors import UserError

# What each graph holds, in the order the RoI head calls them.
GRAPHS = {"roi_bbox": "bbox head", "roi_mask": "mask head"}
# runs a head graph: RoI features (N, C, h, w) in, the head's outputs out (host arrays)
HeadGraph = Callable[[np.ndarray], list[np.ndarray]]


def heads(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The exportable RoI heads of `model`, by graph name; empty where the RoI head is not a
    single-stage `StandardRoIHead` (a cascade's per-stage heads stay in PyTorch)."""
    roi = getattr(model, "roi_head", None)
    if roi is None:
        return {}
    from mmdet.models.roi_heads import StandardRoIHead

    if type(roi) is not StandardRoIHead or roi.with_shared_head:
        return {}
    found = {"roi_bbox": roi.bbox_head}
    if roi.with_mask and not roi.share_roi_extractor:
        found["roi_mask"] = roi.mask_head
    return found


def sample_input(model: torch.nn.Module, name: str, rois: int = 8) -> torch.Tensor:
    """RoI features of the shape the head takes: (rois, channels, size, size)."""
    roi = model.roi_head
    extractor = roi.bbox_roi_extractor if name == "roi_bbox" else roi.mask_roi_extractor
    size = extractor.roi_layers[0].output_size
    size = size if isinstance(size, tuple) else (size, size)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(rois, extractor.out_channels, *size, generator=generator)


def graph_path(first_graph: Path | str, name: str) -> Path:
    """Beside the first graph, in its format (`.onnx`, or an OpenVINO IR's `.xml`)."""
    first_graph = Path(first_graph)
    return first_graph.with_name(f"{first_graph.stem}.{name}{first_graph.suffix}")


def output_names(name: str) -> list[str]:
    return ["cls_score", "bbox_pred"] if name == "roi_bbox" else ["mask_logits"]


def export(model: torch.nn.Module, first_graph: Path | str, opset: int) -> dict[str, Any]:
    """Write each head's graph beside `first_graph` (atomically); what the export records."""
    import onnx

    exported = {}
    for name, head in heads(model).items():
        out = graph_path(first_graph, name)
        names = output_names(name)
        with atomic_path(out, suffix=".onnx") as tmp:
            with torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(head, (sample_input(model, name),), str(tmp),
                                  input_names=["rois"], output_names=names, opset_version=opset,
                                  do_constant_folding=True, dynamo=False,
                                  dynamic_axes={n: {0: "rois"} for n in ["rois", *names]})
            try:
                onnx.checker.check_model(str(tmp))
            except onnx.checker.ValidationError as err:
                raise UserError(f"exported {GRAPHS[name]} fails onnx.checker: {err}") from err
        exported[name] = {"onnx": str(out), "holds": GRAPHS[name], "output_names": names}
    return exported


def present(model: torch.nn.Module, first_graph: Path | None) -> dict[str, Path]:
    """The head graphs beside `first_graph` (exported with it, or built with it: the int8
    and fp16 builds make theirs too; a TensorRT engine has none, its heads run in PyTorch)."""
    if first_graph is None or Path(first_graph).suffix not in (".onnx", ".xml"):
        return {}
    found = {name: graph_path(first_graph, name) for name in heads(model)}
    return {name: path for name, path in found.items() if path.is_file()}


@contextlib.contextmanager
def run_heads_with(model: torch.nn.Module, graphs: dict[str, HeadGraph],
                   device: str) -> Iterator[None]:
    """Inside: the RoI head's calls of its bbox / mask head go to `graphs` (on the host, the
    results back on `device`); outside, the PyTorch heads again."""
    modules = heads(model)
    patched = []
    try:
        for name, run in graphs.items():
            head = modules[name]

            def forward(x: torch.Tensor, _run: HeadGraph = run, _head: Any = head) -> Any:
                if x.shape[0] == 0:  # no RoIs: the head's own empty outputs
                    return type(_head).forward(_head, x)
                outputs = [torch.from_numpy(np.asarray(o)).to(device)
                           for o in _run(np.ascontiguousarray(x.float().cpu().numpy()))]
                return tuple(outputs) if len(outputs) > 1 else outputs[0]

            head.forward = forward
            patched.append(head)
        yield
    finally:
        for head in patched:
            del head.forward


def calibration_inputs(model: torch.nn.Module, samples: list[tuple[torch.Tensor, list]],
                       per_image: int = 32) -> dict[str, list[np.ndarray]]:
    """The RoI features each head sees while the PyTorch model predicts the calibration
    images, the first `per_image` RoIs of each call (the proposals come ranked by score): what
    an int8 build of the head graphs calibrates on."""
    captured: dict[str, list[np.ndarray]] = {name: [] for name in heads(model)}
    hooks = []
    for name, head in heads(model).items():
        def keep(_module: Any, args: tuple, _name: str = name) -> None:
            if args[0].shape[0]:
                captured[_name].append(np.ascontiguousarray(
                    args[0][:per_image].float().cpu().numpy()))
        hooks.append(head.register_forward_pre_hook(keep))
    try:
        with torch.inference_mode():
            for batch, data_samples in samples:
                model.predict(batch, [s.clone() for s in data_samples])
    finally:
        for hook in hooks:
            hook.remove()
    return captured
