"""Export the tensor-mode network (backbone, neck, head; no post-processing) to ONNX, and a
two-stage detector's RoI heads as graphs beside it (`models.roi_graphs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from deploybench.atomic import atomic_path
from deploybench.errors import UserError
from deploybench.export.exportable import exportable, minimum_opset
from deploybench.models.adapter import ModelAdapter

EXPORTER = "torch.onnx.export (TorchScript-based)"


def export_onnx(adapter: ModelAdapter, sample: torch.Tensor, out: Path | str,
                opset: int, dynamic_batch: int = 0) -> dict[str, Any]:
    """Write `out` atomically; return what the result records about the export.
    `dynamic_batch` > 0: the batch axis of the input and every output is dynamic (the
    TensorRT build then makes a profile up to that batch)."""
    import onnx

    from deploybench.models import roi_graphs

    # A two-stage detector's RoI heads first: the first graph, written last, implies them.
    head_graphs = roi_graphs.export(adapter.model, out, opset)
    output_names = adapter.output_names(sample)
    opset = max(opset, minimum_opset(adapter.network))  # e.g. DeformConv exists from 19 on
    axes = ({name: {0: "batch"} for name in ["input", *output_names]} if dynamic_batch
            else None)
    with atomic_path(out, suffix=".onnx") as tmp:
        with (torch.inference_mode(False), torch.no_grad(),
              exportable(adapter.network) as rewrites):
            torch.onnx.export(adapter.network, (sample,), str(tmp), input_names=["input"],
                              output_names=output_names, opset_version=opset,
                              do_constant_folding=True, dynamo=False, dynamic_axes=axes)
        try:
            onnx.checker.check_model(str(tmp))
        except onnx.checker.ValidationError as err:
            raise UserError(f"exported ONNX model fails onnx.checker: {err}") from err
    return {"exporter": EXPORTER, "torch": torch.__version__, "onnx": onnx.__version__,
            "opset": opset, "input_shape": list(sample.shape), "input_name": "input",
            "dynamic_batch": dynamic_batch, "rewrites": rewrites,
            "output_names": output_names, **({"head_graphs": head_graphs} if head_graphs else {})}
