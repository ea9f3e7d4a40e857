"""`python -m deploybench.device_check`: the embedded default's cells that a bare GPU machine can
run (PyTorch, TorchScript, torch.compile at fp32 and fp16), through the project's own backends
and runners, each compared with PyTorch fp32 on the CPU; prints one table. For a machine that
has a CUDA build of torch but neither the registries nor the pipeline's other packages
(scripts/device-check.sh); the full pipeline on a GPU is scripts/gpu-cells.sh.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from deploybench.backends import get_backend
from deploybench.backends.registry import spec
from deploybench.data.synthetic import SyntheticSpec, generate
from deploybench.models.adapter import load_adapter

REPO = Path(__file__).resolve().parents[2]
MODELS = ("rtmdet_tiny_shapes", "fast_scnn_shapes")
BACKENDS = ("pytorch", "torchscript", "torch_compile")  # what needs no other runtime


def _entry(name: str) -> tuple[Path, Path]:
    import yaml

    model = yaml.safe_load((REPO / "config.yaml").read_text())["models"][name]
    return REPO / model["config"], REPO / model["checkpoint"]["url"].removeprefix("file:")


def time_cell(runner, x: np.ndarray, iters: int) -> tuple[float, list[np.ndarray]]:
    """Median ms of `iters` synchronised calls on the input already on the device."""
    device_input = runner.to_device(x)
    for _ in range(5):
        runner.run(device_input)
    runner.synchronize()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        outputs = runner.run(device_input)
        runner.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), runner.to_host(outputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "shapes", SyntheticSpec(seed=0, num_train=2, num_val=4))
        for model in MODELS:
            config, checkpoint = _entry(model)
            cpu = load_adapter(config, checkpoint)
            _, sample, _ = next(cpu.batches(cpu.dataset(data)))
            x = np.ascontiguousarray(sample.cpu().numpy())
            reference = get_backend("pytorch").load(cpu, None, "fp32", "cpu", 2).infer(x)
            adapter = load_adapter(config, checkpoint, args.device)
            for backend, precision in [(b, p) for b in BACKENDS
                                       for p in spec(b).support.get(args.device, ())]:
                ok, reason = get_backend(backend).available(precision, args.device)
                if not ok:
                    rows.append((model, backend, precision, "skipped", reason[:60]))
                    continue
                try:
                    runner = get_backend(backend).load(adapter, None, precision, args.device, 2)
                    ms, outputs = time_cell(runner, x, args.iters)
                except Exception as err:  # noqa: BLE001 - a failed cell is a row, not the end
                    rows.append((model, backend, precision, "failed", str(err)[:60]))
                    continue
                diff = max(float(np.max(np.abs(a - b))) for a, b in
                           zip(outputs, reference, strict=True))
                rows.append((model, backend, precision, f"{ms:.2f} ms", f"max |diff| {diff:.2g}"))
    width = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in [("model", "backend", "precision", "median", "vs PyTorch fp32 CPU"), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)))
    return 1 if any(r[3] == "failed" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
