"""TensorRT: a serialized engine from the build step, run with `execute_async_v3`.

Device buffers are torch CUDA tensors (no pycuda needed). The runner's own stream carries the
copy to the device and the execution, in that order, and waits for torch's current stream
first (where the tensor preprocessing path made its input); `synchronize` waits for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.backends.base import Backend, BackendSpec, Build, Runner

if TYPE_CHECKING:  # not imported at run time: timing an ONNX model needs no mmdet/mmseg
    from deploybench.models.adapter import ModelAdapter


def batch_profiles(batches: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(min, opt, max) batch of each optimisation profile of a dynamic-batch engine: one per
    batch measured, tuned for it (TensorRT picks kernels for `opt`), the ranges covering every
    batch from 1 to the largest (an evaluation's last, partial batch among them)."""
    profiles, low = [], 1
    for batch in sorted(set(batches)):
        profiles.append((low, batch, batch))
        low = batch + 1
    return profiles


def profile_for(profiles: list[tuple[int, int, int]], batch: int) -> int:
    """The index of the profile a batch runs under: the one whose range holds it."""
    for index, (low, _, high) in enumerate(profiles):
        if low <= batch <= high:
            return index
    raise ValueError(f"batch {batch} is outside every profile of the engine ({profiles}); "
                     "rebuild it for this batch")


class TensorRtRunner(Runner):
    def __init__(self, engine_path: Path) -> None:
        import tensorrt as trt
        import torch

        self.torch = torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path}; rebuild it with "
                               "this TensorRT version (delete the file and rerun)")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.input_name = ""
        self.output_dtypes: dict[str, Any] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name))))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_name, self.input_dtype = name, dtype.dtype
            else:
                self.output_dtypes[name] = dtype.dtype
        self.shape: tuple[int, ...] | None = None
        self.outputs: list[tuple[str, Any]] = []
        # A dynamic-batch engine's profiles, one tuned per batch measured (tensorrt_build).
        self.profiles = [tuple(int(p[0]) for p in self.engine.get_tensor_profile_shape(
            self.input_name, i)) for i in range(self.engine.num_optimization_profiles)]

    def _bind_outputs(self, shape: tuple[int, ...]) -> None:
        """Output buffers for this input shape (a dynamic-batch engine resolves them here,
        under the profile tuned for its batch)."""
        if len(self.profiles) > 1:
            index = profile_for(self.profiles, shape[0])
            if index != self.context.active_optimization_profile:
                self.context.set_optimization_profile_async(index, self.stream.cuda_stream)
        self.context.set_input_shape(self.input_name, shape)
        self.outputs = []
        for name, dtype in self.output_dtypes.items():
            buffer = self.torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=dtype,
                                      device="cuda")
            self.context.set_tensor_address(name, buffer.data_ptr())
            self.outputs.append((name, buffer))
        self.shape = shape

    def to_device(self, inputs: Any) -> Any:
        torch = self.torch
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            return torch.as_tensor(inputs).to("cuda", self.input_dtype).contiguous()

    def run(self, inputs: Any) -> list[Any]:
        # An input made on another stream (the tensor path) must be complete before this one.
        self.stream.wait_stream(self.torch.cuda.current_stream())
        if tuple(inputs.shape) != self.shape:
            self._bind_outputs(tuple(inputs.shape))
        self.context.set_tensor_address(self.input_name, inputs.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return [buffer for _, buffer in self.outputs]

    def synchronize(self) -> None:
        self.stream.synchronize()

    def to_host(self, outputs: list[Any]) -> list[np.ndarray]:
        self.synchronize()
        return [o.float().cpu().numpy() for o in outputs]


class TensorRtBackend(Backend):
    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        assert artifact is not None
        return TensorRtRunner(artifact)


ENGINE = "deploybench.export.build:tensorrt_engine"
SPECS = (BackendSpec(
    name="tensorrt", backend=TensorRtBackend, support={"cuda": ("fp32", "fp16", "int8")},
    runs="onnx", requires="tensorrt", packages=("tensorrt",), style=("#d62728", "X"),
    summary=("serialized engine from the build step, `execute_async_v3` on torch-allocated device "
             "buffers, the copy to the device and the execution on one stream; up to TensorRT 10 "
             "precision by builder flags (TF32 cleared for fp32), from 11 a strongly typed network "
             "from the fp16 / QDQ model; a dynamic-batch engine has a profile tuned for each "
             "batch measured"),
    builds=(
        # Not a cell: the symmetric int8 QDQ model TensorRT int8 is built from (TensorRT takes
        # only symmetric int8; ONNX Runtime's own CPU int8 model has asymmetric uint8
        # activations). Quantized on the CPU, where TensorRT int8 can run.
        Build("qdq", "cpu", "int8", "tensorrt-int8-qdq.onnx",
              "deploybench.export.build:tensorrt_qdq", calibrated=True,
              for_cell=("tensorrt", "cuda", "int8")),
        Build("tensorrt", "cuda", "fp32", "tensorrt-fp32.engine", ENGINE, gpu=True),
        # fp16 and int8 start from the fp16 and QDQ models (strongly typed networks from
        # TensorRT 11).
        Build("tensorrt", "cuda", "fp16", "tensorrt-fp16.engine", ENGINE, gpu=True,
              source=("onnxruntime", "cuda", "fp16")),
        Build("tensorrt", "cuda", "int8", "tensorrt-int8.engine", ENGINE, gpu=True,
              source=("qdq", "cpu", "int8")),
    )),)
