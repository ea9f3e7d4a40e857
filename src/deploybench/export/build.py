"""The build step: the artifact a (backend, device, precision) cell runs, made from the export."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.backends.base import Build
from deploybench.errors import UserError
from deploybench.models.adapter import ModelAdapter


@dataclass(frozen=True)
class BuildOptions:
    """The config's `build` section (its defaults are the schema's: `settings`), with what the
    DAG resolves per run and model."""

    calibration_images: int
    calibration_method: str
    workspace_mib: int  # build.tensorrt_workspace_mib
    timing_cache: Path | None  # build.tensorrt_timing_cache, under the run's results
    batches: tuple[int, ...]  # the batches measured: a dynamic-batch engine's profiles
    calibration_split: str

    @classmethod
    def of(cls, values: Mapping[str, Any] | None = None, timing_cache: Path | None = None,
           batches: tuple[int, ...] = (1,), **overrides: Any) -> BuildOptions:
        """From a `build` section (default: the schema's defaults) and any overrides."""
        from deploybench.settings import defaults

        build = {**defaults("build"), **(values or {})}
        return cls(**{"calibration_images": build["calibration_images"],
                      "calibration_method": build["calibration_method"],
                      "workspace_mib": build["tensorrt_workspace_mib"],
                      "timing_cache": timing_cache, "batches": tuple(sorted(batches)),
                      "calibration_split": build["calibration_split"], **overrides})


@dataclass(frozen=True)
class BuildContext:
    """What a build function (`Build.make`) gets: the model, the file it builds from, the file
    it writes, the calibration samples (int8 builds that take them), the options."""

    build: Build
    adapter: ModelAdapter
    source: Path
    out: Path
    samples: list  # (image, metas) pairs from the calibration split; empty where not calibrated
    options: BuildOptions

    def batches(self) -> list[np.ndarray]:
        from deploybench.export.quantize import sample_arrays

        return sample_arrays(self.samples)


def build_artifact(adapter: ModelAdapter, data_root: Path, backend: str, device: str,
                   precision: str, source: Path, out: Path, options: BuildOptions
                   ) -> dict[str, Any]:
    """Build `out` from `source` (the exported model, or the model a build starts from) by the
    function the backend's spec names, and the RoI heads' graphs exported beside `source`
    (two-stage detectors) beside `out` where that function builds them."""
    import importlib

    from deploybench.backends.registry import builds

    build = builds().get((backend, device, precision))
    if build is None:
        made = ", ".join(f"{b} {p} ({d})" for b, d, p in builds())
        raise UserError(f"no build for {backend} {precision} on {device}; builds exist for "
                        f"{made}")
    start = time.perf_counter()
    samples = []
    if build.calibrated:
        from deploybench.export.quantize import calibration_samples

        samples = calibration_samples(adapter, data_root, options.calibration_images,
                                      options.calibration_split)
    module, function = build.make.split(":")
    info = getattr(importlib.import_module(module), function)(
        BuildContext(build, adapter, source, out, samples, options))
    if "calibration" in info:
        info["calibration"]["split"] = options.calibration_split
    return {"artifact": str(out), "source": str(source),
            "seconds": time.perf_counter() - start, **info}


def onnxruntime_int8(ctx: BuildContext) -> dict[str, Any]:
    """ONNX Runtime's static QDQ quantization (asymmetric uint8 activations), with each
    model's operator time shares from ORT's profiler, fp32 and int8."""
    from deploybench.export.quantize import op_profile, quantize_int8

    method, batches = ctx.options.calibration_method, ctx.batches()
    heads = head_graphs(ctx, lambda src, dst, feats: quantize_int8(src, dst, feats, method))
    info = quantize_int8(ctx.source, ctx.out, batches, method)
    info["op_time_share"] = {"fp32": op_profile(ctx.source, batches[0]),
                             "int8": op_profile(ctx.out, batches[0])}
    return {**info, **heads}


def tensorrt_qdq(ctx: BuildContext) -> dict[str, Any]:
    """TensorRT's int8 source: symmetric int8 QDQ (its engine holds the first graph alone)."""
    from deploybench.export.quantize import quantize_int8

    return quantize_int8(ctx.source, ctx.out, ctx.batches(), ctx.options.calibration_method,
                         activations="S8")


def openvino_int8(ctx: BuildContext) -> dict[str, Any]:
    """NNCF's post-training quantization to an OpenVINO IR."""
    from deploybench.export.quantize import quantize_openvino_int8

    heads = head_graphs(ctx, quantize_openvino_int8)
    return {**quantize_openvino_int8(ctx.source, ctx.out, ctx.batches()), **heads}


def onnxruntime_fp16(ctx: BuildContext) -> dict[str, Any]:
    """A float16 model with fp32 inputs and outputs."""
    from deploybench.export.quantize import convert_fp16

    heads = head_graphs(ctx, lambda src, dst, _: convert_fp16(src, dst))
    return {**convert_fp16(ctx.source, ctx.out), **heads}


def tensorrt_engine(ctx: BuildContext) -> dict[str, Any]:
    """A serialized TensorRT engine; from a dynamic-batch export, one optimisation profile per
    batch measured."""
    from deploybench.export.tensorrt_build import build_engine

    o = ctx.options
    return build_engine(ctx.source, ctx.out, ctx.build.precision, o.workspace_mib,
                        o.timing_cache, o.batches)


def head_graphs(ctx: BuildContext,
                build: Callable[[Path, Path, list[np.ndarray]], dict[str, Any]]
                ) -> dict[str, Any]:
    """{"head_graphs": ...} where the model has RoI head graphs (else nothing): each built by
    `build` as `_head_graphs` says."""
    heads = _head_graphs(ctx.adapter, ctx.source, ctx.out, ctx.samples, build)
    return {"head_graphs": heads} if heads else {}


def _head_graphs(adapter: ModelAdapter, source: Path, out: Path, samples: list,
                 build: Callable[[Path, Path, list[np.ndarray]], dict[str, Any]]
                 ) -> dict[str, Any]:
    """Each RoI head graph beside `source` built beside `out` by `build(source, out, features)`
    (int8: calibrated on the RoI features of the calibration images), before `out` itself, so
    that a built artifact implies its heads."""
    from deploybench.models import roi_graphs

    found = roi_graphs.present(adapter.model, source)
    if not found:
        return {}
    features = roi_graphs.calibration_inputs(adapter.model, samples) if samples else {}
    built = {}
    for name, path in found.items():
        inputs = features.get(name, [])
        if samples and not inputs:
            raise UserError(f"no calibration image reached the {roi_graphs.GRAPHS[name]}: the "
                            "model found nothing in them; calibrate on more images "
                            "(build.calibration_images)")
        target = roi_graphs.graph_path(out, name)
        built[name] = {"artifact": str(target), **build(path, target, inputs)}
        if inputs:
            built[name]["calibration"]["rois"] = int(sum(len(x) for x in inputs))
    return built
