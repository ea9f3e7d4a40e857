"""OpenVINO on the CPU: the exported ONNX model (fp32) or the NNCF-quantized IR (int8)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.backends.base import Backend, BackendSpec, Build, Runner

if TYPE_CHECKING:  # not imported at run time: timing an ONNX model needs no mmdet/mmseg
    from deploybench.models.adapter import ModelAdapter


# ONNX operators OpenVINO's ONNX frontend has no conversion rule for, and who has them.
UNSUPPORTED_OPS = {"DeformConv": "deformable convolutions (RepPoints)"}


def unsupported_reason(onnx_model: Path) -> str:
    """Why OpenVINO cannot read this ONNX model ("" where it can)."""
    import onnx

    ops = {node.op_type for node in onnx.load(str(onnx_model), load_external_data=False)
           .graph.node}
    missing = sorted(ops & UNSUPPORTED_OPS.keys())
    if not missing:
        return ""
    import openvino as ov

    what = ", ".join(f"{op} ({UNSUPPORTED_OPS[op]})" for op in missing)
    return (f"OpenVINO {ov.get_version().split('-')[0]} has no ONNX conversion rule for {what}; "
            "ONNX Runtime runs this model")


def read_model(core: Any, model_path: Path) -> Any:
    """`core.read_model`; where it fails on an ONNX model for an operator OpenVINO lacks, the
    cell is skipped with that reason (the graph is parsed only then)."""
    from deploybench.errors import CellSkipped

    try:
        return core.read_model(str(model_path))
    except RuntimeError as err:
        reason = unsupported_reason(model_path) if model_path.suffix == ".onnx" else ""
        if reason:
            raise CellSkipped(reason) from err
        raise


class OpenVinoRunner(Runner):
    def __init__(self, model_path: Path, threads: int) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = read_model(self.core, model_path)
        # Pinned to f32: on CPUs with bf16 support OpenVINO would otherwise silently run bf16
        # (in an int8 IR, the layers NNCF left unquantized).
        self.config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
        self.compiled = self.request = None
        if not self.model.is_dynamic():
            self._compile()

    def _compile(self) -> None:
        self.compiled = self.core.compile_model(self.model, "CPU", self.config)
        self.request = self.compiled.create_infer_request()

    def run(self, inputs: np.ndarray) -> list[np.ndarray]:
        if self.compiled is None:
            # A dynamic-batch export: made static for this cell's batch, in the first call.
            self.model.reshape(list(inputs.shape))
            self._compile()
        # Shared: the request reads the input where it lies and returns views of its own output
        # tensors, so the timed call copies nothing; `to_host` copies them out.
        results = self.request.infer({0: inputs}, share_inputs=True, share_outputs=True)
        return [results[output] for output in self.compiled.outputs]

    def to_host(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.array(o, copy=True) for o in outputs]  # the request's tensors are reused


class OpenVinoBackend(Backend):
    def machine_reason(self, precision: str, device: str) -> str:
        import importlib.util

        if precision == "int8" and importlib.util.find_spec("nncf") is None:
            return "int8 needs NNCF to quantize the model: pip install nncf"
        return ""

    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        assert artifact is not None
        if adapter is not None:
            adapter.attach_head_graphs(artifact, lambda path: head_graph(path, threads))
        return OpenVinoRunner(artifact, threads)


def head_graph(path: Path, threads: int) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A graph run inside post-processing (a two-stage detector's RoI head), compiled with its
    dynamic RoI axis: the count changes from call to call."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(read_model(core, path), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32",
                                   "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> list[np.ndarray]:
        results = request.infer({0: x})
        return [np.array(results[output], copy=True) for output in compiled.outputs]

    return run


SPECS = (BackendSpec(
    name="openvino", backend=OpenVinoBackend, support={"cpu": ("fp32", "int8")}, runs="onnx",
    requires="openvino", packages=("openvino", "nncf"), style=("#9467bd", "D"),
    summary=("the ONNX model with `INFERENCE_PRECISION_HINT=f32` (no silent bf16), inputs and "
             "outputs shared with the request (no copy in the timed call); int8 is the "
             "NNCF-quantized IR"),
    builds=(Build("openvino", "cpu", "int8", "openvino-int8.xml",
                  "deploybench.export.build:openvino_int8", calibrated=True,
                  companions=(".bin",)),)),)
