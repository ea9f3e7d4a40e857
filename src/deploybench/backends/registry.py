"""Every backend's spec, from the modules listed here and from installed plugins.

A backend is one module that defines `SPECS`, a tuple of `BackendSpec`. The project's own are
listed in `BUILT_IN`; another package adds one through the entry-point group
`deploybench.backends` (its value: the module), with no edit here. Modules are imported to read
their specs, so they import their runtimes (torch, onnxruntime, ...) inside functions.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from types import ModuleType

from deploybench.backends.base import BackendSpec, Build, Key
from deploybench.errors import UserError

# In this order in the config's checks, the tables and the figures' legends.
BUILT_IN = ("pytorch", "torchscript", "torch_compile", "onnxruntime", "openvino", "tensorrt")
ENTRY_POINTS = "deploybench.backends"


def _modules() -> list[ModuleType]:
    own = [importlib.import_module(f"deploybench.backends.{name}") for name in BUILT_IN]
    plugins = sorted(entry_points(group=ENTRY_POINTS), key=lambda ep: ep.name)
    return own + [ep.load() for ep in plugins]


@functools.cache
def specs() -> dict[str, BackendSpec]:
    """name -> spec, the project's own first."""
    found: dict[str, BackendSpec] = {}
    for module in _modules():
        declared = getattr(module, "SPECS", None)
        if not declared:
            raise UserError(f"backend module {module.__name__} defines no SPECS: a tuple of "
                            "deploybench.backends.base.BackendSpec")
        for spec in declared:
            if spec.name in found:
                raise UserError(f"two backends are named {spec.name!r} ({module.__name__} and "
                                f"{found[spec.name].backend.__module__}): rename one")
            found[spec.name] = spec
    return found


def spec(name: str) -> BackendSpec:
    known = specs()
    if name not in known:
        raise UserError(f"unknown backend {name!r}; valid: {', '.join(known)}")
    return known[name]


@functools.cache
def builds() -> dict[Key, Build]:
    """(backend, device, precision) -> build, over every backend (intermediates included)."""
    return {b.key: b for s in specs().values() for b in s.builds}


@functools.cache
def by_artifact() -> dict[str, Build]:
    """artifact file name -> build (the build rule's wildcard)."""
    return {b.artifact: b for b in builds().values()}


def table(how: bool = True) -> str:
    """The backends as a markdown table: the devices and precisions each has (the README's and
    docs/backends.md's tables are this, checked by a test), with the specs' summaries."""
    from deploybench.backends import DEVICES

    head = ["`matrix.backends`", *DEVICES, *(["how"] if how else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in specs().values():
        cells = [f"`{s.name}`", *(", ".join(s.support.get(d, ())) for d in DEVICES)]
        lines.append("| " + " | ".join([*cells, *([s.summary] if how else [])]) + " |")
    return "\n".join(lines) + "\n"
