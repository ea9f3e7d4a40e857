"""`deploybench compare BASE NEW`: two published result sets -> a pull-request body and a verdict.

BASE and NEW are docs directories as `deploybench publish` leaves them: `reports/` (one folder
per hardware profile) or one profile's folder. Each profile's `results.csv` holds every cell's
median and its 95 % confidence interval, and `environment.json` the packages, hardware and
image the numbers came from, so that a latency change can be read against what else changed.

A latency verdict rests first on each cell's speed-up over PyTorch fp32 in its own run (its
measure group's paired estimate): a machine that drifts, or another host, moves every cell of a
group alike and leaves the speed-ups where they were. A change counts only when it is larger
than the threshold *and* the two intervals do not overlap. Absolute milliseconds (medians over
the rounds on the quiet machine) decide too, but only where the environment is unchanged (same
host, CPU, kernel, packages, image) and the move is beyond `ABSOLUTE_THRESHOLD`: what moves
every cell at once (fewer threads, a slower library) shows there and not in the speed-ups.
Where the environment changed, absolute moves are shown and never called improvements or
regressions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from deploybench.errors import UserError
from deploybench.metrics import METRICS

KEY = ["model", "resolution", "backend", "device", "precision", "batch"]
# metric -> (scale of a printed value, format)
# Parity that got worse by more than this is reported (float nondeterminism moves it less).
PARITY_WORSE = {"parity_min_cosine": 1e-3, "boxes_matched": 0.01, "pixel_agreement": 0.01,
                "mean_mask_iou": 0.01}
SETTINGS_CHANGED = "not compared (settings changed)"
VERDICTS = ("regressed", "now failing", "improved", "unchanged (within noise)",
            "not compared (environment changed)", SETTINGS_CHANGED, "new", "gone",
            "now skipped", "now running", "still failing", "still skipped")
# listed under a fold, not up front
QUIET = ("unchanged (within noise)", "not compared (environment changed)", SETTINGS_CHANGED,
         "still skipped")
# A timed move of a cell measured under other settings is the settings' as much as the code's.
JUDGED = ("regressed", "improved", "unchanged (within noise)")
# On this project's VM the quiet rounds' medians of back-to-back runs moved by up to 24 %
# (benchmarks/ratio_reproducibility.py), while one thread instead of two slowed every cell by
# 25-110 %: an absolute move counts only beyond the drift. Dividing by the reference kernel
# timed around each window made it worse (the kernel read 30 % slow beside cells that were not).
ABSOLUTE_THRESHOLD = 0.25
# What makes absolute milliseconds of two runs incomparable (environment.json's keys).
CONDITIONS = ("hardware host", "hardware cpu", "hardware cores", "hardware system",
              "hardware gpu", "image")
GITHUB_BODY_LIMIT = 65_000  # GitHub refuses pull-request bodies above 65,536 characters


@dataclass
class Comparison:
    profiles: list[str]
    cells: pd.DataFrame  # one row per cell: KEY, profile, old/new median and CI, change, verdict
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    parity: list[dict[str, Any]] = field(default_factory=list)
    environment: list[dict[str, str]] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)  # profiles whose docs did not change
    # what changed that makes absolute milliseconds incomparable
    conditions: list[dict[str, str]] = field(default_factory=list)
    # measurement settings that differ (measure.threads, the stopping rule, ...)
    settings: list[dict[str, str]] = field(default_factory=list)
    # per profile and side: timed cells, and how many were flagged busy or unstable
    flags: list[dict[str, Any]] = field(default_factory=list)
    across_settings: bool = False  # verdicts given although settings differ
    unrecorded: list[str] = field(default_factory=list)  # profiles a side has no settings of
    settings_cells: int = 0  # cells whose two sides were measured under other settings
    compared: list[str] = field(default_factory=list)  # profiles on both sides

    def count(self, verdict: str) -> int:
        return int((self.cells.verdict == verdict).sum()) if not self.cells.empty else 0

    @property
    def regressions(self) -> int:
        """Latency regressions, cells that stopped running, and metrics beyond their gate."""
        drops = [a for a in self.accuracy if a["change"] < 0]
        return self.count("regressed") + self.count("now failing") + len(drops)


def profile_dirs(root: Path) -> dict[str, Path]:
    """profile -> its folder: `root` itself when it is one profile's docs, else its children."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; give a docs folder such as reports/ or "
                        "reports/<profile>/")
    if (root / "results.csv").is_file():
        return {root.name: root}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "results.csv").is_file()}


def _read(folder: Path | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    if folder is None:
        return pd.DataFrame(columns=[*KEY, "status"]), {}
    frame = pd.read_csv(folder / "results.csv", dtype={"resolution": str, "reason": str})
    if "workload" in frame:  # the training cells' rows: not compared here
        frame = frame[frame.workload.fillna("inference") == "inference"]
    env_file = folder / "environment.json"
    env = json.loads(env_file.read_text()) if env_file.is_file() else {}
    return frame, env


def _apart(a: tuple[float, float], b: tuple[float, float]) -> bool:
    if any(pd.isna(v) for v in (*a, *b)):
        return True  # no interval to compare (e.g. results from before intervals existed)
    return not (a[0] <= b[1] and b[0] <= a[1])


def _speedup_change(old: Any, new: Any) -> tuple[float, bool] | None:
    """(relative slow-down of the cell against its run's reference, intervals apart), where
    both sides have a paired speed-up and the cell is not the reference itself."""
    if pd.isna(getattr(old, "speedup", float("nan"))) or pd.isna(getattr(new, "speedup",
                                                                          float("nan"))):
        return None
    if new.speedup_ci95_low == new.speedup_ci95_high:  # the reference: 1 by definition
        return None
    return (old.speedup / new.speedup - 1,
            _apart((old.speedup_ci95_low, old.speedup_ci95_high),
                   (new.speedup_ci95_low, new.speedup_ci95_high)))


def _absolute_change(old: Any, new: Any) -> tuple[float, bool]:
    """(relative change of the median, intervals apart)."""
    change = new.latency_ms_median / old.latency_ms_median - 1
    return change, _apart(
        (old.latency_ms_median_ci95_low, old.latency_ms_median_ci95_high),
        (new.latency_ms_median_ci95_low, new.latency_ms_median_ci95_high))


def _latency_verdict(old: Any, new: Any, threshold: float, comparable: bool = True
                     ) -> tuple[str, float | None, str]:
    """(verdict, change, what it rests on)."""
    if old is None:
        return "new", None, ""
    if new is None:
        return "gone", None, ""
    if new.status != "ok":
        if old.status == new.status:
            return f"still {new.status}", None, ""
        return ("now failing" if new.status == "failed" else "now skipped"), None, ""
    if old.status != "ok":
        return "now running", None, ""
    if comparable:
        change, apart = _absolute_change(old, new)
        if abs(change) > max(threshold, ABSOLUTE_THRESHOLD) and apart:
            return ("regressed" if change > 0 else "improved"), change, "ms"
    relative = _speedup_change(old, new)
    if relative is not None:
        change, apart = relative
        if abs(change) > threshold and apart:
            return ("regressed" if change > 0 else "improved"), change, "speed-up"
        return "unchanged (within noise)", change, "speed-up"
    if not comparable:
        return "not compared (environment changed)", None, ""
    change, _ = _absolute_change(old, new)
    return "unchanged (within noise)", change, "ms"


def _fmt(metric: str) -> str:
    return METRICS[metric].fmt if metric in METRICS else ".3f"


def _rows_by_key(frame: pd.DataFrame) -> dict[tuple, Any]:
    return {tuple(getattr(r, k) for k in KEY): r for r in frame.itertuples(index=False)}


def _accuracy_moves(profile: str, old: Any, new: Any,
                    gates: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    moves = []
    for metric, tolerances in gates.items():
        tol = tolerances.get(new.precision)
        a, b = getattr(old, metric, None), getattr(new, metric, None)
        if tol is None or a is None or b is None or pd.isna(a) or pd.isna(b):
            continue
        if abs(b - a) > tol + 1e-9:
            moves.append({"profile": profile, "cell": _label(new), "metric": metric, "old": a,
                          "new": b, "change": b - a, "gate": tol})
    return moves


def _parity_worse(profile: str, old: Any, new: Any) -> list[dict[str, Any]]:
    worse = []
    for column, margin in PARITY_WORSE.items():
        a, b = getattr(old, column, None), getattr(new, column, None)
        if a is None or b is None or pd.isna(a) or pd.isna(b):
            continue
        if a - b > margin:
            worse.append({"profile": profile, "cell": _label(new), "measure": column,
                          "old": a, "new": b})
    return worse


def _flatten(env: dict[str, Any]) -> dict[str, str]:
    flat = {f"package {k}": str(v) for k, v in (env.get("versions") or {}).items()}
    flat |= {f"hardware {k}": str(v) for k, v in (env.get("hardware") or {}).items()}
    for runtime in env.get("runtimes") or []:
        if runtime.get("kind") == "docker":
            flat["image"] = f"{runtime.get('image')} ({runtime.get('image_id')})"
        else:
            flat.setdefault("image", "none (local runtime)")
    return flat


def _environment_changes(profile: str, old: dict[str, Any],
                         new: dict[str, Any]) -> list[dict[str, str]]:
    a, b = _flatten(old), _flatten(new)
    return [{"profile": profile, "what": k, "old": a.get(k, "(none)"), "new": b.get(k, "(none)")}
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _label(row: Any) -> str:
    device = "" if row.device == "cpu" else f" ({row.device})"
    batch = "" if int(row.batch) == 1 else f" b{int(row.batch)}"
    return f"{row.model} {row.resolution} {row.backend} {row.precision}{device}{batch}"


def _run_settings(env: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """run -> its measure settings; None where not recorded (docs published before they were)."""
    return env.get("measure_settings")


def _settings_moves(profile: str, old: Any, new: Any, old_env: dict[str, Any],
                    new_env: dict[str, Any]) -> list[dict[str, str]]:
    """The measure settings that differ between the runs that measured the two sides of a
    cell (none where a side's run has no recorded settings)."""
    def of(row: Any, env: dict[str, Any]) -> dict[str, Any] | None:
        run = getattr(row, "run", None)
        run = run if isinstance(run, str) and run else env.get("run")
        return (_run_settings(env) or {}).get(run)

    a, b = of(old, old_env), of(new, new_env)
    if a is None or b is None:
        return []
    return [{"profile": profile, "what": f"measure.{k}", "old": str(a.get(k, "(none)")),
             "new": str(b.get(k, "(none)"))} for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def _flagged(profile: str, side: str, frame: pd.DataFrame) -> dict[str, Any]:
    """How many of the side's timed cells were measured on a busy machine, or unstably."""
    timed = frame[frame.latency_ms_median.notna()] if "latency_ms_median" in frame else frame

    def count(flag: str) -> int | None:
        return int((timed[flag].astype(str) == "True").sum()) if flag in timed else None

    return {"profile": profile, "side": side, "cells": len(timed), "busy": count("busy"),
            "unstable": count("unstable")}


def compare(base: Path, new: Path, threshold: float, gates: dict[str, dict[str, float]],
            across_settings: bool = False) -> Comparison:
    old_profiles, new_profiles = profile_dirs(base), profile_dirs(new)
    if not new_profiles:
        raise UserError(f"{new} holds no results.csv: nothing to compare; give the folder a "
                        "run published to (reports/ or reports/<profile>/)")
    # A profile whose docs are byte-identical on both sides was not measured again: comparing
    # it with itself would only add rows that cannot change.
    same = sorted(p for p in set(old_profiles) & set(new_profiles)
                  if _same_docs(old_profiles[p], new_profiles[p]))
    profiles = sorted((set(old_profiles) | set(new_profiles)) - set(same))
    result = Comparison(profiles, pd.DataFrame(), not_measured=same,
                        across_settings=across_settings)
    rows = []
    for profile in profiles:
        (old_frame, old_env), (new_frame, new_env) = (_read(old_profiles.get(profile)),
                                                      _read(new_profiles.get(profile)))
        old_rows, new_rows = _rows_by_key(old_frame), _rows_by_key(new_frame)
        changed = [c for c in _environment_changes(profile, old_env, new_env)
                   if c["what"] in CONDITIONS] if old_env and new_env else []
        result.conditions += changed
        if profile in old_profiles and profile in new_profiles:  # measured on both sides
            result.compared.append(profile)
            if _run_settings(old_env) is None or _run_settings(new_env) is None:
                result.unrecorded.append(profile)
            result.flags += [_flagged(profile, "old", old_frame),
                             _flagged(profile, "new", new_frame)]
        for key in [*old_rows, *(k for k in new_rows if k not in old_rows)]:
            o, n = old_rows.get(key), new_rows.get(key)
            verdict, change, basis = _latency_verdict(o, n, threshold, not changed)
            moves = _settings_moves(profile, o, n, old_env, new_env) \
                if o is not None and n is not None else []
            result.settings += [m for m in moves if m not in result.settings]
            result.settings_cells += bool(moves)
            if moves and not across_settings and verdict in JUDGED:
                verdict = SETTINGS_CHANGED
            rows.append({"profile": profile, "cell": _label(n if n is not None else o),
                         "old_ms": getattr(o, "latency_ms_median", None),
                         "new_ms": getattr(n, "latency_ms_median", None), "change": change,
                         "old_x": getattr(o, "speedup", None), "new_x": getattr(n, "speedup", None),
                         "basis": basis,
                         "old_ci": _ci(o), "new_ci": _ci(n), "verdict": verdict,
                         "reason": (getattr(n, "reason", "") if verdict in ("now failing",
                                                                            "now skipped")
                                    else "")})
            if o is not None and n is not None:
                result.accuracy += _accuracy_moves(profile, o, n, gates)
                result.parity += _parity_worse(profile, o, n)
        if profile in old_profiles and profile in new_profiles:
            if old_env and new_env:
                result.environment += _environment_changes(profile, old_env, new_env)
            else:  # docs published before environment.json existed
                result.environment.append({"profile": profile, "what": "environment.json",
                                           "old": "recorded" if old_env else "not recorded",
                                           "new": "recorded" if new_env else "not recorded"})
    result.cells = pd.DataFrame(rows, columns=["profile", "cell", "old_ms", "new_ms", "old_x",
                                               "new_x", "change", "basis", "old_ci", "new_ci",
                                               "verdict", "reason"])
    return result


def _same_docs(a: Path, b: Path) -> bool:
    return all((a / name).is_file() == (b / name).is_file() and
               (not (a / name).is_file() or (a / name).read_bytes() == (b / name).read_bytes())
               for name in ("results.csv", "environment.json"))


def _ci(row: Any) -> str:
    if row is None or pd.isna(getattr(row, "latency_ms_median_ci95_low", float("nan"))):
        return ""
    return f"{row.latency_ms_median_ci95_low:.2f}-{row.latency_ms_median_ci95_high:.2f}"


def _ms(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.2f}"


def _md(rows: list[dict[str, Any]]) -> str:
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n"


def _x(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"x{value:.2f}"


def _cell_table(frame: pd.DataFrame) -> str:
    return _md([{"Profile": r.profile, "Cell": r.cell, "old ms": _ms(r.old_ms),
                 "old 95 % CI": r.old_ci, "new ms": _ms(r.new_ms), "new 95 % CI": r.new_ci,
                 "old x PyTorch": _x(r.old_x), "new x PyTorch": _x(r.new_x),
                 "change": "" if pd.isna(r.change) else f"{100 * r.change:+.1f} %",
                 "on": r.basis,
                 "verdict": r.verdict + (f": {r.reason}" if r.reason else "")}
                for r in frame.itertuples()])


def _conditions(result: Comparison) -> list[str]:
    """Before any verdict: the measurement settings that differ and the flagged cells on each
    side, what makes two figures comparable or not (none where no profile is on both sides)."""
    if not result.compared:
        return []
    lines = []
    if result.settings:
        what = "; ".join(f"{c['profile']}: {c['what']} {c['old']} -> {c['new']}"
                         for c in result.settings)
        lines.append(f"**The measurement settings changed** ({what}) for "
                     f"{result.settings_cells} cells. " + (
                         "Verdicts are given anyway (`--across-settings`): read them with the "
                         "settings." if result.across_settings else
                         "Those are not called improved or regressed: the settings move every "
                         "timed figure (`--across-settings` judges them anyway)."))
    elif result.unrecorded:
        lines.append(f"Measurement settings: not recorded on one side or both for "
                     f"{', '.join(result.unrecorded)} (docs published before they were).")
    else:
        lines.append("Measurement settings: the same on both sides.")
    flagged = [f"{f['profile']} {f['side']}: {f['busy']} of {f['cells']} cells busy, "
               f"{f['unstable']} unstable" for f in result.flags
               if f["busy"] is not None and f["cells"]]
    if flagged:
        lines.append("Cells measured on a busy machine or with an unstable median: "
                     + "; ".join(flagged) + ".")
    return [*lines, ""]


def render(result: Comparison, threshold: float) -> str:
    cells = result.cells
    regressed = cells[cells.verdict == "regressed"]
    worst = (regressed.loc[regressed.change.astype(float).idxmax()] if not regressed.empty
             else None)
    counts = ", ".join(f"{result.count(v)} {v}" for v in VERDICTS if result.count(v))
    lines = ["## Benchmark changes", ""]
    if result.conditions:
        what = "; ".join(f"{c['profile']}: {c['what']} {c['old']} -> {c['new']}"
                         for c in result.conditions)
        lines += [f"**The machine changed** ({what}). Absolute milliseconds of the two sides "
                  "are not comparable: they are shown, and no cell is called improved or "
                  "regressed on them. Verdicts rest on each cell's speed-up over PyTorch fp32 "
                  "within its own run.", ""]
    lines += _conditions(result)
    lines += [f"Profiles: {', '.join(result.profiles) or 'none'}. Cells: {counts or 'none'}."
             + (f" Not measured again (docs unchanged): {', '.join(result.not_measured)}."
                if result.not_measured else "")]
    if worst is not None:
        moved = (f"speed-up over PyTorch fp32 {_x(worst.old_x)} -> {_x(worst.new_x)}"
                 if worst.basis == "speed-up" else "median")
        lines.append(f"Worst regression: {worst.cell} on {worst.profile}, {_ms(worst.old_ms)} -> "
                     f"{_ms(worst.new_ms)} ms ({moved}: {100 * worst.change:+.1f} %).")
    lines.append(f"Accuracy beyond its gate: {len(result.accuracy)}. Parity worse: "
                 f"{len(result.parity)}. Environment changes: {len(result.environment)}.")
    lines += ["", f"A latency change counts only when it exceeds {100 * threshold:g} % **and** "
              "the two 95 % intervals do not overlap: of the cell's speed-up over PyTorch fp32 "
              "in its own run (*on: speed-up*), or, on an unchanged machine only, of its median "
              f"beyond {100 * ABSOLUTE_THRESHOLD:g} % (*on: ms*). All latencies are the "
              "network alone (input on the device, outputs left there, synchronized).", ""]
    changed = cells[~cells.verdict.isin(QUIET)]
    if not changed.empty:
        lines += ["### Latency", "", _cell_table(changed)]
    if result.accuracy:
        lines += ["### Accuracy beyond its gate", "", _md(
            [{"Profile": a["profile"], "Cell": a["cell"], "Metric": a["metric"],
              "old": format(a["old"], _fmt(a["metric"])),
              "new": format(a["new"], _fmt(a["metric"])),
              "change": format(a["change"], "+" + _fmt(a["metric"])),
              "gate": f"{a['gate']:g}"} for a in result.accuracy])]
    if result.parity:
        lines += ["### Parity worse than before", "", _md(
            [{"Profile": p["profile"], "Cell": p["cell"], "Measure": p["measure"],
              "old": f"{p['old']:.6f}", "new": f"{p['new']:.6f}"} for p in result.parity])]
    if result.environment:
        lines += ["### Environment changes", "", _md(
            [{"Profile": e["profile"], "What": e["what"], "old": e["old"], "new": e["new"]}
             for e in result.environment])]
    unchanged = cells[cells.verdict.isin(QUIET)]
    if not unchanged.empty:
        lines += [f"<details><summary>Unchanged within noise, not compared, or still skipped "
                  f"({len(unchanged)} cells)</summary>", "", _cell_table(unchanged),
                  "</details>", ""]
    body = "\n".join(lines)
    if len(body) > GITHUB_BODY_LIMIT:
        cut = body[:GITHUB_BODY_LIMIT].rsplit("\n", 1)[0]
        body = cut + "\n\n(cut at GitHub's size limit; the docs in this pull request have "\
            "every number)\n"
    return body
