"""ONNX Runtime on the CPU execution provider, running the exported tensor-mode network."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploybench.backends.base import Backend, Runner, onnx_artifact
from deploybench.models.adapter import ModelAdapter


class OrtRunner(Runner):
    def __init__(self, model_path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model_path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape

    def infer(self, inputs: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: inputs})


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    module = "onnxruntime"
    artifact = "onnx"
    # int8: a statically quantized (QDQ) model from the build step.
    precisions = ("fp32", "int8")

    def load(self, adapter: ModelAdapter, artifact: Path | None, precision: str, device: str,
             threads: int) -> Runner:
        return OrtRunner(onnx_artifact(artifact), threads)
