"""Run a model at an input shape its config was not written for.

Shape is a matrix dimension: the test pipeline's Resize scale and fixed Pad size (and mmseg's
test-time pad size) are set to the shape, so the export, the builds, calibration, the reference
outputs, timing and accuracy all see images prepared for it. With keep_ratio a non-square image
fits inside the shape and the fixed Pad fills the rest, as the model's own pipeline does at its
native shape; `check_input_shape` then confirms the network input is what the cell says.
A keep-ratio pipeline without a fixed pad (most zoo detectors and segmentors) gets one: static
shapes are how deployments run them.
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
    preprocessor = cfg.model.get("data_preprocessor") or {}
    fits = height == width or not _is_mmdet(cfg)
    fixed = _makes_one_shape(pipeline, preprocessor)
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
            if transform.get("keep_ratio") and _is_mmdet(cfg) and not (fits and fixed):
                _fit_and_pad(cfg, pipeline, transform, shape)
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
    test_cfg = preprocessor.get("test_cfg") or {}
    if test_cfg.get("size") is not None or (not fixed and not _is_mmdet(cfg)):
        # mmseg's SegDataPreProcessor pads to (h, w) at test time (after normalizing, with 0,
        # as it pads to a divisor)
        cfg.model.data_preprocessor["test_cfg"] = {**test_cfg, "size": (height, width)}


def _is_mmdet(cfg: Any) -> bool:
    return cfg.get("default_scope") == "mmdet"


def _fit_and_pad(cfg: Any, pipeline: list[Any], resize: dict[str, Any],
                 shape: tuple[int, int]) -> None:
    """A keep-ratio Resize becomes mmdet's FixShapeResize, which fits the image inside the
    shape and pads the rest. (mmcv's keep-ratio scale bounds the long and the short edge
    whatever the orientation, so a portrait image would not fit a landscape shape; and without
    a fixed pad the shape would follow each image.) It pads with what the pipeline's own Pad
    pads with, else with the mean pixel, which normalizes to the 0 the model's preprocessor
    pads with."""
    height, width = shape
    pads = [t for t in pipeline if _kind(t) == "Pad" and t.get("size") is not None]
    if pads:
        pad_val = pads[0].get("pad_val", {"img": 0, "seg": 255})
    else:
        preprocessor = cfg.model.get("data_preprocessor") or {}
        mean = list(preprocessor.get("mean") or [0, 0, 0])
        if preprocessor.get("bgr_to_rgb"):  # the mean is in RGB order; the loaded image is BGR
            mean = mean[::-1]
        pad_val = {"img": tuple(round(m) for m in mean), "seg": 255}
    kept = {k: resize[k] for k in ("backend", "interpolation", "clip_object_border")
            if k in resize}
    resize.clear()
    resize.update(type="FixShapeResize", width=width, height=height, keep_ratio=True,
                  pad_val=pad_val, **kept)


def _makes_one_shape(pipeline: list[Any], preprocessor: dict[str, Any]) -> bool:
    """Whether the pipeline (and preprocessor) make the same shape of every image."""
    if (preprocessor.get("test_cfg") or {}).get("size") is not None:
        return True
    for transform in pipeline:
        kind = _kind(transform)
        if kind == "Pad" and (transform.get("size") is not None
                              or transform.get("pad_to_square")):
            return True
        if kind == "FixShapeResize" or (kind == "Resize" and not transform.get("keep_ratio")
                                        and transform.get("scale")):
            return True
    return False


def default_input_shape(cfg: Any) -> tuple[tuple[int, int], bool]:
    """The network input [h, w] a config's test pipeline makes of a landscape image, and
    whether it makes that one shape of every image. Keep-ratio resizing fits the image in its
    scale (long x short edge, as mmdet's (1333, 800)), landscape; the preprocessor's pad
    divisor rounds up (mmdeploy's 800x1344 for COCO detectors). mmseg's slide inference runs
    the network on crops of this input (the export is one crop)."""
    dataset = cfg.test_dataloader.dataset
    while "pipeline" not in dataset and "dataset" in dataset:
        dataset = dataset["dataset"]
    pipeline = dataset.get("pipeline") or []
    preprocessor = cfg.model.get("data_preprocessor") or {}
    shape, divisor = None, int(preprocessor.get("pad_size_divisor") or 1)
    for transform in pipeline:
        kind = _kind(transform)
        if kind in MULTI_SCALE:
            raise UserError(f"the test pipeline uses {kind} (several shapes per image)")
        scale = transform.get("scale")
        if kind == "Resize" and scale is not None:
            long, short = (scale, scale) if isinstance(scale, int) else (max(scale), min(scale))
            shape = (short, long) if transform.get("keep_ratio") else (scale[1], scale[0])
        elif kind == "FixShapeResize":
            shape = (transform["height"], transform["width"])
        elif kind == "Pad" and transform.get("size") is not None:
            shape = (transform["size"][1], transform["size"][0])
        elif kind == "Pad" and transform.get("pad_to_square") and shape:
            shape = (max(shape), max(shape))
        elif kind == "Pad" and transform.get("size_divisor"):
            divisor = max(divisor, int(transform["size_divisor"]))
    seg_test = preprocessor.get("test_cfg") or {}
    if seg_test.get("size") is not None:
        shape = tuple(seg_test["size"])
    divisor = max(divisor, int(seg_test.get("size_divisor") or 1))
    if shape is None:
        raise UserError("the test pipeline has no Resize with a scale, so its input shape "
                        "follows each image")
    rounded = tuple(-(-int(side) // divisor) * divisor for side in shape)
    return (rounded[0], rounded[1]), _makes_one_shape(pipeline, preprocessor)
