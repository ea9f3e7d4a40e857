"""Snakemake reads the files given with `--configfile` before it reads the Snakefile, and its
message for a YAML error names neither the file nor the line ("Config file is not valid JSON or
YAML"). `envs/setup.sh` imports this module at the start of every Python in `.venv` (a `.pth`
line): when Snakemake's config loader is first imported it is wrapped, so that a config file
that fails to load is read again by the project's `read_yaml`, whose error names the file, line,
column and problem. Nothing else changes: a file that loads is Snakemake's to read.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

LOADER = "snakemake.common.configfile"


class _Finder(importlib.abc.MetaPathFinder):
    """Finds Snakemake's config loader as Python would, and wraps it once it has run."""

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name != LOADER:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            wrap(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def wrap(module: ModuleType) -> None:
    """Make `module._load_configfile` (which `load_configfile` calls) name a YAML error's place."""
    load = module._load_configfile

    def load_configfile(source: Any, filetype: str = "Config") -> Any:
        try:
            return load(source, filetype)
        except module.WorkflowError:
            if isinstance(source, str | Path) and Path(source).is_file():
                from deploybench.config import read_yaml
                from deploybench.errors import UserError

                try:
                    read_yaml(source)
                except UserError as err:
                    raise module.WorkflowError(f"{filetype} file {err}") from None
            raise

    module._load_configfile = load_configfile


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
