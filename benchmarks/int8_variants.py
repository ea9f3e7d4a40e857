"""ONNX Runtime int8 on this CPU: which quantization runs faster than fp32, and at what cost.

For each embedded model, exported at its benchmarked shape and calibrated as the pipeline does
(32 train images through the test pipeline, MinMax), build the static-quantization variants
side by side and time each against the fp32 model in the same process (interleaved rounds, the
CPU EP with the pipeline's session options), with the lowest cosine similarity of any raw
output against fp32 over the test images as the accuracy proxy:

- QDQ S8S8 per-channel: int8 activations and weights (the earlier default);
- QDQ U8S8 per-channel: uint8 (asymmetric) activations, int8 per-channel weights (the default);
- QDQ U8S8 per-tensor;
- QOperator U8S8 per-channel (QLinearConv etc. instead of Q/DQ pairs).

It also builds the default twice and says whether the two files are byte-identical.

    .venv/bin/python benchmarks/int8_variants.py [--models ...] [--rounds 3] [--seconds 1]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from embedded import exported

VARIANTS = {  # name -> (format, activations, per_channel)
    "QDQ S8S8 per-channel": ("QDQ", "S8", True),
    "QDQ U8S8 per-channel": ("QDQ", "U8", True),
    "QDQ U8S8 per-tensor": ("QDQ", "U8", False),
    "QOperator U8S8 per-channel": ("QOperator", "U8", True),
}
DEFAULT = "QDQ U8S8 per-channel"


def median_ms(session, feed: dict, seconds: float) -> float:
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 10:
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(samples))


def min_cosine(session, reference, feeds: list[dict]) -> float:
    worst = 1.0
    for feed in feeds:
        for a, b in zip(session.run(None, feed), reference.run(None, feed), strict=True):
            a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
            denom = np.linalg.norm(a) * np.linalg.norm(b)
            worst = min(worst, float(a @ b / denom) if denom else 1.0)
    return worst


def main() -> int:
    import onnxruntime as ort

    from deploybench.backends.onnxruntime import session_options
    from deploybench.export.quantize import calibration_batches, quantize_int8
    from deploybench.provenance import cpu_model, usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[
        "rtmdet_tiny_shapes", "fast_scnn_shapes", "rtmdet_ins_tiny_shapes"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round and variant")
    parser.add_argument("--calibration-images", type=int, default=32)
    args = parser.parse_args()
    threads = usable_cores()
    print(f"CPU: {cpu_model()}, {threads} threads, onnxruntime {ort.__version__}")
    for name in args.models:
        with exported(name, num_train=args.calibration_images, num_val=10) as model, \
                tempfile.TemporaryDirectory() as tmp:
            batches = calibration_batches(model.adapter, model.data, args.calibration_images)
            paths = {"fp32": model.onnx}
            for variant, (fmt, activations, per_channel) in VARIANTS.items():
                paths[variant] = Path(tmp) / f"{len(paths)}.onnx"
                quantize_int8(model.onnx, paths[variant], batches, "MinMax", per_channel,
                              activations, fmt)
            again = Path(tmp) / "again.onnx"
            quantize_int8(model.onnx, again, batches, "MinMax", True, "U8", "QDQ")
            same = (hashlib.sha256(again.read_bytes()).digest()
                    == hashlib.sha256(paths[DEFAULT].read_bytes()).digest())
            sessions = {v: ort.InferenceSession(str(p), session_options(threads),
                                                providers=["CPUExecutionProvider"])
                        for v, p in paths.items()}
            input_name = sessions["fp32"].get_inputs()[0].name
            feed = {input_name: np.ascontiguousarray(model.batch.numpy())}
            tests = [{input_name: np.ascontiguousarray(b.numpy())}
                     for _, b, _ in model.adapter.batches(model.adapter.dataset(model.data))]
            timings: dict[str, list[float]] = {v: [] for v in sessions}
            for v in sessions:
                median_ms(sessions[v], feed, 0.3)  # warm-up
            for i in range(args.rounds):
                order = list(sessions) if i % 2 == 0 else list(sessions)[::-1]
                for v in order:
                    timings[v].append(median_ms(sessions[v], feed, args.seconds))
            fp32 = float(np.median(timings["fp32"]))
            print(f"\n{name} {'x'.join(map(str, model.batch.shape))}: {len(batches)} calibration "
                  f"images, {args.rounds} interleaved rounds of {args.seconds:g} s; "
                  f"default rebuilt byte-identical: {'yes' if same else 'NO'}")
            print(f"  {'variant':28s} {'median ms':>10s} {'x fp32':>7s} {'min cosine':>11s}")
            for v, session in sessions.items():
                ms = float(np.median(timings[v]))
                cosine = 1.0 if v == "fp32" else min_cosine(session, sessions["fp32"], tests)
                mark = "  <- default" if v == DEFAULT else ""
                print(f"  {v:28s} {ms:10.2f} {fp32 / ms:7.2f} {cosine:11.5f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
