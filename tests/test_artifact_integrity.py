"""Artifacts are checked against the sha256 their step recorded: a changed file is never run
as if it were the step's (its producer makes it again)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploybench.artifact_integrity import CACHE, check, heal
from deploybench.atomic import write_json
from deploybench.backends import get_backend
from deploybench.errors import UserError
from deploybench.results import Cell, record


def _built(root: Path, name: str, content: bytes) -> tuple[Path, Path]:
    """A build's artifact and its result, as `deploybench build` leaves them."""
    artifact = root / "build" / "det" / "160x160" / name
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(content)
    result = artifact.with_name(name + ".json")
    write_json(result, record("build", Cell("det", "detection", "tensorrt", "fp16",
                                            device="cuda", shape="160x160"),
                              "ok", "", {}, {}, used={"artifact": artifact}))
    return artifact, result


def test_a_modified_engine_is_refused_where_it_is_loaded(tmp_path: Path) -> None:
    engine, _ = _built(tmp_path, "tensorrt-fp16.engine", b"\x01" * 4096)
    check(engine)  # as built
    stat = engine.stat()
    # One byte changed, the size and time kept: what only the content tells apart.
    engine.write_bytes(b"\x02" + b"\x01" * 4095)
    os.utime(engine, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # The backend's shared checks refuse it before TensorRT is even imported.
    with pytest.raises(UserError, match=r"tensorrt-fp16.engine is not the file its step made: "
                                        r"its sha256 differs from the one recorded in .*"
                                        r"tensorrt-fp16.engine.json .*snakemake --cores N"):
        get_backend("tensorrt").load(None, engine, "fp16", "cuda", 1)


def test_damaged_artifacts_are_moved_aside_and_checked_files_are_remembered(
        tmp_path: Path) -> None:
    good, good_result = _built(tmp_path / "a", "onnxruntime-int8.onnx", b"model" * 1000)
    bad, bad_result = _built(tmp_path / "b", "tensorrt-fp16.engine", b"engine" * 1000)
    pairs = [(good, good_result), (bad, bad_result)]
    cache = tmp_path / CACHE
    assert heal(pairs, cache) == [] and cache.is_file()
    bad.write_bytes(b"engine" * 500)  # truncated
    [(artifact, line)] = heal(pairs, cache)
    assert artifact == bad and "differs from the sha256 its step recorded" in line
    assert not bad.exists() and bad.with_name("tensorrt-fp16.engine.damaged").is_file()
    assert good.is_file()
    # A producer that failed recorded no sha256: nothing to compare.
    write_json(good_result, {"status": "failed", "provenance": {}})
    good.write_bytes(b"other")
    assert heal(pairs, cache) == []
