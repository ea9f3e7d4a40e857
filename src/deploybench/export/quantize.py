"""Static int8 quantization (QDQ) of the exported ONNX model, calibrated on train-split images."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.atomic import atomic_path
from deploybench.models.adapter import ModelAdapter


class _Calibration:
    """onnxruntime's CalibrationDataReader over preprocessed train images."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self.feeds = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def calibration_samples(adapter: ModelAdapter, data_root: Path, count: int,
                        split: str = "train") -> list[tuple[Any, list]]:
    """`count` images of `split` through the model's own *test* pipeline, as the network sees
    them, with their data samples."""
    dataset = adapter.dataset(data_root, split=split)
    return [(batch, samples) for _, batch, samples in adapter.batches(dataset, 1, limit=count)]


def sample_arrays(samples: list[tuple[Any, list]]) -> list[np.ndarray]:
    """The network inputs of `calibration_samples`, as the quantizers take them."""
    return [np.ascontiguousarray(batch.cpu().numpy()) for batch, _ in samples]


def calibration_batches(adapter: ModelAdapter, data_root: Path, count: int,
                        split: str = "train") -> list[np.ndarray]:
    return sample_arrays(calibration_samples(adapter, data_root, count, split))


# Activations: x86 CPUs multiply uint8 x int8 in their fast integer kernels (VNNI's vpdpbusd
# takes u8 x s8); with int8 activations ONNX Runtime's QDQ graphs fell back to slow paths here
# (benchmarks/int8_variants.py: RTMDet 3x slower than fp32). ARM CPUs prefer S8S8; TensorRT
# needs symmetric int8 (S8S8), so its QDQ source is quantized so (`activations="S8"`).
ACTIVATIONS = {"U8": "uint8, asymmetric (per tensor)", "S8": "int8, symmetric (per tensor)"}


def quantize_int8(onnx_in: Path, out: Path, batches: list[np.ndarray], method: str,
                  per_channel: bool = True, activations: str = "U8",
                  quant_format: str = "QDQ") -> dict[str, Any]:
    """Static int8 quantization. The same export and calibration images give the same bytes:
    calibration runs single-threaded in a fixed order, and nothing random enters."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx.load(str(onnx_in), load_external_data=False).graph.input[0].name
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as work, \
            atomic_path(out, suffix=".onnx") as tmp:
        prepared = Path(work) / "prepared.onnx"
        # The recommended pre-processing: shape inference and graph optimization before QDQ.
        quant_pre_process(str(onnx_in), str(prepared))
        quantize_static(str(prepared), str(tmp), _Calibration(input_name, batches),
                        quant_format=getattr(QuantFormat, quant_format), per_channel=per_channel,
                        activation_type=QuantType.QUInt8 if activations == "U8"
                        else QuantType.QInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method),
                        extra_options={"ActivationSymmetric": activations == "S8"})
    return {"quantizer": "onnxruntime.quantization.quantize_static", "format": quant_format,
            "activations": ACTIVATIONS[activations],
            "weights": "int8, symmetric, " + ("per channel" if per_channel else "per tensor"),
            "variant": f"{quant_format} {activations}S8 "
                       f"{'per-channel' if per_channel else 'per-tensor'}",
            "calibration": {"method": method, "images": len(batches)}}


def op_profile(model: Path, batch: np.ndarray, runs: int = 30) -> dict[str, float]:
    """Share of kernel time per operator type over `runs` calls of ONNX Runtime's CPU EP (its
    profiler, single-threaded for a stable split): where an int8 model's time goes next to the
    fp32 one's, so that the report can say why int8 is or is not faster."""
    import json
    import os

    import onnxruntime as ort

    from deploybench.backends.onnxruntime import session_options

    options = session_options(1)
    with tempfile.TemporaryDirectory() as work:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(work, "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: batch}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + event["dur"]
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return {op: round(dur / whole, 3) for op, dur in ranked[:5]}


def quantize_openvino_int8(onnx_in: Path, out_xml: Path, batches: list[np.ndarray]
                           ) -> dict[str, Any]:
    """NNCF post-training quantization of the exported model into an OpenVINO IR (.xml + .bin)."""
    import nncf
    import openvino as ov

    from deploybench.backends.openvino import read_model

    model = read_model(ov.Core(), onnx_in)
    # MIXED: asymmetric activations. SiLU and box-regression activations are far from
    # symmetric; on the embedded RTMDet the default (symmetric) preset lost 0.03 AP, MIXED none.
    quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                              preset=nncf.QuantizationPreset.MIXED)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_xml.parent) as work:
        # The IR is two files: written aside, then each renamed into place (.bin first, so an
        # .xml that exists always has its weights).
        staged = Path(work) / out_xml.name
        ov.save_model(quantized, str(staged))
        Path(staged.with_suffix(".bin")).replace(out_xml.with_suffix(".bin"))
        staged.replace(out_xml)
    return {"quantizer": "nncf.quantize", "nncf": nncf.__version__, "format": "OpenVINO IR",
            "preset": "mixed (symmetric weights, asymmetric activations)",
            "activations": "int8", "weights": "int8",
            "calibration": {"method": "MinMax (NNCF default statistics)",
                            "images": len(batches)}}


def convert_fp16(onnx_in: Path, out: Path) -> dict[str, Any]:
    """A float16 copy of the model with float32 inputs and outputs (for GPU fp16 cells)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(onnx_in)), keep_io_types=True)
    with atomic_path(out, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    return {"converter": "onnxruntime.transformers.float16.convert_float_to_float16",
            "weights": "fp16", "activations": "fp16", "io": "fp32"}
