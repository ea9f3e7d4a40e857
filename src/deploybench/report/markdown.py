"""Markdown cells and tables as every section of the docs writes them: fixed formats, so
that the same results give the same bytes."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd


def num(value: Any, fmt: str) -> str:
    return "" if value is None or pd.isna(value) else format(value, fmt)


def md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True) + "\n"


def combo(row: Any) -> str:
    return f"{row.backend} {row.precision}" + ("" if row.device == "cpu" else f" ({row.device})")


def ran(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells of the (backend, device, precision) combinations that ran for at least one model:
    the wide tables leave out what this machine skips altogether (listed under "did not run")."""
    ran = frame[frame.status != "skipped"][["backend", "device", "precision"]].drop_duplicates()
    return frame.merge(ran, on=["backend", "device", "precision"])


def count(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(int(value))


def interval(low: Any, high: Any, fmt: str) -> str:
    return f"{low:{fmt}}-{high:{fmt}}" if pd.notna(low) and pd.notna(high) else ""


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def origin(at: Any, commit: Any, run: Any) -> str:
    """"2026-12-03 1a2b3c4d (run r1)": where a number came from; empty where nothing ran."""
    if not isinstance(at, str) or not at:
        return ""
    commit = commit if isinstance(commit, str) else ""
    short = commit[:8] + ("-dirty" if commit.endswith("-dirty") else "")
    named = f" (run {run})" if isinstance(run, str) and run else ""
    return f"{at[:10]} {short}".strip() + named
