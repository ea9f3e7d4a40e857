"""The results contract: one JSON per cell and step, with identity, status, numbers, provenance."""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deploybench.atomic import read_json, write_json
from deploybench.errors import CellSkipped, UserError
from deploybench.provenance import provenance

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Cell:
    model: str
    task: str
    backend: str
    precision: str
    batch: int = 1
    device: str = "cpu"
    shape: str = ""  # network input "HxW" (shape_tag); empty in records older than shapes


def shape_tag(shape: tuple[int, int] | list[int]) -> str:
    """[160, 192] -> "160x192": how a shape appears in paths, wildcards and tables."""
    height, width = shape
    return f"{height}x{width}"


def failure_path(out: Path | str) -> Path:
    """Where a failed step leaves its record: beside its output, which Snakemake then removes."""
    out = Path(out)
    return out.with_name(out.name + ".failed.json")


def _finite(value: Any) -> Any:
    """JSON has no NaN: a metric that is undefined (e.g. a class absent from the split) is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def record(step: str, cell: Cell, status: str, reason: str, data: dict[str, Any],
           settings: dict[str, Any], files: list[Path | str] = (),
           used: dict[str, Path | str | None] | None = None) -> dict[str, Any]:
    return _finite({"schema": SCHEMA_VERSION, "step": step, "cell": asdict(cell),
                    "status": status, "reason": reason, **data, "settings": settings,
                    "provenance": provenance(settings, list(files), used)})


def run_step(step: str, cell: Cell, out: Path | str, settings: dict[str, Any],
             files: list[Path | str], body: Callable[[], tuple[str, str, dict[str, Any]]],
             used: dict[str, Path | str | None] | None = None) -> int:
    """Run one cell's step. `body` returns (status, reason, numbers).

    A failure still leaves a record (beside the output) that the report shows, and the job exits
    non-zero so that Snakemake, and CI, see it fail.
    """
    failed = failure_path(out)
    failed.unlink(missing_ok=True)
    try:
        status, reason, data = body()
    except CellSkipped as err:
        status, reason, data = "skipped", str(err), {}
    except Exception as err:  # noqa: BLE001 - any failure of one cell is reported, not raised
        reason = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        if not isinstance(err, UserError):
            traceback.print_exc()
        write_json(failed, record(step, cell, "failed", reason, {}, settings, files, used))
        print(f"error: {step} failed for {cell.model}/{cell.backend}/{cell.precision}: {reason}")
        return 1
    write_json(out, record(step, cell, status, reason, data, settings, files, used))
    return 0


def load_result(path: Path | str) -> dict[str, Any] | None:
    """The result at `path`, else its failure record, else None (the step never ran)."""
    for candidate in (Path(path), failure_path(path)):
        if candidate.is_file():
            return read_json(candidate)
    return None
