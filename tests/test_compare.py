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
         device: str = "cpu", x: tuple[float, float, float] | None = None,
         **extra: float) -> dict:
    """A results.csv row; `x`: the speed-up over PyTorch fp32 and its interval."""
    low, high = ci or ((median * 0.99, median * 1.01) if median else (None, None))
    speedup = dict(zip(("speedup", "speedup_ci95_low", "speedup_ci95_high"), x, strict=True)) \
        if x else {}
    return {"model": model, "task": "detection", "resolution": "160x160", "backend": backend,
            "device": device, "precision": precision, "batch": 1, "status": status,
            "reason": reason, "latency_ms_median": median if status == "ok" else None,
            "latency_ms_median_ci95_low": low if status == "ok" else None,
            "latency_ms_median_ci95_high": high if status == "ok" else None, **speedup,
            **extra}


def write(folder: Path, rows: list[dict], env: dict) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    (folder / "environment.json").write_text(json.dumps(env))
    return folder


REF = (1.0, 1.0, 1.0)


@pytest.fixture
def result_sets(tmp_path: Path) -> tuple[Path, Path]:
    """The same machine; a package upgraded (onnxruntime)."""
    base = [
        cell("det", "pytorch", median=30.0, x=REF, bbox_mAP=0.712, parity_min_cosine=1.0),
        cell("det", "onnxruntime", median=5.0, x=(6.0, 5.9, 6.1), bbox_mAP=0.712,
             parity_min_cosine=1.0),
        cell("det", "onnxruntime", "int8", median=12.0, x=(2.5, 2.45, 2.55), bbox_mAP=0.710,
             parity_min_cosine=0.978),
        cell("det", "openvino", median=7.0, x=(4.3, 4.1, 4.5)),
        cell("det", "openvino", "int8", median=5.0, x=(6.0, 5.95, 6.05)),
        cell("det", "torchscript", median=19.0, x=(1.6, 1.55, 1.65)),
        cell("seg", "pytorch", median=16.0),  # from before speed-ups: on ms alone
        cell("seg", "onnxruntime", median=2.0),
        cell("seg", "torchscript", status="failed", reason="export failed: boom"),
        cell("seg", "pytorch", device="cuda", status="skipped", reason="no CUDA device"),
        cell("seg", "onnxruntime", device="cuda", status="skipped", reason="no CUDA device"),
    ]
    new = [
        cell("det", "pytorch", median=31.0, x=REF, bbox_mAP=0.712, parity_min_cosine=1.0),
        cell("det", "onnxruntime", median=4.1, x=(7.5, 7.4, 7.6), bbox_mAP=0.700,
             parity_min_cosine=1.0),  # faster against PyTorch: improved; AP beyond its gate
        cell("det", "onnxruntime", "int8", median=12.1, x=(2.46, 2.42, 2.50), bbox_mAP=0.709,
             parity_min_cosine=0.950),  # -1.6 %: below the threshold; parity worse
        cell("det", "openvino", median=8.4, x=(3.7, 3.0, 4.4)),  # intervals overlap: noise
        cell("det", "openvino", "int8", median=6.2, x=(5.0, 4.95, 5.05)),  # regressed
        # torchscript gone; torch_compile new
        cell("det", "torch_compile", median=16.0, x=(1.9, 1.8, 2.0)),
        cell("seg", "pytorch", status="failed", reason="measure failed: out of memory"),
        cell("seg", "onnxruntime", status="skipped", reason="onnxruntime not installed"),
        cell("seg", "torchscript", median=9.0),  # now running
        cell("seg", "pytorch", device="cuda", status="skipped", reason="no CUDA device"),
        cell("seg", "onnxruntime", device="cuda", status="failed", reason="CUDA EP error"),
    ]
    new_env = {**ENV, "versions": {**ENV["versions"], "onnxruntime": "1.33.0"}}
    return (write(tmp_path / "base" / "amd-epyc-2c", base, ENV),
            write(tmp_path / "new" / "amd-epyc-2c", new, new_env))


def test_every_verdict(result_sets: tuple[Path, Path]) -> None:
    base, new = result_sets
    result = compare(base.parent, new.parent, 0.05, default_gates())
    verdicts = dict(zip(result.cells.cell, result.cells.verdict, strict=True))
    assert verdicts == {
        "det 160x160 pytorch fp32": "unchanged (within noise)",
        "det 160x160 onnxruntime fp32": "improved",
        "det 160x160 onnxruntime int8": "unchanged (within noise)",  # below the threshold
        "det 160x160 openvino fp32": "unchanged (within noise)",  # intervals overlap
        "det 160x160 openvino int8": "regressed",
        "det 160x160 torchscript fp32": "gone",
        "det 160x160 torch_compile fp32": "new",
        "seg 160x160 pytorch fp32": "now failing",
        "seg 160x160 onnxruntime fp32": "now skipped",
        "seg 160x160 torchscript fp32": "now running",
        "seg 160x160 pytorch fp32 (cuda)": "still skipped",
        "seg 160x160 onnxruntime fp32 (cuda)": "now failing",
    }
    basis = dict(zip(result.cells.cell, result.cells.basis, strict=True))
    assert basis["det 160x160 openvino int8"] == "speed-up"
    assert basis["det 160x160 pytorch fp32"] == "ms"
    assert [(a["cell"], a["metric"]) for a in result.accuracy] == [
        ("det 160x160 onnxruntime fp32", "bbox_mAP")]  # int8's -0.001 is within its gate
    assert [(p["cell"], p["measure"]) for p in result.parity] == [
        ("det 160x160 onnxruntime int8", "parity_min_cosine")]
    changed = {e["what"]: (e["old"], e["new"]) for e in result.environment}
    assert changed == {"package onnxruntime": ("1.32.0", "1.33.0")}
    assert result.conditions == []  # a package is what a change is compared for
    # regressed + 2 now failing + 1 accuracy drop beyond its gate
    assert result.regressions == 4


def _runs(tmp_path: Path, scale: float, kernel: tuple[float, float],
          new_env: dict | None = None) -> tuple[Path, Path]:
    """Two runs of the same cells: the new one `scale` x slower, its speed-ups the same; the
    reference kernel around the windows `kernel` (old, new) ms."""
    def rows(factor: float, kernel_ms: float) -> list[dict]:
        return [cell("det", b, p, median=ms * factor, x=x, reference_ms=kernel_ms)
                for b, p, ms, x in (("pytorch", "fp32", 30.0, REF),
                                    ("onnxruntime", "fp32", 5.0, (6.0, 5.9, 6.1)),
                                    ("openvino", "int8", 4.0, (7.5, 7.3, 7.7)))]

    return (write(tmp_path / "a" / "p", rows(1.0, kernel[0]), ENV),
            write(tmp_path / "b" / "p", rows(scale, kernel[1]), new_env or ENV))


def test_drift_is_no_change_and_fewer_threads_are_a_regression(tmp_path: Path) -> None:
    # The quiet medians 20 % slower between back-to-back runs (up to 24 % measured here), the
    # speed-ups the same: nothing changed.
    base, new = _runs(tmp_path / "drift", 1.2, (2.0, 2.8))
    drift = compare(base.parent, new.parent, 0.10, default_gates())
    assert set(drift.cells.verdict) == {"unchanged (within noise)"}
    # measure.threads 1 instead of 2: every multi-threaded cell 1.7 x slower, the speed-ups
    # much the same: regressed, on the medians.
    base, new = _runs(tmp_path / "threads", 1.7, (2.0, 2.05))
    slower = compare(base.parent, new.parent, 0.10, default_gates())
    assert set(slower.cells.verdict) == {"regressed"}
    assert set(slower.cells.basis) == {"ms"}


def test_another_host_is_judged_on_speedups_only(tmp_path: Path) -> None:
    other = {**ENV, "hardware": {**ENV["hardware"], "host": "0f1e2d3c4b5a"}}
    base, new = _runs(tmp_path, 0.6, (2.9, 1.8), other)
    result = compare(base.parent, new.parent, 0.05, default_gates())
    verdicts = dict(zip(result.cells.cell, result.cells.verdict, strict=True))
    assert verdicts == {"det 160x160 pytorch fp32": "not compared (environment changed)",
                        "det 160x160 onnxruntime fp32": "unchanged (within noise)",
                        "det 160x160 openvino int8": "unchanged (within noise)"}
    body = render(result, 0.05)
    assert body.split("\n")[2].startswith("**The machine changed** (p: hardware host (none) -> "
                                           "0f1e2d3c4b5a)")


def test_body_matches_golden(result_sets: tuple[Path, Path]) -> None:
    base, new = result_sets
    body = render(compare(base.parent, new.parent, 0.05, default_gates()), 0.05)
    assert body.startswith("## Benchmark changes\n\nMeasurement settings: not recorded on one "
                           "side or both for amd-epyc-2c (docs published before they were).\n\n"
                           "Profiles: amd-epyc-2c. Cells: 1 regressed, 2 now failing, 1 improved")
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


def test_changed_settings_are_stated_and_not_judged(tmp_path: Path) -> None:
    """measure.threads 1 against 2: the header says so before any verdict, and no cell is
    called regressed unless asked; the busy cells of each side are counted there too."""
    settings = {"threads": 2, "min_seconds": 30.0, "max_seconds": 45.0, "precision": 0.03}
    old_env = {**ENV, "measure_settings": {"local": settings}}
    new_env = {**ENV, "measure_settings": {"local": {**settings, "threads": 1}}}
    base, new = _runs(tmp_path, 1.7, (2.0, 2.05), new_env)
    (base / "environment.json").write_text(json.dumps(old_env))
    for side, busy in ((base, [True, False, True]), (new, [False, False, False])):
        frame = pd.read_csv(side / "results.csv")
        frame["busy"], frame["unstable"] = busy, [False, False, False]
        frame.to_csv(side / "results.csv", index=False)

    result = compare(base.parent, new.parent, 0.10, default_gates())
    assert set(result.cells.verdict) == {"not compared (settings changed)"}
    assert result.regressions == 0
    body = render(result, 0.10).split("\n")
    assert body[2].startswith("**The measurement settings changed** (p: measure.threads 2 -> 1) "
                              "for 3 cells.")
    assert body[3] == ("Cells measured on a busy machine or with an unstable median: p old: 2 of "
                       "3 cells busy, 0 unstable; p new: 0 of 3 cells busy, 0 unstable.")
    judged = compare(base.parent, new.parent, 0.10, default_gates(), across_settings=True)
    assert set(judged.cells.verdict) == {"regressed"}
    assert "Verdicts are given anyway" in render(judged, 0.10)
