"""Keeping an idle worker off the cores while another cell of its group runs.

A worker waits for its next slice blocked on a pipe, which takes no CPU; what can is the
runtime's own thread pool, which by default keeps spinning for a while after a call:

- PyTorch's CPU build runs its intra-op pool on GNU OpenMP (libgomp). A thread that ends a
  parallel region spins `GOMP_SPINCOUNT` times (300,000 by default) before it sleeps: measured
  here as 4-10 ms of a core after each slice, in the next cell's time. 10,000 spins still cover
  the microsecond gaps between a forward pass's regions, and the pool sleeps within a fraction
  of a millisecond of the last one. libgomp reads the variable when it is loaded, so it is set
  before torch is imported (the `deploybench` entry point, which the fork server also runs).
- ONNX Runtime's intra-op pool spins while a `Run` waits for work and, with its default, after
  it returns too; `session.force_spinning_stop=1` stops the spinning when `Run` returns and
  restarts it on the next one (backends/onnxruntime.py).
- OpenVINO's CPU plugin runs on oneTBB, whose workers spin briefly and then sleep on their own;
  nothing to set.

What each worker took while idle is measured (CPU time between its slices) and shown with its
cell, so that a runtime that still burns the cores is seen, not assumed away.
"""

from __future__ import annotations

import os

ENV = {"GOMP_SPINCOUNT": "10000"}


def apply_env() -> None:
    """Set the runtimes' idle settings in this process's environment, unless set already;
    takes effect only where the runtime is not loaded yet."""
    for name, value in ENV.items():
        os.environ.setdefault(name, value)


def in_force() -> dict[str, str]:
    """The idle settings this process runs with, for the results."""
    return {name: os.environ.get(name, "(unset)") for name in ENV}
