"""The config's settings, with their defaults stated once: in the schema.

The DAG writes each step's validated section of the config to a file of its own
(`results/<profile>/<run>/settings/<section>.json`, an input of the step's jobs: a changed
setting reruns them), and the step reads it here; run by hand without one, a step gets the
schema's defaults."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

from deploybench.atomic import write_text
from deploybench.errors import UserError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def schema() -> dict[str, Any]:
    """The config's JSON schema (a copy: callers may fill in what it leaves open)."""
    return copy.deepcopy(_schema())


def defaults(name: str) -> dict[str, Any]:
    """The schema's default of every key of a config section."""
    return {key: copy.deepcopy(spec["default"])
            for key, spec in _schema()["properties"][name]["properties"].items()
            if "default" in spec}


def default(key: str) -> Any:
    """The schema's default of one key, dotted ("parity.images"; "datasets.*.seed" for a key of
    every entry of a mapping): what a step's command-line option defaults to."""
    spec = _schema()
    for part in key.split("."):
        spec = spec["additionalProperties"] if part == "*" else spec["properties"][part]
    return copy.deepcopy(spec["default"])


def section(name: str, path: Path | None = None) -> dict[str, Any]:
    """A config section as the DAG wrote it to `path`, else the schema's defaults."""
    values = defaults(name)
    if path is None:
        return values
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"settings file {path}: {err}; the pipeline writes it "
                        f"(results/<profile>/<run>/settings/{name}.json)") from None
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise UserError(f"settings file {path}: {', '.join(unknown)} not in the config's "
                        f"`{name}` section ({', '.join(values)})")
    return {**values, **given}


def write_section(path: Path, values: dict[str, Any]) -> None:
    """Write a section for the steps (atomically)."""
    write_text(path, json.dumps(values, sort_keys=True, indent=1) + "\n")
