"""The CLI: one subcommand per rule, each with --help, bad input answered in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deploybench.cli import main

STEPS = ["data", "fetch", "export", "measure", "evaluate", "report", "fixture"]


@pytest.mark.parametrize("step", STEPS)
def test_every_step_has_help(step: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([step, "--help"])
    assert exit_.value.code == 0
    assert "usage: deploybench " + step in capsys.readouterr().out


def test_user_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "deploybench", "fetch", "--url",
                           (tmp_path / "missing.pth").as_uri(), "--sha256", "0" * 64,
                           "--out", str(tmp_path / "x.pth")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_failed_cell_leaves_a_record_and_fails(tmp_path: Path) -> None:
    out = tmp_path / "measure" / "m" / "pytorch-fp32-b1.json"
    code = main(["measure", "--model", "m", "--task", "detection", "--config",
                 str(tmp_path / "nope.py"), "--checkpoint", str(tmp_path / "c.pth"), "--data",
                 str(tmp_path), "--input-shape", "64", "64", "--backend", "pytorch",
                 "--precision", "fp32", "--out", str(out)])
    assert code == 1 and not out.exists()
    from deploybench.results import load_result

    result = load_result(out)
    assert result["status"] == "failed" and "nope.py does not exist" in result["reason"]
    assert result["cell"]["model"] == "m" and result["provenance"]["versions"]["torch"]
