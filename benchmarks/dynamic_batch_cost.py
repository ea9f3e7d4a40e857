"""What a dynamic batch axis costs at batch 1: a model measured at several batch sizes is
exported once with a dynamic batch axis, and its batch-1 cells run that graph, where a
batch-1-only model runs a fully static one. Both exports of one model are timed in ONNX Runtime
in one process, interleaved over rounds; prints the medians, and the dynamic graph's time per
image at larger batches.

    .venv/bin/python benchmarks/dynamic_batch_cost.py [--model fast_scnn_shapes] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from embedded import exported


def main() -> int:
    import onnxruntime as ort

    from deploybench.export.onnx_export import export_onnx
    from deploybench.provenance import cpu_model, usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fast_scnn_shapes")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=30, help="per round and graph")
    parser.add_argument("--max-batch", type=int, default=4)
    args = parser.parse_args()
    threads = usable_cores()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    with exported(args.model) as model:
        dynamic = model.onnx.with_name("dynamic.onnx")
        export_onnx(model.adapter, model.batch, dynamic, 17, dynamic_batch=args.max_batch)
        sessions = {name: ort.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
                    for name, path in (("static", model.onnx), ("dynamic", dynamic))}
        image = np.ascontiguousarray(model.batch.numpy())
        batches = [b for b in (1, 2, 4, 8) if b <= args.max_batch]
        setups = [("static", 1)] + [("dynamic", b) for b in batches]
        times: dict[tuple[str, int], list[float]] = {s: [] for s in setups}
        for _ in range(args.rounds):
            for name, batch in setups:
                feed = {"input": np.ascontiguousarray(np.repeat(image, batch, axis=0))}
                for i in range(args.calls + 3):  # 3 warm-up calls per round
                    start = time.perf_counter()
                    sessions[name].run(None, feed)
                    if i >= 3:
                        times[(name, batch)].append((time.perf_counter() - start) * 1e3)
    print(f"{cpu_model()}, {threads} threads; {args.model}; {args.rounds} rounds x "
          f"{args.calls} calls")
    for (name, batch), samples in times.items():
        median = statistics.median(samples)
        print(f"{name} graph, batch {batch}: median {median:.2f} ms, "
              f"{median / batch:.2f} ms per image")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
