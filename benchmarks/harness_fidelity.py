"""Harness fidelity: does deploybench time exactly the work, no more and no less, per backend?

For each CPU backend, on the embedded detector at its benchmarked shape and the pipeline's
thread setting, two fresh processes are timed side by side, interleaved as a measure group
times its cells (rounds, each side one slice per round, in random order):
(a) the harness: the measure step's own target (`deploybench.measure.run.open_target`) and its
    slice timer, with the idle settings the pipeline runs with (`GOMP_SPINCOUNT`, ORT's
    `session.force_spinning_stop`);
(b) the backend's own bare loop on the same artifact and threads, with the runtime's defaults:
    - ONNX Runtime: `session.run` with default session options but
      `session.force_spinning_stop=1`, as the harness (the pip wheel ships no
      `onnxruntime_perf_test`; with ORT's default its pool keeps spinning into the other side's
      slices and slows them);
    - OpenVINO: `compile_model` + `InferRequest.infer`, f32, the same threads;
    - PyTorch: the model's tensor-mode network under `torch.no_grad()`;
    - TorchScript: the same network traced and frozen.
Each round's ratio is (a)'s slice median over (b)'s; the estimate is their geometric mean with
Student's t 95 % interval (as the speed-ups are). OpenVINO's own `benchmark_app` (shipped in the
openvino wheel) is an external reference too: `--app-rounds` rounds alternate a run of it with
as long a stretch of harness slices, and their medians' ratio is printed.

Two-sided target: 0.97 to 1.03. Above: the harness adds work; below: it leaves work out (a call
that returns before the work is done, an input cached on the device, outputs never made).

    .venv/bin/python benchmarks/harness_fidelity.py [--backends ...] [--rounds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from embedded import REPO, exported

MODEL = "rtmdet_tiny_shapes"
TARGET = (0.97, 1.03)

# Both sides answer the same requests on stdin: "N" -> N timed calls (a JSON list of ms);
# "S:seconds" -> timed calls for that long.
SERVE = """
import json, sys, time
def serve(call):
    for _ in range(5):
        call()
    start = time.perf_counter()
    while time.perf_counter() - start < 1.0:
        call()
    print("READY", flush=True)
    for line in sys.stdin:
        line = line.strip()
        samples, start = [], time.perf_counter()
        while (len(samples) < int(line)) if not line.startswith("S:") else \\
                (time.perf_counter() - start < float(line[2:])):
            t0 = time.perf_counter_ns(); call(); samples.append((time.perf_counter_ns() - t0) / 1e6)
        print(json.dumps(samples), flush=True)
"""
HARNESS = """
from deploybench.measure import allocator, idle
idle.apply_env()
allocator.keep_freed_memory()  # as each measure worker does before its cell loads
from pathlib import Path
from deploybench.cell import CellInputs
from deploybench.measure.run import open_target
from deploybench.results import Cell
config, checkpoint, data, backend, artifact, threads, h, w = sys.argv[1:9]
inputs = CellInputs(Path(config), Path(checkpoint), Path(data),
                    None if artifact == "-" else Path(artifact), "cpu", int(threads))
cell = Cell("m", "detection", backend, "fp32")
with open_target(cell, inputs, [1, 3, int(h), int(w)], None, 0, 5) as target:
    serve(target.call)
"""
NATIVE = """
import numpy as np
config, checkpoint, batch_file, backend, artifact, threads = sys.argv[1:7]
batch, threads = np.load(batch_file), int(threads)
if backend == "onnxruntime":
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Interleaved, a side that spins while the other runs slows it (ORT's default spun 0.18
    # cores after each burst here): both sides stop spinning when a call returns.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    session = ort.InferenceSession(artifact, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: batch}
    serve(lambda: session.run(None, feed))
elif backend == "openvino":
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(artifact, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                    "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    serve(lambda: request.infer([batch]))
else:
    import torch
    from deploybench.models.adapter import load_adapter
    torch.set_num_threads(threads)
    network = load_adapter(config, checkpoint).network
    x = torch.from_numpy(batch)
    with torch.no_grad():
        if backend == "torchscript":
            network = torch.jit.freeze(torch.jit.trace(network, x, check_trace=False).eval())
        serve(lambda: network(x))
"""


class Side:
    """A process that answers timing requests (SERVE's protocol)."""

    def __init__(self, code: str, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SERVE + code, *args], cwd=REPO,
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        line = "-"
        while line and line.strip() != "READY":
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {args[3]} side exited before it was ready")

    def time(self, request: str) -> list[float]:
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def benchmark_app(onnx: Path, threads: int, seconds: float) -> float:
    command = [str(Path(sys.executable).with_name("benchmark_app")), "-m", str(onnx), "-d",
               "CPU", "-api", "sync", "-nstreams", "1", "-nthreads", str(threads),
               "-hint", "none", "-infer_precision", "f32", "-t", str(max(1, int(seconds)))]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"Median:\s+([0-9.]+) ms", out).group(1))


def main() -> int:
    from deploybench.measure.stats import ratio_ci95
    from deploybench.provenance import cpu_model, usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+",
                        default=["pytorch", "torchscript", "onnxruntime", "openvino"])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--slice-seconds", type=float, default=0.05)
    parser.add_argument("--app-rounds", type=int, default=4,
                        help="rounds against OpenVINO's benchmark_app (0: none)")
    parser.add_argument("--app-seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {args.threads} threads; {MODEL} fp32; {args.rounds} "
          f"interleaved rounds of ~{1000 * args.slice_seconds:g} ms slices; target "
          f"{TARGET[0]}-{TARGET[1]}", flush=True)
    rng = np.random.default_rng(0)
    native_env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    verdicts = []
    with exported(MODEL) as model, tempfile.TemporaryDirectory() as tmp:
        batch = Path(tmp) / "batch.npy"
        np.save(batch, np.ascontiguousarray(model.batch.numpy()))
        h, w = map(str, model.batch.shape[2:])
        for backend in args.backends:
            artifact = str(model.onnx) if backend in ("onnxruntime", "openvino") else "-"
            common = [str(model.config), str(model.checkpoint)]
            harness = Side(HARNESS, [*common, str(model.data), backend, artifact,
                                     str(args.threads), h, w], native_env)
            native = Side(NATIVE, [*common, str(batch), backend, artifact, str(args.threads)],
                          native_env)
            call_ms = float(np.median(native.time("10")))
            calls = str(max(3, round(1000 * args.slice_seconds / call_ms)))
            ratios = []
            for _ in range(args.rounds):
                sides = {"harness": harness, "native": native}
                medians = {}
                for name in rng.permutation(list(sides)):
                    medians[name] = float(np.median(sides[name].time(calls)))
                ratios.append(medians["harness"] / medians["native"])
            estimate, low, high = ratio_ci95(ratios)
            inside = TARGET[0] <= low and high <= TARGET[1]
            verdicts.append(TARGET[0] <= estimate <= TARGET[1])
            verdict = "within" if inside else "estimate " + (
                "within" if verdicts[-1] else "OUTSIDE")
            print(f"{backend:12s} harness / native {estimate:.4f} (95 % CI {low:.4f}-"
                  f"{high:.4f}, {args.rounds} rounds of {calls} calls; native median "
                  f"{call_ms:.2f} ms): {verdict} {TARGET[0]}-{TARGET[1]}", flush=True)
            native.close()
            if backend == "openvino" and args.app_rounds:
                app = []
                for i in range(args.app_rounds):
                    first_app = i % 2 == 1
                    theirs = benchmark_app(model.onnx, args.threads, args.app_seconds) \
                        if first_app else None
                    mine = float(np.median(harness.time(f"S:{args.app_seconds}")))
                    if not first_app:
                        theirs = benchmark_app(model.onnx, args.threads, args.app_seconds)
                    app.append(mine / theirs)
                    print(f"  openvino vs benchmark_app round {i + 1}: harness {mine:.3f} ms, "
                          f"benchmark_app {theirs:.3f} ms, ratio {mine / theirs:.4f}", flush=True)
                estimate, low, high = ratio_ci95(app)
                print(f"openvino     harness / benchmark_app {estimate:.4f} (95 % CI "
                      f"{low:.4f}-{high:.4f}, {args.app_rounds} alternating runs of "
                      f"{args.app_seconds:g} s)", flush=True)
            harness.close()
            time.sleep(0.5)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
