"""Backends, one module each (`registry`), behind the interface in `base`.

A backend's spec says which devices and precisions it has at all; the config matrix plans only
those cells. Whether this machine can run a planned cell (a CUDA device, the package, an op) is
the backend's `available()`, and a cell it cannot run is reported as skipped with the reason.
"""

from __future__ import annotations

from deploybench.backends.base import Backend
from deploybench.backends.registry import spec, specs

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "int8")


def names() -> tuple[str, ...]:
    """Every backend, in the project's order (plugins after the project's own)."""
    return tuple(specs())


def supports(backend: str, device: str, precision: str) -> bool:
    known = specs().get(backend)
    return known is not None and precision in known.support.get(device, ())


def runs_file(backend: str) -> bool:
    """Whether the backend's cells run a model file (the export or a build), which a measure
    step times on the saved input without the model's code, rather than the checkpoint."""
    return spec(backend).runs != "checkpoint"


def get_backend(name: str) -> Backend:
    found = spec(name)
    return found.backend(found)


def skip_reason(backend: str, precision: str, device: str, job: bool = False) -> str:
    """Empty when this machine can run the cell, else why not. An intermediate build (one no
    cell runs, as TensorRT's int8 QDQ source) is planned only where the cell it is for can
    run; its own job (`job`) makes it whatever the machine it runs on has: that may be a
    GPU-less container of a GPU host, and quantizing a graph needs no GPU."""
    from deploybench.backends.registry import builds

    build = builds().get((backend, device, precision))
    if build is not None and build.for_cell and not job:
        made_for, on, at = build.for_cell
        return skip_reason(made_for, at, on)
    if build is not None and build.for_cell:
        return ""
    ok, reason = get_backend(backend).available(precision, device)
    return "" if ok else reason
