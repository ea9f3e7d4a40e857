"""The tensor preprocessing path: the model's test pipeline as torch ops on the target device.

The reference path runs mmcv's transforms on the CPU in numpy and uploads a float32 batch. This
path decodes the file the same way (the pipeline's own LoadImageFromFile), uploads the uint8
image (a quarter of the bytes), and resizes and pads it on the device: resize with OpenCV's
fixed-point arithmetic (`resize_linear_u8`), so that both paths give the same bytes. The
model's data preprocessor (normalize, BGR->RGB, pad to a divisor) then runs where the model is.
Metadata (shapes, scale factor) is computed as the mmcv transforms compute it.

Supported transforms: LoadImageFromFile (colour), Resize (bilinear, cv2 backend, with `scale`,
keep_ratio or not), FixShapeResize (the same), Pad (fixed size or size divisor, constant),
LoadAnnotations (ground truth only: skipped), PackDetInputs / PackSegInputs. Anything else
raises a UserError naming it.
"""

from __future__ import annotations

import math
from typing import Any

import mmcv
import torch

from deploybench.errors import UserError
from deploybench.models.adapter import ModelAdapter
from deploybench.preprocess.resize import resize_linear_u8


def _resize_step(t: Any) -> dict[str, Any]:
    if getattr(t, "scale", None) is None or getattr(t, "interpolation", "bilinear") != "bilinear" \
            or getattr(t, "backend", "cv2") != "cv2":
        raise UserError(f"the tensor preprocessing path supports Resize with a fixed scale, "
                        f"bilinear interpolation and the cv2 backend, not {t!r}")
    return {"op": "resize", "scale": tuple(t.scale), "keep_ratio": bool(t.keep_ratio)}


def _fix_shape_steps(t: Any) -> list[dict[str, Any]]:
    """mmdet's FixShapeResize: keep-ratio, it fits the image inside (width, height) and pads
    the rest; otherwise a plain resize to that size."""
    if t.interpolation != "bilinear" or t.backend != "cv2":
        raise UserError(f"the tensor preprocessing path supports FixShapeResize with bilinear "
                        f"interpolation and the cv2 backend, not {t!r}")
    if not t.keep_ratio:
        return [{"op": "resize", "scale": (t.width, t.height), "keep_ratio": False}]
    return [{"op": "fit", "width": t.width, "height": t.height},
            _pad_step(t.pad_transform)]


def _pad_step(t: Any) -> dict[str, Any]:
    if getattr(t, "padding_mode", "constant") != "constant" or getattr(t, "pad_to_square", False):
        raise UserError(f"the tensor preprocessing path supports constant Pad to a size or a "
                        f"size divisor, not {t!r}")
    value = t.pad_val.get("img", 0) if isinstance(t.pad_val, dict) else t.pad_val
    return {"op": "pad", "size": t.size, "size_divisor": t.size_divisor, "value": value}


def plan_steps(transforms: list[Any]) -> tuple[Any, list[dict[str, Any]], Any]:
    """(the decode transform, device steps, the pack transform) of a test pipeline."""
    load, steps, pack = None, [], None
    for t in transforms:
        name = type(t).__name__
        if name == "LoadImageFromFile":
            if t.color_type != "color" or t.to_float32:
                raise UserError("the tensor preprocessing path needs LoadImageFromFile with "
                                "color_type='color' and to_float32=False")
            load = t
        elif name.startswith("LoadAnnotations"):
            continue  # ground truth for the metric, not part of inference
        elif name == "Resize":
            steps.append(_resize_step(t))
        elif name == "FixShapeResize":
            steps += _fix_shape_steps(t)
        elif name == "Pad":
            steps.append(_pad_step(t))
        elif name in ("PackDetInputs", "PackSegInputs"):
            pack = t
        else:
            raise UserError(f"the tensor preprocessing path does not implement {name}; "
                            "this model is timed with the reference path only")
    if load is None or pack is None:
        raise UserError("the test pipeline needs LoadImageFromFile and PackDetInputs or "
                        "PackSegInputs for the tensor preprocessing path")
    return load, steps, pack


class TensorPreprocessor:
    def __init__(self, adapter: ModelAdapter, dataset: Any, device: str) -> None:
        self.adapter, self.dataset, self.device = adapter, dataset, device
        self.load, self.steps, self.pack = plan_steps(list(dataset.pipeline.transforms))

    def decode(self, info: dict[str, Any]) -> dict[str, Any]:
        """The pipeline's own LoadImageFromFile on a dataset record (`get_data_info`)."""
        return self.load(info)

    def upload(self, results: dict[str, Any]) -> torch.Tensor:
        return torch.from_numpy(results["img"]).to(self.device)

    def transform(self, results: dict[str, Any], image: torch.Tensor) -> dict[str, Any]:
        """Resize and pad `image` (HxWxC uint8 on the device); the model's data preprocessor
        then makes the network input. Returns the preprocessor's {inputs, data_samples}."""
        for step in self.steps:
            h, w = image.shape[:2]
            if step["op"] == "resize":
                # keep_ratio: the size mmcv.imrescale picks, from mmcv's own arithmetic
                new_w, new_h = (mmcv.rescale_size((w, h), step["scale"]) if step["keep_ratio"]
                                else step["scale"])
                image = resize_linear_u8(image, new_h, new_w)
                results.update(img_shape=(new_h, new_w), scale_factor=(new_w / w, new_h / h),
                               keep_ratio=step["keep_ratio"], scale=step["scale"])
            elif step["op"] == "fit":  # FixShapeResize's arithmetic, metadata included
                factor = min(step["width"] / w, step["height"] / h)
                real = (int(w * factor + 0.5), int(h * factor + 0.5))
                new_w, new_h = mmcv.rescale_size((w, h), real)
                image = resize_linear_u8(image, new_h, new_w)
                results.update(img_shape=(new_h, new_w), scale_factor=(factor, factor),
                               keep_ratio=True, scale=real)
            else:
                if step["size_divisor"] is not None:
                    d = step["size_divisor"]
                    size = (math.ceil(h / d) * d, math.ceil(w / d) * d)
                else:
                    size = (step["size"][1], step["size"][0])  # mmcv keeps (w, h)
                padded = image.new_empty((*size, image.shape[2]))
                padded[:] = torch.as_tensor(step["value"], dtype=image.dtype)  # per channel
                padded[:h, :w] = image
                image = padded
                results.update(pad_shape=tuple(padded.shape), img_shape=size,
                               pad_fixed_size=step["size"], pad_size_divisor=step["size_divisor"])
        sample = self._data_sample({k: results[k] for k in self.pack.meta_keys if k in results})
        chw = image.permute(2, 0, 1).contiguous()
        return self.adapter.preprocess({"inputs": [chw], "data_samples": [sample]})

    def _data_sample(self, metainfo: dict[str, Any]) -> Any:
        if self.adapter.task == "detection":
            from mmdet.structures import DetDataSample

            return DetDataSample(metainfo=metainfo)
        from mmseg.structures import SegDataSample

        return SegDataSample(metainfo=metainfo)

    def __call__(self, index: int) -> dict[str, Any]:
        results = self.decode(self.dataset.get_data_info(index))
        return self.transform(results, self.upload(results))
