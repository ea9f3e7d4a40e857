"""Does training speed reproduce? Run the default pipeline's CPU training cells several times
back to back (the models in turn, round after round) with the exact command the pipeline's
train rule runs (`deploybench train`, its settings from config.yaml), and print for each model
its median s/iter in each run with the 95 % interval, the data / compute split, the window's
machine-speed index (the reference kernel's median) and other processes' CPU, and max/min over
the runs.

Target: max/min <= 1.15 for every model, or the intervals say why not (other processes busy,
or intervals as wide as the gap). Needs the default pipeline's data and checkpoints (`make
pipeline`, or `snakemake --cores 2 resources/data/shapes` and the fetch jobs).

    .venv/bin/python benchmarks/train_reproducibility.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from deploybench.commands import train_model_args
    from deploybench.config import load
    from deploybench.plan import Plan
    from deploybench.settings import write_section

    config = load(REPO / "config.yaml")
    plan = Plan(config)
    work = Path(tempfile.mkdtemp(prefix="train-repro-"))
    settings = work / "train.json"
    write_section(settings, config["train"])
    deploybench = Path(sys.executable).with_name("deploybench")
    figures: dict[str, list[dict]] = {}
    for run in range(args.runs):
        for model in plan.model_names:
            out = work / f"{model}-{run}.json"
            command = (f"{shlex.quote(str(deploybench))} train {train_model_args(plan, model)} "
                       f"--device cpu --precision fp32 --settings {settings} --out {out}")
            subprocess.run(command, shell=True, cwd=REPO, check=True, capture_output=True)
            record = json.loads(out.read_text())
            figures.setdefault(model, []).append(record["train"])
            t = record["train"]
            print(f"run {run + 1} {model}: {t['s_per_iter']['median']:.4f} s/iter "
                  f"[{t['s_per_iter']['ci95_low']:.4f}, {t['s_per_iter']['ci95_high']:.4f}] "
                  f"data {t['data_s']['median']:.4f} compute {t['compute_s']['median']:.4f}, "
                  f"{t['iters']} iterations, kernel {median(t['reference_readings_ms']):.2f} ms, "
                  f"other processes {t['other_load']['other_cores']:.2f} cores", flush=True)
    worst = 1.0
    print(f"\nmax/min of the median s/iter over {args.runs} runs (target <= {TARGET}):")
    for model, runs in figures.items():
        medians = [t["s_per_iter"]["median"] for t in runs]
        spread = max(medians) / min(medians)
        worst = max(worst, spread)
        print(f"  {model}: {spread:.3f}  ({', '.join(f'{m:.4f}' for m in medians)})")
    print(f"worst {worst:.3f}: {'met' if worst <= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
