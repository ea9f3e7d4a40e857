"""Harness fidelity: does deploybench's timing add anything to what it times?

In one process, on the embedded detector with ONNX Runtime (CPU EP, fp32), interleave rounds of
(a) deploybench's own timing path (runner.run + synchronize through `time_calls`, the measure
step's code) and (b) a bare loop over `session.run` with the same input, and print the ratio of
their medians. Target: <= 1.02.

    .venv/bin/python benchmarks/harness_fidelity.py [--rounds 10] [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from embedded import exported


def bare_loop(session, feed: dict, seconds: float) -> list[float]:
    samples: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def main() -> int:
    from deploybench.cell import CellInputs, open_cell
    from deploybench.measure.timing import StoppingRule, time_calls
    from deploybench.provenance import cpu_model, usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0, help="per round and side")
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()

    with exported("rtmdet_tiny_shapes") as model:
        sample = model.batch
        inputs = CellInputs(model.config, model.checkpoint, model.data, model.onnx,
                            threads=args.threads)
        with open_cell("onnxruntime", "fp32", inputs) as opened:
            runner = opened.runner
            array = np.ascontiguousarray(sample.numpy())
            device_input = runner.to_device(array)

            def call() -> None:  # exactly what the measure step times
                runner.run(device_input)
                runner.synchronize()

            rule = StoppingRule(warmup_iters=5, warmup_seconds=0.5, min_iters=20,
                                min_seconds=args.seconds)
            feed = {runner.input_name: array}
            bare_loop(runner.session, feed, 1.0)  # warm the session for the bare side too
            ours, bare = [], []
            for i in range(args.rounds):
                # Alternate which side goes first, so neither always follows the other.
                sides = [("deploybench", lambda: time_calls(call, rule)),
                         ("bare", lambda: bare_loop(runner.session, feed, args.seconds))]
                for name, run in sides if i % 2 == 0 else sides[::-1]:
                    (ours if name == "deploybench" else bare).append(float(np.median(run())))
                print(f"round {i + 1:2d}: deploybench {ours[-1]:.3f} ms  bare {bare[-1]:.3f} ms"
                      f"  ratio {ours[-1] / bare[-1]:.4f}")
    ratio = float(np.median(ours) / np.median(bare))
    print(f"\nCPU: {cpu_model()}, {args.threads} threads; onnxruntime CPU EP fp32, "
          f"rtmdet_tiny_shapes 1x3x160x160, {args.rounds} interleaved rounds of "
          f"{args.seconds:g} s per side")
    print(f"median of round medians: deploybench {np.median(ours):.3f} ms, "
          f"bare loop {np.median(bare):.3f} ms")
    print(f"fidelity ratio (deploybench / bare): {ratio:.4f}  "
          f"({'within' if ratio <= 1.02 else 'OUTSIDE'} the 1.02 target)")
    return 0 if ratio <= 1.02 else 1


if __name__ == "__main__":
    sys.exit(main())
