"""A two-stage detector's post-processing right after its first graph ran in PyTorch or ONNX
Runtime, with the RoI heads in PyTorch or as ONNX Runtime graphs.

The stage breakdown once showed the Mask R-CNN fixture's proposals and RoI heads slower in the
ONNX Runtime cell than in the PyTorch cell. Here the post-processing is timed right after each
first-graph call (ONNX Runtime without intra-op spinning, as the stage timing runs it), in one
process, the set-ups interleaved over rounds: the hand-over between backends alone, and what the
RoI heads' own graphs change. Prints the medians.

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
        pytorch = get_backend("pytorch").load(adapter, None, "fp32", "cpu", threads)
        ort = get_backend("onnxruntime").load(adapter, model.onnx, "fp32", "cpu", threads)
        head_graphs = adapter.head_graphs  # attached by the ONNX Runtime load
        setups = {"PyTorch graph, PyTorch heads": (pytorch, {}),
                  "ONNX Runtime graph, PyTorch heads": (ort, {}),
                  "ONNX Runtime graph, ONNX Runtime heads": (ort, head_graphs)}
        for runner in (pytorch, ort):
            runner.share_cores()
        x = np.ascontiguousarray(batch.numpy())
        post: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(args.rounds):
            for name, (runner, heads) in setups.items():
                adapter.head_graphs = heads
                for i in range(args.calls + 3):  # 3 warm-up calls per round
                    outputs = runner.to_host(runner.run(runner.to_device(x)))
                    start = time.perf_counter()
                    adapter.postprocess(outputs, batch, [s.clone() for s in samples])
                    if i >= 3:
                        post[name].append((time.perf_counter() - start) * 1e3)
    print(f"{cpu_model()}, {threads} threads; {args.rounds} rounds x {args.calls} calls")
    for name, times in post.items():
        print(f"{name}: post-processing median {statistics.median(times):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
