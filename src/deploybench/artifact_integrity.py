"""Artifacts (the exported ONNX, engines, quantized models, OpenVINO IR) checked against the
sha256 their producing step recorded (`files_sha256` in its result). Snakemake reruns a step
when an input is newer or missing, never when a file's content changed in place: a truncated
ONNX would be measured, or fail, as if it were the export's. Two guards:

- `heal`, when the Snakefile is read: a damaged artifact is moved aside (`<name>.damaged`), so
  that no step runs it and the next step that needs it has its producer make it again;
- `check`, when a step loads an artifact: a file that differs from its record is refused, with
  the file and the command that rebuilds it.

A file already checked is not hashed again while its size and modification time stay the same
(`.verified-artifacts.json` beside the run's results).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from deploybench.atomic import write_json
from deploybench.errors import UserError

CACHE = ".verified-artifacts.json"


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def producer_result(artifact: Path) -> Path | None:
    """The result of the step that made `artifact`: a build's `<artifact>.json`, an export's
    `export/<model>/<shape>.json` beside its `.onnx`."""
    beside = artifact.with_name(artifact.name + ".json")
    if beside.is_file():
        return beside
    if artifact.suffix == ".onnx" and artifact.parent.parent.name == "export":
        return artifact.with_suffix(".json")
    return None


def recorded(artifact: Path, result: Path) -> dict[Path, str]:
    """file -> the sha256 its producer recorded (an IR's .bin with its .xml); empty where the
    producer recorded none, or failed."""
    if not result.is_file():
        return {}
    record = json.loads(result.read_text())
    if record.get("status") != "ok":
        return {}
    hashes = (record.get("provenance") or {}).get("files_sha256") or {}
    files = {artifact: hashes.get("artifact")}
    if artifact.suffix == ".xml":
        files[artifact.with_suffix(".bin")] = hashes.get("artifact_weights")
    return {f: sha for f, sha in files.items() if sha}


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def damaged(pairs: Iterable[tuple[Path, Path]], cache: Path | None = None) -> list[Path]:
    """The artifacts of (artifact, producer result) pairs whose content differs from the record."""
    seen = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    checked, bad = {}, []
    for artifact, result in pairs:
        for path, sha in recorded(artifact, result).items():
            if not path.is_file():
                continue
            key = f"{path}:{sha}"
            if seen.get(key) == _stamp(path) or file_sha256(path) == sha:
                checked[key] = _stamp(path)
            elif artifact not in bad:
                bad.append(artifact)
    if cache is not None and cache.parent.is_dir() and checked != seen:
        write_json(cache, checked)
    return bad


def heal(pairs: list[tuple[Path, Path]], cache: Path | None = None) -> list[tuple[Path, str]]:
    """Move each damaged artifact aside (with its IR weights); (artifact, a line for the log)
    of each. Snakemake then makes it again before the next step that needs it (a missing
    intermediate file is made where a step after it must run; results made from the intact
    file stand)."""
    healed = []
    for artifact in damaged(pairs, cache):
        for path in (artifact, artifact.with_suffix(".bin") if artifact.suffix == ".xml"
                     else None):
            if path is not None and path.is_file():
                path.replace(path.with_name(path.name + ".damaged"))
        healed.append((artifact, f"{artifact} differs from the sha256 its step recorded: moved "
                                 f"aside ({artifact.name}.damaged), made again when a step needs "
                                 "it"))
    return healed


def check(artifact: Path) -> None:
    """Refuse an artifact whose content is not what its producing step recorded."""
    result = producer_result(artifact)
    if result is None:
        return
    for path, sha in recorded(artifact, result).items():
        if path.is_file() and file_sha256(path) != sha:
            raise UserError(
                f"{path} is not the file its step made: its sha256 differs from the one "
                f"recorded in {result} (damaged or replaced). Run `snakemake --cores N` again: "
                "it moves the file aside and makes it again")
