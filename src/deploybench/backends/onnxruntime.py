"""ONNX Runtime: the CPU execution provider, the CUDA EP with I/O binding, and the TensorRT EP.

fp32 runs the exported model; int8 (CPU) a statically quantized QDQ model and fp16 (CUDA) a
float16 model with fp32 inputs and outputs, both made by the build step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.backends.base import Backend, BackendSpec, Build, Runner

if TYPE_CHECKING:  # not imported at run time: timing an ONNX model needs no mmdet/mmseg
    from deploybench.models.adapter import ModelAdapter

SPINNING = "session.intra_op.allow_spinning"
# The pool stops spinning when a Run returns and starts again with the next one: an idle
# session (a measure group's worker between its slices) leaves the cores to the cell running.
SPINNING_STOP = "session.force_spinning_stop"


def session_options(threads: int, spinning: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry(SPINNING, "1" if spinning else "0")  # "1": ORT's default
    options.add_session_config_entry(SPINNING_STOP, "1")
    return options


def provider_names(providers: list) -> list[str]:
    return [p[0] if isinstance(p, tuple) else p for p in providers]


def check_providers(session: Any, requested: list, model_path: Path) -> None:
    """ONNX Runtime falls back to the next provider, with no more than a logged warning, when
    the one asked for cannot load (a TensorRT or CUDA library the loader does not find): the
    cell would time another provider under this one's name. Refuse that."""
    wanted, used = provider_names(requested)[0], session.get_providers()
    if used[0] != wanted:
        raise RuntimeError(
            f"ONNX Runtime did not use {wanted} for {model_path.name}: the session runs on "
            f"{', '.join(used)}. The provider failed to load; its error is in the log above "
            "(`ldd` of onnxruntime/capi/libonnxruntime_providers_*.so names a missing library; "
            "scripts/gpu-image-check.sh checks the gpu image for this)")


class OrtRunner(Runner):
    """An execution provider through I/O binding: the input is bound where it lies, and the
    outputs are written into buffers allocated once per input shape on the provider's device,
    so the timed call allocates and copies nothing (`session.run` allocates every output on
    every call). `to_host` copies them out."""

    device = "cpu"

    def __init__(self, model_path: Path, threads: int, providers: list | None = None,
                 spinning: bool = True) -> None:
        self.model_path, self.threads = model_path, threads
        self.providers = providers or ["CPUExecutionProvider"]
        self.session = self._session(spinning)
        self.input_name = self.session.get_inputs()[0].name
        # (the bound input, kept alive so it is the same object; its binding; the outputs)
        self._bound: tuple[Any, Any, list[Any]] | None = None
        self._outputs: dict[tuple[int, ...], list[Any]] = {}  # per input shape

    def _session(self, spinning: bool) -> Any:
        import onnxruntime as ort

        session = ort.InferenceSession(str(self.model_path),
                                       session_options(self.threads, spinning),
                                       providers=self.providers)
        check_providers(session, self.providers, self.model_path)
        return session

    def idle_settings(self) -> dict[str, str]:
        return {SPINNING: "1", SPINNING_STOP: "1"}

    def share_cores(self) -> dict[str, str]:
        """A session without intra-op spinning. With ORT's default, its worker threads keep
        spinning after each call and take the cores from the post-processing that follows
        (measured here: Fast-SCNN's resize + argmax 2.5x slower on 2 cores); back-to-back
        network calls, the network-only latency, keep the default."""
        self.session = self._session(spinning=False)
        self._bound, self._outputs = None, {}
        return {SPINNING: "0"}

    def _bind_input(self, binding: Any, inputs: Any) -> None:
        binding.bind_cpu_input(self.input_name, inputs)

    def _binding(self, inputs: Any) -> tuple[Any, list[Any]]:
        import onnxruntime as ort

        if self._bound is not None and self._bound[0] is inputs:
            return self._bound[1], self._bound[2]
        binding = self.session.io_binding()
        self._bind_input(binding, inputs)
        shape = tuple(inputs.shape)
        outputs = self._outputs.get(shape)
        if outputs is None:
            # Shapes from one call, then buffers of those shapes, reused by every later call.
            for meta in self.session.get_outputs():
                binding.bind_output(meta.name, self.device)
            self.session.run_with_iobinding(binding)
            outputs = [ort.OrtValue.ortvalue_from_shape_and_type(
                o.shape(), _numpy_type(o.data_type()), self.device, 0)
                for o in binding.get_outputs()]
            self._outputs[shape] = outputs
            binding = self.session.io_binding()
            self._bind_input(binding, inputs)
        for meta, value in zip(self.session.get_outputs(), outputs, strict=True):
            binding.bind_ortvalue_output(meta.name, value)
        self._bound = (inputs, binding, outputs)
        return binding, outputs

    def run(self, inputs: Any) -> list[Any]:
        binding, outputs = self._binding(self._prepared(inputs))
        self.session.run_with_iobinding(binding)
        return outputs

    def _prepared(self, inputs: Any) -> Any:
        # the same array when it already is contiguous: the binding is then reused
        return np.ascontiguousarray(inputs)

    def to_host(self, outputs: list[Any]) -> list[np.ndarray]:
        return [np.array(o.numpy(), copy=True) for o in outputs]  # the buffers are reused


def _numpy_type(ort_type: str) -> Any:
    """numpy's dtype of an ORT tensor type string, `tensor(float)`."""
    names = {"float": np.float32, "float16": np.float16, "double": np.float64,
             "int64": np.int64, "int32": np.int32, "int8": np.int8, "uint8": np.uint8,
             "bool": np.bool_}
    return names[ort_type.removeprefix("tensor(").removesuffix(")")]


class OrtDeviceRunner(OrtRunner):
    """A GPU EP with I/O binding: the input is copied to the device once, the outputs are
    written into device buffers allocated once per input shape, as on the CPU (a binding and
    output allocation per call would bias the comparison with TensorRT's runner)."""

    device = "cuda"

    def share_cores(self) -> dict[str, str]:
        self.session = self._session(spinning=False)
        self._bound, self._outputs = None, {}
        return {SPINNING: "0"}

    def to_device(self, inputs: Any) -> Any:
        import onnxruntime as ort
        import torch

        if isinstance(inputs, torch.Tensor) and inputs.is_cuda:
            return inputs.float().contiguous()  # already there: bound by pointer in `run`
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(inputs), "cuda", 0)

    def _prepared(self, inputs: Any) -> Any:
        return inputs

    def _bind_input(self, binding: Any, inputs: Any) -> None:
        import torch

        if isinstance(inputs, torch.Tensor):
            binding.bind_input(self.input_name, "cuda", 0, np.float32, tuple(inputs.shape),
                               inputs.data_ptr())
        else:
            binding.bind_ortvalue_input(self.input_name, inputs)

    def to_host(self, outputs: list[Any]) -> list[np.ndarray]:
        return [o.numpy() for o in outputs]  # a copy from the device


def provider_reason(provider: str) -> str:
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return (f"this onnxruntime has no {provider} (it has "
                f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu and "
                "the CUDA/TensorRT libraries it links")
    return ""


class OnnxRuntimeBackend(Backend):
    def machine_reason(self, precision: str, device: str) -> str:
        if device == "cuda":
            return super().machine_reason(precision, device) or provider_reason(
                "CUDAExecutionProvider")
        return ""

    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        # use_tf32 is on by default in the CUDA EP: off, so that fp32 means fp32.
        providers = ([("CUDAExecutionProvider", {"device_id": 0, "use_tf32": 0}),
                      "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"])
        assert artifact is not None
        if adapter is not None:
            adapter.attach_head_graphs(artifact, lambda path: head_graph(path, threads, providers))
        if device == "cuda":
            return OrtDeviceRunner(artifact, threads, providers)
        return OrtRunner(artifact, threads)


def head_graph(path: Path, threads: int, providers: list) -> Callable[[np.ndarray], list]:
    """A graph run inside post-processing (a two-stage detector's RoI head): a plain `run`,
    as its input shape changes from call to call, without spinning threads that would take the
    cores from the PyTorch code around it."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), session_options(threads, spinning=False),
                                   providers=providers)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


class OnnxRuntimeTensorRtBackend(Backend):
    """ORT's TensorRT EP on the fp32 model; fp16 by the EP's own flag."""

    def machine_reason(self, precision: str, device: str) -> str:
        import importlib.util

        reason = super().machine_reason(precision, device) or provider_reason(
            "TensorrtExecutionProvider")
        if not reason and importlib.util.find_spec("tensorrt") is None:
            reason = ("ONNX Runtime's TensorRT EP needs TensorRT's libraries and tensorrt is "
                      "not installed (pip install -r envs/tensorrt.txt --extra-index-url "
                      "https://pypi.nvidia.com)")
        return reason

    def _load(self, adapter: ModelAdapter | None, artifact: Path | None, precision: str,
              device: str, threads: int) -> Runner:
        assert artifact is not None
        # The provider opens libnvinfer by soname: loaded by the tensorrt package first, it is
        # found wherever the wheel put it (the gpu image also has it on the loader path).
        import tensorrt  # noqa: F401

        # One cache per precision: fp32 and fp16 engines of one model never mix. fp32 is
        # IEEE fp32: this EP has no TF32 switch, NVIDIA_TF32_OVERRIDE=0 (gpu_device.py) does.
        cache = artifact.with_suffix(f".ort-trt-{precision}-cache")
        options = {"device_id": 0, "trt_fp16_enable": precision == "fp16",
                   "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
        return OrtDeviceRunner(artifact, threads, [("TensorrtExecutionProvider", options),
                                                   ("CUDAExecutionProvider", {"device_id": 0}),
                                                   "CPUExecutionProvider"])


SPECS = (
    BackendSpec(
        name="onnxruntime", backend=OnnxRuntimeBackend,
        support={"cpu": ("fp32", "int8"), "cuda": ("fp32", "fp16")}, runs="onnx",
        requires="onnxruntime", packages=("onnxruntime", "onnxruntime-gpu"),
        style=("#2ca02c", "^"),
        summary=("CPU EP through I/O binding, outputs written into buffers allocated once "
                 "(`session.run` allocates them on every call); int8 is the U8S8 QDQ model; CUDA EP"
                 " (TF32 off) the same way, input and output buffers on the GPU; fp16 is the "
                 "float16 model; a session that fell back to another provider fails the cell"),
        builds=(Build("onnxruntime", "cpu", "int8", "onnxruntime-int8.onnx",
                      "deploybench.export.build:onnxruntime_int8", calibrated=True),
                Build("onnxruntime", "cuda", "fp16", "onnxruntime-fp16.onnx",
                      "deploybench.export.build:onnxruntime_fp16"))),
    BackendSpec(
        name="onnxruntime_trt", backend=OnnxRuntimeTensorRtBackend,
        support={"cuda": ("fp32", "fp16")}, runs="onnx", requires="onnxruntime",
        style=("#17becf", "v"),
        summary=("ONNX Runtime's TensorRT EP (fp16 by its flag; fp32 without TF32 by "
                 "NVIDIA_TF32_OVERRIDE=0), an engine cache per precision beside the model; a "
                 "session that fell back to the CUDA EP fails the cell")),
)
