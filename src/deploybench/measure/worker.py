"""A measure group's worker: one process per cell, holding its loaded target for the group's
whole window and running what the conductor asks, one request at a time.

Between requests it waits on its pipe, so that it takes no CPU while another cell runs; the
runtimes' own idle threads are set not to spin (`deploybench.measure.idle`), its heap keeps what
it frees so that no call page-faults (`deploybench.measure.allocator`), and every slice
reports the process's CPU time so that the conductor can show what the worker took while idle.

Requests and replies (tuples over a `multiprocessing` pipe):
  ("first",)             -> ("ok", seconds of the first call, timed apart)
  ("warmup", n, seconds) -> ("ok", calls made): at least n calls and that many seconds
  ("slice", n)           -> ("ok", (samples ms, CPU seconds before, CPU seconds after))
  ("stages",)            -> ("ok", the stage breakdown or None)
  ("finish",)            -> ("ok", peak memory); the worker then closes its target and exits
A failure replies ("failed", reason) and the worker exits; a target that cannot run this cell
replies ("skipped", reason) instead of ("ready", ...) when it starts.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from deploybench.errors import CellSkipped, UserError
from deploybench.measure import allocator
from deploybench.measure.run import Target, open_target, process_memory
from deploybench.results import Cell


def cpu_seconds() -> float:
    """CPU time of this process, all its threads (a runtime's spinning pool included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_slice(call: Any, calls: int) -> tuple[list[float], float, float]:
    before = cpu_seconds()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples, before, cpu_seconds()


def warm_up(call: Any, iters: int, seconds: float) -> int:
    start, done = time.perf_counter(), 0
    while done < iters or time.perf_counter() - start < seconds:
        call()
        done += 1
    return done


def failure_reason(err: BaseException) -> str:
    if isinstance(err, UserError):
        return str(err)
    traceback.print_exc()
    return f"{type(err).__name__}: {err}"


def _answer(target: Target, request: tuple, device: str) -> Any:
    kind = request[0]
    if kind == "first":
        start = time.perf_counter()
        target.call()
        return time.perf_counter() - start
    if kind == "warmup":
        return warm_up(target.call, request[1], request[2])
    if kind == "slice":
        return time_slice(target.call, request[1])
    if kind == "stages":
        return target.stages()
    if kind == "finish":
        return process_memory(device)
    raise ValueError(f"unknown request {kind!r}")


def serve(conn: Connection, cell: Cell, inputs: Any, export_shape: list[int] | None,
          saved_input: Path | None, stage_images: int, warmup_iters: int) -> None:
    """The worker process's body (`inputs`: the cell's CellInputs)."""
    sys.stdout.reconfigure(line_buffering=True)
    label = f"[{cell.backend} {cell.precision}]"
    heap = allocator.keep_freed_memory()  # before the cell allocates anything
    with contextlib.ExitStack() as stack:
        try:
            target = stack.enter_context(open_target(cell, inputs, export_shape, saved_input,
                                                     stage_images, warmup_iters))
        except CellSkipped as err:
            conn.send(("skipped", str(err)))
            return
        except Exception as err:  # noqa: BLE001 - this cell fails; the group goes on
            print(f"{label} failed to load", file=sys.stderr)
            conn.send(("failed", failure_reason(err)))
            return
        conn.send(("ready", {"input_shape": target.input_shape, "extras": target.extras,
                             "settings": {**target.settings, **heap}}))
        conductor = os.getppid()
        while True:
            # The conductor's death closes no pipe here (this process and its siblings hold
            # copies of both ends): a worker whose parent changed was orphaned, and ends.
            while not conn.poll(1.0):
                if os.getppid() != conductor:
                    return
            try:
                request = conn.recv()
            except EOFError:  # the conductor is gone
                return
            try:
                reply = _answer(target, request, inputs.device)
            except Exception as err:  # noqa: BLE001
                print(f"{label} failed on {request[0]}", file=sys.stderr)
                conn.send(("failed", failure_reason(err)))
                return
            conn.send(("ok", reply))
            if request[0] == "finish":
                return
