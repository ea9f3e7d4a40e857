"""The cells and builds this machine cannot run, written as skipped in one job.

On a CPU-only machine the default matrix plans dozens of CUDA cells. Each would otherwise be a
job of its own that starts Python, imports torch and writes one "skipped" record. The
`unavailable_cells` rule writes them all at once instead; the report shows them as before.
The rule's outputs come from the same Plan as this module's, and its `machine` param holds the
reasons, so a machine that gains a GPU moves those files back to their own rules and reruns them.

On a cluster the machine is a node type: what its profile's `cluster` entry says it lacks (a
GPU) is written here, on the submit host, instead of becoming jobs; the rest each job decides.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from deploybench.atomic import write_json
from deploybench.backends.placeholder import placeholder
from deploybench.backends.registry import builds
from deploybench.plan import Plan
from deploybench.results import Cell, record

# (backend, device, precision) -> why it cannot run, or "" where it can
Reason = Callable[[str, str, str], str]


@functools.cache
def machine_reason(backend: str, device: str, precision: str) -> str:
    """Empty when this machine can run (backend, device, precision), else why not."""
    from deploybench.backends import skip_reason

    return skip_reason(backend, precision, device)


def unavailable_cells(plan: Plan, reason: Reason = machine_reason) -> list[Cell]:
    return [c for c in plan.cells() if reason(c.backend, c.device, c.precision)]


def _unavailable_results(plan: Plan, reason: Reason) -> list[tuple[Cell, str, str]]:
    """(cell, step, path) of the results written here. A measurement only where the cell's
    whole measure group cannot run here: a group with a cell that can runs as one job, which
    writes its other cells as skipped itself."""
    groups = plan.measure_groups()
    unavailable = {(c.model, c.shape, c.device, c.batch) for c in unavailable_cells(plan, reason)}
    whole = {key for key in unavailable
             if all(reason(c.backend, c.device, c.precision) for c in groups[key])}
    return [(cell, step, path) for cell in unavailable_cells(plan, reason)
            for step, path in plan.cell_results(cell)
            if step != "measure" or (cell.model, cell.shape, cell.device, cell.batch) in whole
            ] + [(cell, "train", plan.train_result(cell)) for cell in unavailable_training(
                plan, reason)]


def unavailable_training(plan: Plan, reason: Reason = machine_reason) -> list[Cell]:
    """The training cells whose device this machine lacks (PyTorch's, as its fp32 cells)."""
    return [c for c in plan.train_cells() if reason("pytorch", c.device, "fp32")]


def unavailable_builds(plan: Plan, reason: Reason = machine_reason
                       ) -> list[tuple[str, str, str, str, str]]:
    return [b for b in plan.builds() if reason(*b[2:])]


def _build_files(plan: Plan, build: tuple[str, str, str, str, str]) -> list[str]:
    """A build's artifact and the files written beside it (an OpenVINO IR's weights), then its
    result."""
    return [*builds()[build[2:]].files(plan.built(*build)), plan.build_result(*build)]


def outputs(plan: Plan, reason: Reason = machine_reason) -> list[str]:
    """Every file the `unavailable_cells` rule writes (empty: the rule is not defined)."""
    files = [path for _, _, path in _unavailable_results(plan, reason)]
    return files + [f for b in unavailable_builds(plan, reason) for f in _build_files(plan, b)]


def reasons(plan: Plan, reason: Reason = machine_reason) -> dict[str, str]:
    """backend/device/precision -> why this machine cannot run it (the rule's `machine` param)."""
    combos = {(c.backend, c.device, c.precision) for c in unavailable_cells(plan, reason)}
    combos |= {b[2:] for b in unavailable_builds(plan, reason)}
    combos |= {("pytorch", c.device, "fp32") for c in unavailable_training(plan, reason)}
    return {"/".join(k): reason(*k) for k in sorted(combos)}


def write_unavailable(plan: Plan, reason: Reason = machine_reason) -> int:
    """Write every unavailable cell's and build's records (and empty build artifacts, the
    outputs their rules promise); returns how many records."""
    count = 0
    for cell, step, path in _unavailable_results(plan, reason):
        why = reason(cell.backend, cell.device, "fp32" if step == "train" else cell.precision)
        write_json(path, record(step, cell, "skipped", why, {}, {"device": cell.device}))
        count += 1
    for build in unavailable_builds(plan, reason):
        model, shape, backend, device, precision = build
        cell = Cell(model, plan.model(model)["task"], backend, precision, 1, device, shape)
        spec = builds()[backend, device, precision]
        placeholder(Path(plan.built(*build)), companions=spec.companions)
        settings = {"device": device, "artifact": spec.artifact}
        write_json(plan.build_result(*build), record(
            "build", cell, "skipped", reason(backend, device, precision), {}, settings))
        count += 1
    return count


def write_all(plans: dict[str, Plan], reasons: dict[str, Reason], log: Path) -> None:
    """The `unavailable_cells` job: every profile's unavailable cells and builds, and a log
    line saying how many records."""
    count = sum(write_unavailable(plans[p], r) for p, r in reasons.items())
    log.write_text(f"wrote {count} skipped records: cells and builds this machine cannot run\n")
