"""ONNX Runtime intra-op spinning vs the post-processing that follows each call.

Why the end-to-end stage timing runs ORT with `session.intra_op.allow_spinning=0`: on the
embedded segmentor, time the network call and then the model's own post-processing (resize +
argmax) right after it, with spinning on (ORT's default) and off, interleaved; and the
post-processing alone. Prints the medians.

    .venv/bin/python benchmarks/ort_spinning.py [--rounds 6] [--calls 60]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from embedded import exported


def main() -> int:
    import torch

    from deploybench.backends.onnxruntime import OrtRunner
    from deploybench.provenance import cpu_model, usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=60, help="per round and side")
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with exported("fast_scnn_shapes") as model:
        adapter, batch, samples = model.adapter, model.batch, model.samples
        x = np.ascontiguousarray(batch.numpy())
        runners = {"on": OrtRunner(model.onnx, args.threads),
                   "off": OrtRunner(model.onnx, args.threads, spinning=False)}
        outputs = runners["on"].infer(x)
        network = {k: [] for k in runners}
        post = {k: [] for k in [*runners, "alone"]}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    runner.run(x)
                    t1 = time.perf_counter()
                    adapter.postprocess(outputs, batch, [s.clone() for s in samples])
                    network[name].append(t1 - t0)
                    post[name].append(time.perf_counter() - t1)
            for _ in range(args.calls):
                t1 = time.perf_counter()
                adapter.postprocess(outputs, batch, [s.clone() for s in samples])
                post["alone"].append(time.perf_counter() - t1)
    print(f"CPU: {cpu_model()}, {args.threads} threads; fast_scnn_shapes 1x3x192x192, ORT CPU "
          f"EP fp32, {args.rounds} interleaved rounds of {args.calls} calls")
    for name in runners:
        print(f"spinning {name:>3}: network {1e3 * np.median(network[name]):.2f} ms, "
              f"post-processing right after it {1e3 * np.median(post[name]):.2f} ms")
    print(f"post-processing with no ORT call before it: {1e3 * np.median(post['alone']):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
