"""Do the published confidence intervals cover what a rerun measures?

Runs the pipeline's measure step N more times back to back (each under its own run key, one
model, one fp32 cell per CPU backend, the config's repeats and stopping rule), then prints, per
cell, the published median and 95 % interval from reports/<profile>/results.csv next to each
rerun's median, and whether each falls inside.

    .venv/bin/python benchmarks/interval_coverage.py [--runs 3] [--model rtmdet_tiny_shapes]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["pytorch", "torchscript", "onnxruntime", "openvino"]


def main() -> int:
    from deploybench.config import Plan, validate
    from deploybench.report.table import load_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="rtmdet_tiny_shapes")
    parser.add_argument("--prefix", default="coverage", help="run keys: <prefix>-1, ...")
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    plan = Plan(validate(base))
    published = pd.read_csv(REPO / plan.published_dir() / "results.csv")
    published = published[(published.model == args.model) & (published.device == "cpu")
                           & (published.precision == "fp32") & (published.batch == 1)]
    medians: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for i in range(1, args.runs + 1):
        run = f"{args.prefix}-{i}"
        overlay = {"run": run, "matrix": {"models": [args.model], "backends": BACKENDS,
                                          "devices": ["cpu"], "precisions": ["fp32"]}}
        path = REPO / "results" / f"{run}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(overlay))
        subprocess.run([str(Path(sys.executable).with_name("snakemake")), "--cores", "all",
                        "--configfile", str(path), "--until", "measure", "--quiet"],
                       cwd=REPO, check=True)
        rerun = Plan(validate({**base, **overlay}))
        frame, _ = load_results([p for c in rerun.cells() for step, p in rerun.cell_results(c)
                                 if step == "measure"])
        for row in frame.itertuples():
            medians[row.backend].append(row.latency_ms_median)
        print(f"run {run} done", flush=True)
    inside = total = 0
    print(f"\n{args.model} fp32, cpu: published median [95 % CI] vs {args.runs} reruns")
    for row in published[published.backend.isin(BACKENDS)].itertuples():
        low, high = row.latency_ms_median_ci95_low, row.latency_ms_median_ci95_high
        marks = []
        for m in medians[row.backend]:
            ok = low <= m <= high
            inside, total = inside + ok, total + 1
            marks.append(f"{m:.2f}{'' if ok else ' (outside)'}")
        print(f"  {row.backend:12s} {row.latency_ms_median:7.2f} [{low:.2f}-{high:.2f}]  "
              f"reruns: {', '.join(marks)}")
    print(f"{inside} of {total} rerun medians inside the published interval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
