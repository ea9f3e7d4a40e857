"""Harness fidelity: does deploybench time exactly the work, no more and no less, per backend?

For each CPU backend, on the embedded detector at its benchmarked shape and the pipeline's thread
setting, interleave rounds of
(a) the real measure step, `deploybench measure` as a subprocess (no stage breakdown), and
(b) the backend's own reference timer on the same artifact, in a fresh process:
    - ONNX Runtime: a bare `session.run` loop with the pipeline's session options (the pip wheel
      ships no `onnxruntime_perf_test`);
    - OpenVINO: its `benchmark_app` (sync API, one stream, the same threads, f32), median latency;
    - PyTorch: a bare loop over the model's tensor-mode network under `torch.no_grad()`;
    - TorchScript: the same network traced and frozen, then a bare loop;
and print, per backend, the ratio of the two medians (a / b) for every round and their median.
Two-sided target: 0.97 to 1.03. Above: the harness adds work; below: it leaves work out (a call
that returns before the work is done, an input cached on the device, outputs never made).

    .venv/bin/python benchmarks/harness_fidelity.py [--backends ...] [--rounds 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from embedded import REPO, exported

MODEL = "rtmdet_tiny_shapes"
TARGET = (0.97, 1.03)

# Each bare loop: warm up for a second, then time `seconds`; print the median in ms.
LOOP = """
import sys, time, numpy as np
def loop(call, seconds):
    start = time.perf_counter()
    while time.perf_counter() - start < 1.0:
        call()
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 20:
        t0 = time.perf_counter_ns(); call(); samples.append((time.perf_counter_ns() - t0) / 1e6)
    print("MEDIAN_MS", float(np.median(samples)))
"""
ORT = LOOP + """
import onnxruntime as ort
from deploybench.backends.onnxruntime import session_options
onnx, batch = sys.argv[1], np.load(sys.argv[2])
threads, seconds = int(sys.argv[3]), float(sys.argv[4])
options = session_options(threads)
session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
feed = {session.get_inputs()[0].name: batch}
loop(lambda: session.run(None, feed), seconds)
"""
TORCH = LOOP + """
import torch
from deploybench.models.adapter import load_adapter
config, checkpoint, batch, threads, seconds, trace = sys.argv[1:7]
torch.set_num_threads(int(threads))
network = load_adapter(config, checkpoint).network
x = torch.from_numpy(np.load(batch))
with torch.no_grad():
    if trace == "1":  # as the torchscript backend: traced, then frozen
        network = torch.jit.freeze(torch.jit.trace(network, x, check_trace=False).eval())
    loop(lambda: network(x), float(seconds))
"""


def ours(model, backend: str, threads: int, seconds: float, work: Path) -> float:
    args = [str(Path(sys.executable).with_name("deploybench")), "measure", "--model", MODEL,
            "--task", "detection", "--config", str(model.config), "--checkpoint",
            str(model.checkpoint), "--data", str(model.data), "--input-shape",
            *map(str, model.batch.shape[2:]), "--backend", backend, "--precision", "fp32",
            "--threads", str(threads), "--warmup-seconds", "1", "--min-seconds", str(seconds),
            "--stage-images", "0", "--out", str(work / "measure.json")]
    if backend in ("onnxruntime", "openvino"):
        args += ["--artifact", str(model.onnx)]
    subprocess.run(args, check=True, capture_output=True, cwd=REPO)
    return json.loads((work / "measure.json").read_text())["latency_ms"]["median"]


def reference(model, backend: str, threads: int, seconds: float, batch: Path) -> float:
    python = sys.executable
    if backend == "onnxruntime":
        command = [python, "-c", ORT, str(model.onnx), str(batch), str(threads), str(seconds)]
    elif backend == "openvino":
        command = [str(Path(python).with_name("benchmark_app")), "-m", str(model.onnx), "-d",
                   "CPU", "-api", "sync", "-nstreams", "1", "-nthreads", str(threads),
                   "-hint", "none", "-infer_precision", "f32", "-t", str(int(seconds))]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return float(re.search(r"Median:\s+([0-9.]+) ms", out).group(1))
    else:
        command = [python, "-c", TORCH, str(model.config), str(model.checkpoint), str(batch),
                   str(threads), str(seconds), "1" if backend == "torchscript" else "0"]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return float(re.search(r"MEDIAN_MS ([0-9.]+)", out).group(1))


def main() -> int:
    from deploybench.provenance import cpu_model, usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+",
                        default=["pytorch", "torchscript", "onnxruntime", "openvino"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed per round and side")
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {args.threads} threads; {MODEL} fp32, {args.rounds} interleaved "
          f"rounds of {args.seconds:g} s per side; target {TARGET[0]}-{TARGET[1]}")
    verdicts = []
    with exported(MODEL) as model, tempfile.TemporaryDirectory() as tmp:
        batch = Path(tmp) / "batch.npy"
        np.save(batch, np.ascontiguousarray(model.batch.numpy()))
        for backend in args.backends:
            ratios = []
            for i in range(args.rounds):
                # Alternate which side goes first, so neither always follows the other.
                sides = [lambda b=backend: ours(model, b, args.threads, args.seconds, Path(tmp)),
                         lambda b=backend: reference(model, b, args.threads, args.seconds,
                                                     batch)]
                first, second = (sides if i % 2 == 0 else sides[::-1])
                a, b = first(), second()
                mine, theirs = (a, b) if i % 2 == 0 else (b, a)
                ratios.append(mine / theirs)
                print(f"  {backend:12s} round {i + 1}: deploybench {mine:7.3f} ms  "
                      f"reference {theirs:7.3f} ms  ratio {mine / theirs:.4f}", flush=True)
            ratio = float(np.median(ratios))
            inside = TARGET[0] <= ratio <= TARGET[1]
            verdicts.append(inside)
            print(f"{backend:12s} median ratio {ratio:.4f} (rounds {min(ratios):.4f}-"
                  f"{max(ratios):.4f}): {'within' if inside else 'OUTSIDE'} {TARGET[0]}-"
                  f"{TARGET[1]}", flush=True)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
