"""Do the answers reproduce? Run the default pipeline's CPU measure groups several times back
to back, each under a new run key, and print for every batch-1 CPU cell its speed-up over
PyTorch fp32 in each run, their max/min, the fastest cell per model in each run (or the tie),
and the same runs' absolute medians beside them.

Each run's docs are written to results/<profile>/<run key>/report/, for `deploybench compare`
between runs. The groups are run with the exact command the pipeline's measure rule runs
(`deploybench measure`, its settings from config.yaml), on the artifacts of a finished run of
the default pipeline (`--from-run`, default `local`: run `make pipeline` first); their results go to
results/<profile>/<run key>/measure/. Target: every speed-up's max/min <= 1.10, and the
fastest cell per model the same in every run or shown as a tie.

    .venv/bin/python benchmarks/ratio_reproducibility.py [--runs 3] [--from-run local]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.10


def group_commands(plan, source) -> list[str]:
    """One `deploybench measure` command per CPU measure group of the plan, reading the
    artifacts of `source` (a finished run's Plan) and writing the plan's own results."""
    import shlex

    from deploybench.commands import group_cell_args, model_args
    from deploybench.results import Cell
    from deploybench.settings import write_section

    settings = Path(plan.settings("measure"))  # the plan's `measure` section, as the DAG writes it
    write_section(settings, plan.config["measure"])
    commands = []
    for (model, shape, device, batch), _ in plan.measure_groups().items():
        if device != "cpu":
            continue
        outputs = [plan.cell_result("measure", Cell(model, "", b, p, batch, device, shape))
                   for b, p in plan.group_combos(device)]
        cells = group_cell_args(source, model, shape, device, outputs)
        commands.append(f"deploybench measure {model_args(source, model, shape)} --device "
                        f"{device} --batch {batch} {cells} "
                        f"--settings {shlex.quote(str(settings))}")
    return commands


def every_round_speedup(plan, cell) -> float | None:
    """The cell's speed-up over all its group's rounds, the disturbed ones too (what the
    published figure would be with `quiet_tolerance: 0`), from the same records."""
    import json
    from dataclasses import replace

    from deploybench.measure.stats import ratio_ci95

    def medians(c):
        path = Path(plan.cell_result("measure", c))
        return json.loads(path.read_text()).get("rounds_ms") if path.is_file() else None

    ref, own = medians(replace(cell, backend="pytorch", precision="fp32")), medians(cell)
    if not ref or not own:
        return None
    return ratio_ci95([r / c for r, c in zip(ref, own, strict=False) if r and c])[0]


def main() -> int:
    from deploybench.config import load
    from deploybench.plan import Plan
    from deploybench.report.build import build_report
    from deploybench.report.summary import fastest
    from deploybench.report.table import load_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--from-run", default="local", help="the finished run whose artifacts "
                                                            "the groups time")
    parser.add_argument("--prefix", default="repro", help="run keys: PREFIX-1, PREFIX-2, ...")
    parser.add_argument("--threads", type=int, help="override measure.threads (a slow-down "
                                                    "for `deploybench compare` to catch)")
    parser.add_argument("--models", nargs="+", help="only these models' groups")
    args = parser.parse_args()
    config = load(REPO / "config.yaml")
    if args.threads is not None:
        config["measure"]["threads"] = args.threads
    if args.models:
        config["matrix"]["models"] = args.models
    source = Plan({**config, "run": args.from_run})
    if not Path(source.results_dir(), "published.json").is_file():
        print(f"no finished run at {source.results_dir()}: run `make pipeline` first")
        return 2
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    frames, every = [], {}
    for i in range(1, args.runs + 1):
        plan = Plan({**config, "run": f"{args.prefix}-{i}"})
        start = time.perf_counter()
        for command in group_commands(plan, source):
            subprocess.run(shlex.split(command), check=True, cwd=REPO,
                           stdout=subprocess.DEVNULL, env=env)
        paths = [plan.cell_result("measure", c) for c in plan.cells() if c.device == "cpu"]
        frame, _ = load_results(paths)
        # The run's own docs, for `deploybench compare` between runs.
        build_report(paths, plan.profile, Path(plan.run_report_dir()), run=plan.run)
        frame["run_index"] = i
        for c in plan.cells():
            if c.device == "cpu" and c.batch == 1:
                every[(i, c.model, c.backend, c.precision)] = every_round_speedup(plan, c)
        frames.append(frame)
        print(f"run {i}: {plan.run}, {time.perf_counter() - start:.0f} s", flush=True)
    runs = pd.concat(frames)
    ok = runs[(runs.batch == 1) & (runs.status == "ok")].copy()
    ok["gate_passed"] = None
    print("\nSpeed-up over PyTorch fp32 (95 % interval half-width), batch 1, per run:")
    worst = 1.0
    for (model, backend, precision), cell in ok.groupby(["model", "backend", "precision"],
                                                        sort=False):
        x = cell.speedup.tolist()
        spread = max(x) / min(x)
        worst = max(worst, spread)
        widths = ((cell.speedup_ci95_high - cell.speedup_ci95_low) / 2 / cell.speedup).tolist()
        ms = cell.latency_ms_median.tolist()
        print(f"  {model:24s} {backend:12s} {precision:5s} "
              + "  ".join(f"x{v:.3f} (+-{100 * w:.1f} %)" for v, w in zip(x, widths, strict=True))
              + f"   max/min {spread:.3f}   ms: " + " ".join(f"{m:.2f}" for m in ms)
              + f" (max/min {max(ms) / min(ms):.2f})")
    print("\nFastest cell per model (ties: every cell its interval does not separate):")
    same = True
    for model, cells in ok.groupby("model", sort=False):
        picks = []
        for i in range(1, args.runs + 1):
            rows = list(cells[cells.run_index == i].itertuples())
            picks.append(frozenset(f"{r.backend} {r.precision}" for r in fastest(rows)))
        winners = [" = ".join(sorted(p)) for p in picks]
        agree = len(set(picks)) == 1 or bool(frozenset.intersection(*picks))
        same &= agree
        print(f"  {model:24s} " + " | ".join(winners) + ("" if agree else "   DIFFERS"))
    print("\nThe same rounds with the disturbed ones kept (quiet_tolerance 0), max/min:")
    worst_every = 1.0
    for (model, backend, precision), cell in ok.groupby(["model", "backend", "precision"],
                                                        sort=False):
        x = [every.get((i, model, backend, precision)) for i in cell.run_index]
        if backend == "pytorch" or not all(x):
            continue
        worst_every = max(worst_every, max(x) / min(x))
        print(f"  {model:24s} {backend:12s} {precision:5s} "
              + "  ".join(f"x{v:.3f}" for v in x) + f"   max/min {max(x) / min(x):.3f}")
    print(f"worst with every round: {worst_every:.3f}")
    print(f"\nworst speed-up max/min {worst:.3f} (target <= {TARGET}); fastest cell "
          f"{'the same or a shared tie in every run' if same else 'DIFFERS between runs'}")
    return 0 if worst <= TARGET and same else 1


if __name__ == "__main__":
    sys.exit(main())
