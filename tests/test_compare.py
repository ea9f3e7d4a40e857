"""`deploybench compare`: crafted result sets for every verdict, against a golden body."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from deploybench.cli import main
from deploybench.config import default_gates
from deploybench.report.compare import compare, render

GOLDEN = Path(__file__).parent / "golden" / "compare.md"
ENV = {"run": "local", "versions": {"python": "3.11.7", "torch": "2.13.0+cpu",
                                    "onnxruntime": "1.32.0"},
       "hardware": {"cpu": "AMD EPYC", "cores": 2, "gpu": None},
       "runtimes": [{"kind": "local"}]}


def cell(model: str, backend: str, precision: str = "fp32", median: float | None = 10.0,
         ci: tuple[float, float] | None = None, status: str = "ok", reason: str = "",
         device: str = "cpu", **extra: float) -> dict:
    low, high = ci or ((median * 0.99, median * 1.01) if median else (None, None))
    return {"model": model, "task": "detection", "resolution": "160x160", "backend": backend,
            "device": device, "precision": precision, "batch": 1, "status": status,
            "reason": reason, "latency_ms_median": median if status == "ok" else None,
            "latency_ms_median_ci95_low": low if status == "ok" else None,
            "latency_ms_median_ci95_high": high if status == "ok" else None, **extra}


def write(folder: Path, rows: list[dict], env: dict) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    (folder / "environment.json").write_text(json.dumps(env))
    return folder


@pytest.fixture
def result_sets(tmp_path: Path) -> tuple[Path, Path]:
    base = [
        cell("det", "pytorch", median=30.0, bbox_mAP=0.712, parity_min_cosine=1.0),
        cell("det", "onnxruntime", median=5.0, bbox_mAP=0.712, parity_min_cosine=1.0),
        cell("det", "onnxruntime", "int8", median=12.0, bbox_mAP=0.710,
             parity_min_cosine=0.978),
        cell("det", "openvino", median=7.0),  # +20 %, intervals overlap: noise
        cell("det", "openvino", "int8", median=5.0),  # +3 %, intervals apart: below threshold
        cell("det", "torchscript", median=19.0),
        cell("seg", "pytorch", median=16.0),
        cell("seg", "onnxruntime", median=2.0),
        cell("seg", "torchscript", status="failed", reason="export failed: boom"),
        cell("seg", "pytorch", device="cuda", status="skipped", reason="no CUDA device"),
        cell("seg", "onnxruntime", device="cuda", status="skipped", reason="no CUDA device"),
    ]
    new = [
        cell("det", "pytorch", median=36.0, bbox_mAP=0.712, parity_min_cosine=1.0),  # regressed
        cell("det", "onnxruntime", median=4.0, bbox_mAP=0.700,  # improved; AP beyond its gate
             parity_min_cosine=1.0),
        cell("det", "onnxruntime", "int8", median=12.1, bbox_mAP=0.709,
             parity_min_cosine=0.950),  # parity worse
        cell("det", "openvino", median=8.4, ci=(6.5, 9.5)),
        cell("det", "openvino", "int8", median=5.15, ci=(5.12, 5.18)),
        # torchscript gone; torch_compile new
        cell("det", "torch_compile", median=16.0),
        cell("seg", "pytorch", status="failed", reason="measure failed: out of memory"),
        cell("seg", "onnxruntime", status="skipped", reason="onnxruntime not installed"),
        cell("seg", "torchscript", median=9.0),  # now running
        cell("seg", "pytorch", device="cuda", status="skipped", reason="no CUDA device"),
        cell("seg", "onnxruntime", device="cuda", status="failed", reason="CUDA EP error"),
    ]
    new_env = {**ENV, "versions": {**ENV["versions"], "onnxruntime": "1.33.0"},
               "runtimes": [{"kind": "docker", "image": "deploybench-cpu:0123456789abcdef",
                             "image_id": "sha256:feed", "repo_digest": ""}]}
    return (write(tmp_path / "base" / "amd-epyc-2c", base, ENV),
            write(tmp_path / "new" / "amd-epyc-2c", new, new_env))


def test_every_verdict(result_sets: tuple[Path, Path]) -> None:
    base, new = result_sets
    result = compare(base.parent, new.parent, 0.05, default_gates())
    verdicts = dict(zip(result.cells.cell, result.cells.verdict, strict=True))
    assert verdicts == {
        "det 160x160 pytorch fp32": "regressed",
        "det 160x160 onnxruntime fp32": "improved",
        "det 160x160 onnxruntime int8": "unchanged (within noise)",
        "det 160x160 openvino fp32": "unchanged (within noise)",  # intervals overlap
        "det 160x160 openvino int8": "unchanged (within noise)",  # below the threshold
        "det 160x160 torchscript fp32": "gone",
        "det 160x160 torch_compile fp32": "new",
        "seg 160x160 pytorch fp32": "now failing",
        "seg 160x160 onnxruntime fp32": "now skipped",
        "seg 160x160 torchscript fp32": "now running",
        "seg 160x160 pytorch fp32 (cuda)": "still skipped",
        "seg 160x160 onnxruntime fp32 (cuda)": "now failing",
    }
    assert [(a["cell"], a["metric"]) for a in result.accuracy] == [
        ("det 160x160 onnxruntime fp32", "bbox_mAP")]  # int8's -0.001 is within its gate
    assert [(p["cell"], p["measure"]) for p in result.parity] == [
        ("det 160x160 onnxruntime int8", "parity_min_cosine")]
    changed = {e["what"]: (e["old"], e["new"]) for e in result.environment}
    assert changed == {"package onnxruntime": ("1.32.0", "1.33.0"),
                       "image": ("none (local runtime)",
                                 "deploybench-cpu:0123456789abcdef (sha256:feed)")}
    # regressed + 2 now failing + 1 accuracy drop beyond its gate
    assert result.regressions == 4


def test_body_matches_golden(result_sets: tuple[Path, Path]) -> None:
    base, new = result_sets
    body = render(compare(base.parent, new.parent, 0.05, default_gates()), 0.05)
    assert body.startswith("## Benchmark changes\n\nProfiles: amd-epyc-2c. Cells: 1 regressed, "
                           "2 now failing, 1 improved")
    assert body == GOLDEN.read_text(), "regenerate tests/golden/compare.md if intended"


def test_cli_fail_on_regression(result_sets: tuple[Path, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    base, new = result_sets
    out, summary = tmp_path / "body.md", tmp_path / "summary.json"
    assert main(["compare", str(base), str(new), "--out", str(out)]) == 0
    assert main(["compare", str(base), str(new), "--out", str(out), "--summary-json",
                 str(summary), "--fail-on", "regression"]) == 1
    assert "4 regressions" in capsys.readouterr().err
    assert json.loads(summary.read_text())["regressed"] == 1
    # The same docs on both sides: nothing regressed, the gate lets it through.
    assert main(["compare", str(new), str(new), "--fail-on", "regression"]) == 0
    out = capsys.readouterr().out  # nothing is compared with itself
    assert "Profiles: none. Cells: none. Not measured again (docs unchanged): amd-epyc-2c" in out


def test_missing_new_results_is_a_clear_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), str(tmp_path / "empty")]) == 2
    assert "holds no results.csv: nothing to compare" in capsys.readouterr().err
