"""A backend is one file: a module this test writes, registered through the entry-point group
`deploybench.backends` and nothing else, runs its cells through a real reduced pipeline.

The module is ONNX Runtime with its graph optimizations off, under the name `ort_plain`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from .test_pipeline import reduced_config, snakemake_command

pytestmark = pytest.mark.slow

PLUGIN = '''
"""ONNX Runtime with graph optimizations off: what ORT's optimizer is worth."""

from pathlib import Path
from typing import Any

from deploybench.backends.base import Backend, BackendSpec, Runner
from deploybench.backends.onnxruntime import OrtRunner, session_options


class PlainRunner(OrtRunner):
    def _session(self, spinning: bool) -> Any:
        import onnxruntime as ort

        options = session_options(self.threads, spinning)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(self.model_path), options, providers=self.providers)


class PlainBackend(Backend):
    def _load(self, adapter: Any, artifact: Path | None, precision: str, device: str,
              threads: int) -> Runner:
        return PlainRunner(artifact, threads)


SPECS = (BackendSpec(
    name="ort_plain", backend=PlainBackend, support={"cpu": ("fp32",)}, runs="onnx",
    requires="onnxruntime", packages=("onnxruntime",), style=("#000000", "h"),
    summary="ONNX Runtime, graph optimizations off"),)
'''


def install_plugin(site: Path) -> dict[str, str]:
    """The module and the metadata that registers it, on a path of its own; the environment
    that puts it on Python's path."""
    site.mkdir()
    (site / "ort_plain.py").write_text(PLUGIN)
    meta = site / "ort_plain-0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: ort-plain\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text("[deploybench.backends]\nort_plain = ort_plain\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_a_backend_from_one_new_file_runs_through_the_pipeline(tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site")
    listed = subprocess.run([str(Path(sys.executable).with_name("deploybench")), "backends"],
                            capture_output=True, text=True, env=env, check=True).stdout
    assert "| `ort_plain` | fp32 |  | ONNX Runtime, graph optimizations off |" in listed

    config = reduced_config(["fast_scnn_shapes"])
    config["models"]["fast_scnn_shapes"]["batches"] = [1]
    config["matrix"].update(backends=["pytorch", "onnxruntime", "ort_plain"], devices=["cpu"],
                            precisions=["fp32"])
    work = tmp_path / "work"
    run = subprocess.run(snakemake_command(work, config), capture_output=True, text=True,
                         timeout=900, env=env)
    assert run.returncode == 0, run.stderr[-3000:]

    results = pd.read_csv(work / "reports" / "ci" / "results.csv")
    plain = results[results.backend == "ort_plain"].iloc[0]
    assert plain.status == "ok", plain.reason
    # Timed in the model's measure group beside the others, evaluated and compared like them.
    pytorch = results[results.backend == "pytorch"].iloc[0]
    assert plain.speedup > 0 and plain.rounds == pytorch.rounds
    assert plain.mIoU == pytest.approx(results[results.backend == "onnxruntime"].mIoU.iloc[0],
                                       abs=0.5)
    assert plain.pixel_agreement > 0.99
    detail = (work / "reports" / "ci" / "benchmark.md").read_text()
    assert "ort_plain" in detail

    # Without the plugin the name is unknown, and the config says which ones are valid.
    bare = subprocess.run(snakemake_command(work, config, "-n"), capture_output=True, text=True,
                          timeout=300)
    said = bare.stdout + bare.stderr
    assert bare.returncode != 0 and "'ort_plain' is not one of" in said, said[-2000:]
    assert "onnxruntime" in said
