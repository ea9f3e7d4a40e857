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


def calibration_batches(adapter: ModelAdapter, data_root: Path, count: int) -> list[np.ndarray]:
    """`count` train images through the model's own *test* pipeline, as the network sees them."""
    dataset = adapter.dataset(data_root, split="train")
    return [np.ascontiguousarray(batch.cpu().numpy())
            for _, batch, _ in adapter.batches(dataset, 1, limit=count)]


def quantize_int8(onnx_in: Path, out: Path, batches: list[np.ndarray], method: str,
                  per_channel: bool = True) -> dict[str, Any]:
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
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method))
    return {"quantizer": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "activations": "int8", "weights": "int8", "per_channel": per_channel,
            "calibration": {"method": method, "images": len(batches), "split": "train"}}
