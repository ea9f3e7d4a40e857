"""The empty artifact of a build that was not done, and the reason kept beside it.

A build this machine cannot do (or a backend cannot do for a model) still writes its output, an
empty file, so that the DAG goes on and the cells that would run it are reported as skipped,
each with the build's reason."""

from __future__ import annotations

from pathlib import Path

from deploybench.errors import CellSkipped


def placeholder(out: Path, reason: str = "", companions: tuple[str, ...] = ()) -> None:
    """Write the empty artifact `out` (and its companion files, e.g. an IR's weights). The
    job's `machine` param changes when the machine can do the build, which makes Snakemake
    rebuild it. `reason`: the backend cannot build this model; kept for the cells."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"")
    for suffix in companions:
        out.with_suffix(suffix).write_bytes(b"")
    if reason:
        _note(out).write_text(reason)


def _note(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".skipped")


def skipped_build(artifact: Path) -> None:
    """Raise CellSkipped where `artifact` is the placeholder of a build not done."""
    if artifact.is_file() and artifact.stat().st_size == 0:
        note = _note(artifact)
        raise CellSkipped(note.read_text() if note.is_file() else
                          f"{artifact.name} was not built; the builds table says why")
