"""Publish a run's docs into reports/<profile>/, merged with what is published there already.

The committed docs are never a Snakemake output: Snakemake would take their presence in a
fresh checkout for a finished run and measure nothing. A run's own report is the DAG's product.
Publishing merges its records into the published ones (`records.jsonl`) and renders the docs
from the merge, so a run never removes numbers it did not re-measure:

- a cell the run measured successfully replaces the published one;
- a cell the run did not plan (a subset config, an interrupted run) keeps its published rows;
- a cell whose re-measurement failed (or was skipped, or never ran) keeps its last good
  numbers, and the docs show the failure beside them;
- a cell that had no good numbers shows the run's failure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from deploybench.atomic import atomic_path, directory_lock, write_json
from deploybench.errors import UserError
from deploybench.plan import OPTIONAL_REPORT_FILES, REPORT_FILES
from deploybench.report.build import write_report
from deploybench.report.machines import write_index
from deploybench.report.model_pages import DIRECTORY
from deploybench.report.table import read_records_file, stamp_flags

RECORDS = "records.jsonl"
CELL_FIELDS = ("model", "shape", "backend", "device", "precision", "batch")


def _key(record: dict[str, Any]) -> str:
    """A record's group: its step and cell. A cell's measure repeats form one group, replaced
    together (a run may use another repeat count)."""
    cell = {"device": "cpu", "shape": "", "batch": 1, **record["cell"]}
    return json.dumps([record["step"], *(cell[f] for f in CELL_FIELDS)])


def _groups(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(_key(r), []).append(r)
    return groups


def _good(group: list[dict[str, Any]]) -> bool:
    return all(r["status"] == "ok" for r in group)


def merge_records(published: list[dict[str, Any]], new: list[dict[str, Any]],
                  run: str) -> list[dict[str, Any]]:
    """The published records with the run's merged in (see the module's rules). Order: the
    published groups where they were, new groups after them in the run's order."""
    merged = _groups(published)
    for key, group in _groups(new).items():
        old = merged.get(key)
        if _good(group) or old is None or not _good(old):
            merged[key] = group
            continue
        bad = next(r for r in group if r["status"] != "ok")
        note = {"status": bad["status"], "run": run,
                "reason": bad.get("reason") or "no result: the step never ran",
                "created": (bad.get("provenance") or {}).get("created", "")}
        merged[key] = [{**r, "remeasured": note} for r in old]
    return [r for group in merged.values() for r in group]


def _publish_model_pages(staged: Path, to: Path) -> list[Path]:
    """Each model's page into place; a page whose model left the records goes too."""
    to.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in staged.glob("*.md"))
    for stale in set(p.name for p in to.glob("*.md")) - set(names):
        (to / stale).unlink()
    for name in names:
        with atomic_path(to / name) as tmp:
            tmp.write_bytes((staged / name).read_bytes())
        (staged / name).unlink()
    staged.rmdir()
    return [to / name for name in names]


def publish(run_report: Path, to: Path, stamp: Path | None = None, profile: str = "",
            tolerances: dict[str, dict[str, float]] | None = None, run: str = "local"
            ) -> list[Path]:
    """Merge the run's records into `to` and render its docs there; every file is written
    aside first and then moved into place. Publishes into one reports/ folder take turns:
    each rewrites the index of every profile there (a run of several profiles publishes each)."""
    source = run_report / RECORDS
    if not source.is_file():
        raise UserError(f"cannot publish: {source} missing; run `deploybench report` (the "
                        "pipeline's report rule) for this run first")
    with directory_lock(to.parent):
        return _publish(source, to, stamp, profile, tolerances, run)


def _publish(source: Path, to: Path, stamp: Path | None, profile: str,
             tolerances: dict[str, dict[str, float]] | None, run: str) -> list[Path]:
    # Published results from before flags were stored get theirs as they stood, not as the
    # merge would recompute them.
    merged = merge_records(stamp_flags(read_records_file(to / RECORDS)),
                           read_records_file(source), run)
    return _render(merged, to, stamp, profile, tolerances, run)


def _render(records: list[dict[str, Any]], to: Path, stamp: Path | None, profile: str,
            tolerances: dict[str, dict[str, float]] | None, run: str) -> list[Path]:
    """`records`' docs rendered aside, then moved into `to` file by file."""
    staging = to.parent / f".{to.name}.publishing"
    write_report(records, profile or to.name, staging, tolerances, run)
    published = []
    for name in REPORT_FILES + tuple(n for n in OPTIONAL_REPORT_FILES
                                     if (staging / n).is_file()):
        target = to / name
        with atomic_path(target) as tmp:
            tmp.write_bytes((staging / name).read_bytes())
        (staging / name).unlink()
        published.append(target)
    published += _publish_model_pages(staging / DIRECTORY, to / DIRECTORY)
    staging.rmdir()
    published.append(write_index(to.parent))  # the machines side by side
    if stamp is not None:
        write_json(stamp, {"published_to": str(to), "files": {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in published}})
    return published


def _matches(record: dict[str, Any], model: str, cell: dict[str, Any]) -> bool:
    mine = {"device": "cpu", "shape": "", "batch": 1, **record["cell"]}
    return mine["model"] == model and all(str(mine[k]) == str(v) for k, v in cell.items()
                                          if v is not None)


def remove(to: Path, model: str, gates: dict[str, dict[str, float]] | None = None,
           **cell: Any) -> tuple[int, list[Path]]:
    """Retire `model` (or those of its cells that match `cell`: shape, backend, device,
    precision, batch) from the docs published in `to`: its records go, and the docs are
    rendered again from the rest, with the gates (`gates` for docs that did not record theirs)
    and run they were published with, so that every other row stays as it was.
    (records removed, files written)"""
    source = to / RECORDS
    if not source.is_file():
        raise UserError(f"{source} missing: nothing is published in {to}; give a profile's "
                        "docs folder (reports/<profile>/)")
    with directory_lock(to.parent):
        records = stamp_flags(read_records_file(source))
        keep = [r for r in records if not _matches(r, model, cell)]
        if len(keep) == len(records):
            models = sorted({r["cell"]["model"] for r in records})
            chosen = ", ".join(f"{k} {v}" for k, v in cell.items() if v is not None)
            raise UserError(f"no published record of {model}{' ' + chosen if chosen else ''} "
                            f"in {to}; its models: {', '.join(models)}")
        env_file = to / "environment.json"
        env = json.loads(env_file.read_text()) if env_file.is_file() else {}
        return len(records) - len(keep), _render(keep, to, None, to.name,
                                                 env.get("gates", gates),
                                                 env.get("run", "local"))
