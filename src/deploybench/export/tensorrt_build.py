"""ONNX -> serialized TensorRT engine, precision expressed the way the installed TensorRT wants it.

Up to 10.x: builder flags (FP16; INT8 on the QDQ model, i.e. explicit quantization). From 11.x
the weakly typed flags are gone: the network is built strongly typed, and the precision is the
model's own (the fp16 ONNX model, or the QDQ int8 model).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deploybench.atomic import atomic_path
from deploybench.backends.tensorrt import batch_profiles
from deploybench.errors import UserError


def build_engine(onnx_in: Path, out: Path, precision: str, workspace_mib: int,
                 timing_cache: Path | None, batches: tuple[int, ...] = (1,)) -> dict[str, Any]:
    import tensorrt as trt

    major = int(trt.__version__.split(".")[0])
    strongly_typed = major >= 11
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_in)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse {onnx_in}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    tensor = network.get_input(0)
    shape = tuple(tensor.shape)
    profiles = batch_profiles(batches) if shape[0] == -1 else []
    for low, opt, high in profiles:  # a dynamic-batch export: a profile per batch measured
        profile = builder.create_optimization_profile()
        rest = shape[1:]
        profile.set_shape(tensor.name, (low, *rest), (opt, *rest), (high, *rest))
        config.add_optimization_profile(profile)
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: an fp32 engine runs fp32
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)  # int8 engines keep fp16 for unquantized layers
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    start = time.perf_counter()
    engine = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if engine is None:
        raise UserError(f"TensorRT could not build a {precision} engine from {onnx_in}; "
                        "see the build log")
    with atomic_path(out, suffix=".engine") as tmp:
        tmp.write_bytes(bytes(engine))
    if timing_cache:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"builder": f"tensorrt {trt.__version__}", "build_seconds": seconds,
            "precision_by": "strongly typed network" if strongly_typed else "builder flags",
            "workspace_mib": workspace_mib, "batch_profiles": profiles or None,
            "timing_cache": str(timing_cache) if timing_cache else None}
