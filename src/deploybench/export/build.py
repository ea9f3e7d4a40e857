"""The build step: the artifact a (backend, device, precision) cell runs, made from the export."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.errors import CellSkipped, UserError
from deploybench.models.adapter import ModelAdapter


@dataclass(frozen=True)
class BuildOptions:
    calibration_images: int = 32
    calibration_method: str = "MinMax"
    workspace_mib: int = 4096
    timing_cache: Path | None = None
    max_batch: int = 1  # TensorRT profile of a dynamic-batch export
    calibration_split: str = "train"


def build_artifact(adapter: ModelAdapter, data_root: Path, backend: str, device: str,
                   precision: str, source: Path, out: Path, options: BuildOptions
                   ) -> dict[str, Any]:
    """Build `out` from `source` (the exported model, or the model a build starts from), and
    the RoI heads' graphs exported beside `source` (two-stage detectors) beside `out`."""
    from deploybench.export.quantize import (
        calibration_samples,
        convert_fp16,
        op_profile,
        quantize_int8,
        quantize_openvino_int8,
        sample_arrays,
    )

    start = time.perf_counter()
    kind = (backend, device, precision)
    samples = (calibration_samples(adapter, data_root, options.calibration_images,
                                   options.calibration_split)
               if precision == "int8" and backend != "tensorrt" else [])
    batches = sample_arrays(samples)
    heads: dict[str, Any] = {}
    if kind == ("onnxruntime", "cpu", "int8"):
        method = options.calibration_method
        heads = _head_graphs(adapter, source, out, samples,
                             lambda src, dst, feats: quantize_int8(src, dst, feats, method))
        info = quantize_int8(source, out, batches, method)
        info["op_time_share"] = {"fp32": op_profile(source, batches[0]),
                                 "int8": op_profile(out, batches[0])}
    elif kind == ("qdq", "cpu", "int8"):  # TensorRT's int8 source: its engine has no heads
        info = quantize_int8(source, out, batches, options.calibration_method, activations="S8")
    elif kind == ("openvino", "cpu", "int8"):
        heads = _head_graphs(adapter, source, out, samples, quantize_openvino_int8)
        info = quantize_openvino_int8(source, out, batches)
    elif kind == ("onnxruntime", "cuda", "fp16"):
        heads = _head_graphs(adapter, source, out, [], lambda src, dst, _: convert_fp16(src, dst))
        info = convert_fp16(source, out)
    elif backend == "tensorrt":
        from deploybench.export.tensorrt_build import build_engine

        info = build_engine(source, out, precision, options.workspace_mib, options.timing_cache,
                            options.max_batch)
    else:
        raise UserError(f"no build for {backend} {precision} on {device}; builds exist for "
                        "onnxruntime int8 (cpu), onnxruntime fp16 (cuda), openvino int8 (cpu) "
                        "and tensorrt fp32/fp16/int8 (cuda)")
    if heads:
        info["head_graphs"] = heads
    if "calibration" in info:
        info["calibration"]["split"] = options.calibration_split
    return {"artifact": str(out), "source": str(source),
            "seconds": time.perf_counter() - start, **info}


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


def placeholder(out: Path, reason: str = "") -> None:
    """An empty artifact for a build this machine cannot do, so that the DAG goes on to report
    its cells as skipped. The job's `machine` param changes when the machine can do the build,
    which makes Snakemake rebuild it. `reason`: the backend cannot build this model; kept
    beside the artifact for the cells that would run it (`skipped_build`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"")
    if out.suffix == ".xml":
        out.with_suffix(".bin").write_bytes(b"")
    if reason:
        _skipped_note(out).write_text(reason)


def _skipped_note(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".skipped")


def skipped_build(artifact: Path) -> None:
    """Raise CellSkipped where `artifact` is the placeholder of a build the backend could not
    do for this model."""
    if artifact.is_file() and artifact.stat().st_size == 0:
        note = _skipped_note(artifact)
        raise CellSkipped(note.read_text() if note.is_file() else
                          f"{artifact.name} was not built; the builds table says why")
