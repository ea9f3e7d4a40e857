"""A measure group: the cells a reader compares (one model x input shape x device x batch),
timed side by side in one window.

Each cell runs in a worker process of its own (`deploybench.measure.worker`: its own threads,
memory and peak-RSS figure; a crash fails that cell, not the group). The conductor here loads
them all, times each one's first call apart and warms each up, one at a time; then it runs
rounds: every live cell, in a new random order each round, runs one short slice of calls while
the others wait blocked. A drifting machine (a neighbour, clocks, thermals) then slows every
cell of a round alike, so the per-round ratio of a cell to the group's reference cell (PyTorch
fp32) cancels it. Rounds go on until every cell's speed-up has a 95 % interval within
+-`precision`, or the group's time cap; the records say which, and how many rounds and slices
ran. On a GPU the same holds: one cell at a time on the one device, the same rotation.
"""

from __future__ import annotations

import multiprocessing
import time
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.backends import skip_reason
from deploybench.measure import idle
from deploybench.measure.machine_state import GpuSampler, OtherLoad, cpu_state
from deploybench.measure.run import SCOPE
from deploybench.measure.states import quiet_rounds, slowdowns
from deploybench.measure.stats import (
    hierarchical_median_ci95,
    latency_stats,
    ratio_ci95,
    relative_halfwidth,
)
from deploybench.measure.worker import serve
from deploybench.results import Cell

REFERENCE = ("pytorch", "fp32")
MIN_SLICE_CALLS = 3  # a slice's median then shrugs off one slow call
LOAD_SECONDS = 1800.0  # loading includes compiling (TorchScript tracing, torch.compile, OpenVINO)
STAGES_SECONDS = 1800.0


@dataclass(frozen=True)
class GroupSettings:
    """The config's `measure` section (its defaults are the schema's: `settings`)."""

    warmup_iters: int
    warmup_seconds: float
    min_rounds: int
    min_seconds: float  # a machine's states last seconds: span several of them
    max_seconds: float  # the group's time cap for its rounds
    slice_seconds: float
    precision: float  # the speed-ups' 95 % intervals' target half-width
    stage_images: int
    threads: int  # 0: every usable core
    processes: int  # worker processes per cell, taking the rounds in turn
    # rounds slower than the machine's quiet level by more than this are left out (states.py)
    quiet_tolerance: float

    @classmethod
    def of(cls, values: Mapping[str, Any] | None = None, **overrides: Any) -> GroupSettings:
        """From a `measure` section (default: the schema's defaults) and any overrides."""
        from deploybench.settings import defaults

        merged = {**defaults("measure"), **(values or {}), **overrides}
        return cls(**{f.name: merged[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Member:
    cell: Cell
    artifact: Path | None


def label(cell: Cell) -> str:
    return f"{cell.backend} {cell.precision}"


class WorkerLost(Exception):
    """The worker failed, died or hung: its cell fails, the group goes on."""


@dataclass
class Worker:
    """The conductor's side of one cell: its worker processes (`GroupSettings.processes`
    replicas of the same cell, which take the rounds in turn: a process's own placement and
    memory layout can hold it 1.5 x slower for its whole life, and several processes average
    that out and put it into the interval)."""

    member: Member
    processes: list[Any]
    conns: list[Connection]
    status: str = "ok"
    reason: str = ""
    ready: dict[str, Any] = field(default_factory=dict)
    first_call: float | None = None
    calls: int = MIN_SLICE_CALLS
    rounds: list[list[float] | None] = field(default_factory=list)
    idle_cpu: float = 0.0
    idle_wall: float = 0.0
    # per process: (CPU seconds, wall clock) at its last slice's end
    last: dict[int, tuple[float, float]] = field(default_factory=dict)
    stages: dict[str, Any] | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    stopped: str = ""  # "precision" where its speed-up reached it, else the group's reason
    _medians: list[float | None] = field(default_factory=list, repr=False)

    @property
    def alive(self) -> bool:
        return self.status == "ok"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def fail(self, reason: str, status: str = "failed") -> None:
        self.status, self.reason = status, reason
        self.stop()

    def stop(self) -> None:
        for conn, process in zip(self.conns, self.processes, strict=True):
            conn.close()
            process.join(timeout=10)
            if process.exitcode is None:
                process.kill()
                process.join()

    def receive(self, timeout: float, what: str, replica: int = 0) -> Any:
        conn, process = self.conns[replica], self.processes[replica]
        if not conn.poll(timeout):
            self.fail(f"the worker gave no answer to {what} within {timeout:.0f} s")
            raise WorkerLost
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            process.join(timeout=10)
            self.fail(f"the worker process died during {what} (exit code {process.exitcode})")
            raise WorkerLost from None
        if kind in ("failed", "skipped"):
            self.fail(payload, kind)
            raise WorkerLost
        return payload

    def ask(self, request: tuple, timeout: float, replica: int = 0) -> Any:
        try:
            self.conns[replica].send(request)
        except (BrokenPipeError, OSError):
            self.processes[replica].join(timeout=10)
            self.fail(f"the worker process died during {request[0]} (exit code "
                      f"{self.processes[replica].exitcode})")
            raise WorkerLost from None
        return self.receive(timeout, request[0], replica)

    def ask_all(self, request: tuple, timeout: float) -> list[Any]:
        return [self.ask(request, timeout, i) for i in range(len(self.conns))]

    def run_slice(self, round_index: int, timeout: float) -> None:
        """This round's slice, in the cell's process whose turn it is."""
        while len(self.rounds) < round_index:
            self.rounds.append(None)
        replica = round_index % len(self.conns)
        samples, cpu_before, cpu_after = self.ask(("slice", self.calls), timeout, replica)
        now = time.perf_counter()
        if replica in self.last:  # what the worker's process took while it waited
            self.idle_cpu += cpu_before - self.last[replica][0]
            self.idle_wall += now - self.last[replica][1] - sum(samples) / 1e3
        self.last[replica] = (cpu_after, now)
        self.rounds.append(samples)

    def round_medians(self) -> list[float | None]:
        """Each round's slice median (None where the cell had no slice); rounds only grow, so
        the medians of earlier rounds are kept, not taken again after every round."""
        for s in self.rounds[len(self._medians):]:
            self._medians.append(float(np.median(s)) if s else None)
        return list(self._medians)


def _start(member: Member, inputs: Any, export_shape: list[int] | None,
           saved_input: Path | None, settings: GroupSettings, context: Any) -> Worker:
    from dataclasses import replace

    processes, conns = [], []
    for i in range(settings.processes):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=serve, name=f"measure {label(member.cell)} {i}",
            args=(theirs, member.cell, replace(inputs, artifact=member.artifact), export_shape,
                  saved_input, settings.stage_images, settings.warmup_iters))
        process.start()
        theirs.close()
        print(f"{label(member.cell)}: worker process {process.pid}", flush=True)
        processes.append(process)
        conns.append(ours)
    return Worker(member, processes, conns)


def _send_kernel(conn: Connection) -> None:
    from deploybench.measure.machine_state import reference_workload_ms

    conn.send(reference_workload_ms())


def _kernel_in_child(context: Any) -> float | None:
    """The reference kernel (the machine-speed index), in a child process of its own: its BLAS
    thread pool then goes with it instead of spinning through the next slices."""
    ours, theirs = context.Pipe()
    process = context.Process(target=_send_kernel, args=(theirs,))
    process.start()
    value = ours.recv() if ours.poll(60) else None
    process.join()
    return value


def speedup(reference: Worker, worker: Worker, quiet: list[bool]) -> dict[str, Any] | None:
    """The worker's speed-up over the reference from their paired per-round medians, over the
    rounds in which the machine was quiet."""
    pairs = [(r, c) for r, c, q in zip(reference.round_medians(), worker.round_medians(), quiet,
                                       strict=False) if r and c and q]
    if len(pairs) < 2:
        return None
    estimate, low, high = ratio_ci95([r / c for r, c in pairs])
    return {"vs": label(reference.member.cell), "estimate": estimate, "ci95_low": low,
            "ci95_high": high, "rounds": len(pairs),
            "rel_halfwidth": relative_halfwidth(low, high, estimate)}


def _pick_reference(workers: list[Worker]) -> Worker | None:
    live = [w for w in workers if w.alive]
    return next((w for w in live if (w.member.cell.backend, w.member.cell.precision)
                 == REFERENCE), live[0] if live else None)


def _rounds(workers: list[Worker], members: list[Member], settings: GroupSettings,
            seed: int) -> dict[str, Any]:
    """Rounds until every cell's speed-up is known to `precision` or the time cap. Every cell
    stays in every round to the end: whether a round ran on the quiet machine is read off all
    the group's cells together (states.py), and a cell that left after a few seconds of a
    disturbed state would never see the quiet one."""
    rng = np.random.default_rng(seed)
    start, count, slices = time.perf_counter(), 0, 0
    stopped = ""
    orders: list[list[int]] = []  # each round's order, as the members' indices
    while not stopped:
        live = [w for w in workers if w.alive]
        if not live:
            stopped = "every cell failed"
            break
        order = [live[i] for i in rng.permutation(len(live))]
        orders.append([members.index(w.member) for w in order])
        for worker in order:
            expected = worker.calls * (worker.ready.get("call_s") or 1.0)
            try:
                worker.run_slice(count, max(60.0, 50 * expected))
                slices += 1
            except WorkerLost:
                print(f"{label(worker.member.cell)}: {worker.reason}")
        count += 1
        elapsed = time.perf_counter() - start
        reference = _pick_reference(workers)
        others = [w for w in workers if w.alive and w is not reference]
        if count >= settings.min_rounds and elapsed >= settings.min_seconds:
            quiet = _quiet(workers, settings)
            for w in others:  # the answer so far: more rounds can widen it again
                known = speedup(reference, w, quiet)
                w.stopped = ("precision" if known and known["rel_halfwidth"]
                             <= settings.precision else "")
            if not others:
                stopped = "minimum rounds (no cell to compare)"
            elif all(w.stopped for w in others):
                stopped = "precision"
        if not stopped and elapsed >= settings.max_seconds:
            stopped = "time cap"
    for w in workers:
        w.stopped = w.stopped or stopped
    return {"rounds": count, "slices": slices, "stopped": stopped,
            "window_s": time.perf_counter() - start, "orders": orders}


def _quiet(workers: list[Worker], settings: GroupSettings) -> list[bool]:
    return quiet_rounds([w.round_medians() for w in workers if w.alive],
                        settings.quiet_tolerance)


def _prepare(workers: list[Worker], settings: GroupSettings) -> None:
    """Load in parallel; then, one cell at a time, the first call apart and the warm-up, which
    also sizes the cell's slices."""
    for w in workers:
        try:
            w.ready = [w.receive(LOAD_SECONDS, "loading", i) for i in range(len(w.conns))][0]
        except WorkerLost:
            print(f"{label(w.member.cell)}: {w.reason}")
    for w in (w for w in workers if w.alive):
        try:
            w.first_call = w.ask_all(("first",), LOAD_SECONDS)[0]
            for i in range(len(w.conns)):
                start = time.perf_counter()
                calls = w.ask(("warmup", settings.warmup_iters, settings.warmup_seconds),
                              LOAD_SECONDS, i)
                if i == 0:  # the first process's warm-up sizes the cell's slices
                    w.ready["call_s"] = (time.perf_counter() - start) / max(1, calls)
            w.calls = max(MIN_SLICE_CALLS, round(settings.slice_seconds / w.ready["call_s"]))
        except WorkerLost:
            print(f"{label(w.member.cell)}: {w.reason}")


def _finish(workers: list[Worker]) -> None:
    """Stage breakdowns one cell at a time (after the window: they share no cores with it),
    then each worker's peak memory, and the processes joined."""
    for w in (w for w in workers if w.alive):
        try:
            w.stages = w.ask(("stages",), STAGES_SECONDS)  # the first process's
            memories = w.ask_all(("finish",), 60)
            w.memory = {**memories[0], "peak_rss_mib": max(m["peak_rss_mib"] for m in memories)}
            w.stop()
        except WorkerLost:
            print(f"{label(w.member.cell)}: {w.reason}")


def _data(w: Worker, reference: Worker | None, group: dict[str, Any],
          machine: dict[str, Any]) -> dict[str, Any]:
    quiet = group["quiet"]
    rounds = [s for s, q in zip(w.rounds, quiet, strict=False) if s and q]
    if len(rounds) < 2:  # no quiet state to speak of: every round
        rounds, quiet = [s for s in w.rounds if s], [True] * len(w.rounds)
    samples = [ms for s in rounds for ms in s]
    stats = latency_stats(samples, w.member.cell.batch)
    # The absolute median's interval resamples the rounds, then the calls within each.
    stats["median_ci95_low"], stats["median_ci95_high"] = hierarchical_median_ci95(rounds)
    if reference is None or (reference.member.cell.backend,
                             reference.member.cell.precision) != REFERENCE:
        relative = None  # the docs' speed-ups are over PyTorch fp32, or none
    elif reference is w:
        relative = {"vs": label(w.member.cell), "estimate": 1.0, "ci95_low": 1.0,
                    "ci95_high": 1.0, "rounds": len(rounds), "rel_halfwidth": 0.0,
                    "is_reference": True}
    else:
        relative = speedup(reference, w, quiet)
    gpu = machine.get("gpu") or {}
    return {"scope": SCOPE, "input_shape": w.ready["input_shape"],
            "first_call_seconds": w.first_call,
            "latency_ms": {k: v for k, v in stats.items() if k != "fps"}, "fps": stats["fps"],
            "samples_ms": samples, "rounds_ms": w.round_medians(), "speedup": relative,
            "group": {**group, "slice_calls": w.calls, "stopped": w.stopped,
                      "cell_rounds": sum(1 for s in w.rounds if s),
                      "cell_quiet_rounds": len(rounds)},
            "idle": {"cpu_seconds": w.idle_cpu, "wall_seconds": w.idle_wall,
                     "cores": w.idle_cpu / w.idle_wall if w.idle_wall > 0 else None},
            "runtime_settings": {**w.ready.get("settings", {}), **idle.in_force()},
            "stages": w.stages,
            # the device's memory is every cell of the group together: all stay loaded
            "memory": {**w.memory, "device_used_mib": gpu.get("memory_used_mib_max")},
            "machine_state": machine, **w.ready.get("extras", {})}


def measure_group(members: list[Member], inputs: Any, export_shape: list[int] | None,
                  saved_input: Path | None, settings: GroupSettings,
                  start_method: str = "fork") -> list[tuple[str, str, dict[str, Any]]]:
    """(status, reason, numbers) for each member, in order. `inputs`: the model's CellInputs
    (each member's artifact replaces its own). Workers are forked from this process, which
    has torch imported but must not have run it (GNU OpenMP hangs in a child forked after its
    pool ran): the `deploybench measure` step is such a process; elsewhere (a test that ran
    models) `start_method="forkserver"` forks them from a clean server."""
    context = multiprocessing.get_context(start_method)
    if start_method != "fork":  # a fresh server: it loads torch with the idle settings
        idle.apply_env()
        context.set_forkserver_preload(["torch", "deploybench.measure.worker",
                                        "deploybench.cell"])
    outcomes: dict[int, tuple[str, str, dict[str, Any]]] = {}
    workers: list[Worker] = []
    for i, m in enumerate(members):
        reason = skip_reason(m.cell.backend, m.cell.precision, m.cell.device)
        if reason:
            outcomes[i] = ("skipped", reason, {})
        else:
            workers.append(_start(m, inputs, export_shape, saved_input, settings, context))
    try:
        _prepare(workers, settings)
        seed = zlib.crc32(" ".join(label(m.cell) for m in members).encode())
        before = {"before": cpu_state(), "reference_before": _kernel_in_child(context)}
        pids = [pid for w in workers for pid in w.pids]
        print(f"rounds: {sum(w.alive for w in workers)} cells", flush=True)
        with GpuSampler() as gpu, OtherLoad(pids) as other:
            group = _rounds(workers, members, settings, seed)
        reference = _pick_reference(workers)
        print(f"{group['rounds']} rounds, {group['slices']} slices in {group['window_s']:.1f} s;"
              f" stopped: {group['stopped']}", flush=True)
        _finish(workers)
    finally:
        for w in workers:
            if any(p.exitcode is None for p in w.processes):
                w.stop()
    machine = {"before": before["before"], "after": cpu_state(),
               "reference_ms": {"before": before["reference_before"],
                                "after": _kernel_in_child(context)},
               "other_load": other.summary(), "gpu": gpu.summary()}
    group.update(slowdown=slowdowns([w.round_medians() for w in workers if w.alive]),
                 quiet=_quiet(workers, settings),
                 cells=[label(m.cell) for m in members],
                 reference=label(reference.member.cell) if reference else None,
                 order=f"random per round (seed {seed})", settings=asdict(settings))
    for w in workers:
        i = members.index(w.member)
        if w.status != "ok":
            outcomes[i] = (w.status, w.reason, {})
        else:
            outcomes[i] = ("ok", "", _data(w, reference, group, machine))
    return [outcomes[i] for i in range(len(members))]
