"""Run a model at an input shape its config was not written for.

Shape is a matrix dimension: the test pipeline's Resize scale and fixed Pad size (and mmseg's
test-time pad size) are set to the shape, so the export, the builds, calibration, the reference
outputs, timing and accuracy all see images prepared for it. With keep_ratio a non-square image
fits inside the shape and the fixed Pad fills the rest, as the model's own pipeline does at its
native shape; `check_input_shape` then confirms the network input is what the cell says.
"""

from __future__ import annotations

from typing import Any

from deploybench.errors import UserError

# Test-time augmentation runs several shapes per image: not one network input.
MULTI_SCALE = ("TestTimeAug", "MultiScaleFlipAug")


def _kind(transform: dict[str, Any]) -> str:
    kind = transform.get("type", "")
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return name.rsplit(".", 1)[-1]  # "mmdet.Resize" -> "Resize"


def set_input_shape(cfg: Any, shape: tuple[int, int]) -> None:
    """Make `cfg`'s test pipeline produce `shape` ([height, width]) network inputs, in place."""
    height, width = shape
    pipeline = cfg.test_dataloader.dataset.get("pipeline")
    if not pipeline:
        raise UserError("the config's test_dataloader.dataset has no pipeline, so deploybench "
                        "cannot set its input shape; run this model at its own input_shape only")
    resized = False
    for transform in pipeline:
        kind = _kind(transform)
        if kind in MULTI_SCALE:
            raise UserError(f"the test pipeline uses {kind} (several shapes per image); set a "
                            "single-scale test pipeline to run this model at other shapes")
        if kind == "Resize":
            if transform.get("scale") is None:
                raise UserError("the test pipeline's Resize uses scale_factor, not scale; give it "
                                "a scale to run this model at other input shapes")
            transform["scale"] = (width, height)  # mmcv scales are (w, h)
            resized = True
        elif kind == "FixShapeResize":
            transform.update(width=width, height=height)
            resized = True
        elif kind == "Pad" and transform.get("size") is not None:
            transform["size"] = (width, height)
    if not resized:
        raise UserError("the test pipeline has no Resize, so its input shape follows each "
                        "image; run this model at its own input_shape only (models.<name>."
                        "shapes: [default])")
    test_cfg = cfg.model.get("data_preprocessor", {}).get("test_cfg") or {}
    if test_cfg.get("size") is not None:  # mmseg's SegDataPreProcessor pads to (h, w) at test
        test_cfg["size"] = (height, width)
