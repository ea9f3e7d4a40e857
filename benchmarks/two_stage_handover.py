"""A two-stage detector's PyTorch part right after its graph ran in PyTorch or ONNX Runtime.

The stage breakdown showed the Mask R-CNN fixture's proposals and RoI heads (PyTorch) slower in
the ONNX Runtime cell than in the PyTorch cell. Here the same post-processing is timed right
after each backend's graph call (ONNX Runtime without intra-op spinning, as the stage timing
runs it), in one process, the backends interleaved over rounds. Prints the medians.

    .venv/bin/python benchmarks/two_stage_handover.py [--rounds 4] [--calls 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from embedded import exported


def main() -> int:
    from deploybench.backends import get_backend
    from deploybench.provenance import cpu_model, usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=30, help="per round and backend")
    args = parser.parse_args()
    threads = usable_cores()
    with exported("mask_rcnn_r18_shapes") as model:
        adapter, batch, samples = model.adapter, model.batch, model.samples
        runners = {"pytorch": get_backend("pytorch").load(adapter, None, "fp32", "cpu", threads),
                   "onnxruntime": get_backend("onnxruntime").load(adapter, model.onnx, "fp32",
                                                                  "cpu", threads)}
        for runner in runners.values():
            runner.share_cores()
        x = np.ascontiguousarray(batch.numpy())
        post: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                for i in range(args.calls + 3):  # 3 warm-up calls per round
                    outputs = runner.to_host(runner.run(runner.to_device(x)))
                    start = time.perf_counter()
                    adapter.postprocess(outputs, batch, [s.clone() for s in samples])
                    if i >= 3:
                        post[name].append((time.perf_counter() - start) * 1e3)
    print(f"{cpu_model()}, {threads} threads; {args.rounds} rounds x {args.calls} calls")
    for name, times in post.items():
        print(f"post-processing after the {name} graph: median {statistics.median(times):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
