"""The detail page's *Environment* and `environment.json`: the machine, runtime, packages and
commits the numbers come from."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from deploybench.report.markdown import md

TITLE = "Environment"


def runtime_label(runtime: dict[str, str]) -> str:
    if runtime.get("kind") != "docker":
        return "local (no container)"
    digest = runtime.get("repo_digest") or "no repo digest: built locally"
    return f"docker image {runtime['image']} (id {runtime['image_id']}, {digest})"


def environment_summary(records: list[dict[str, Any]], run: str) -> dict[str, Any]:
    """What `deploybench compare` reads to tell a latency change from a changed environment;
    published beside the docs as environment.json."""
    records = [r for r in records if r.get("provenance")]  # not the cells that never ran
    ok = [r for r in records if r["status"] == "ok"] or records
    if not ok:
        return {"run": run}
    prov = ok[0]["provenance"]
    runtimes = {json.dumps(r["provenance"].get("runtime", {"kind": "local"}), sort_keys=True)
                for r in ok}
    return {"run": run, "runs": sorted({r.get("run", run) for r in records}),
            "versions": prov["versions"], "hardware": prov["hardware"],
            "git_commits": sorted({r["provenance"]["git_commit"] for r in records}),
            "runtimes": [json.loads(r) for r in sorted(runtimes)],
            # what `compare` needs to say two cells were timed alike: each run's measure settings
            "measure_settings": dict(sorted({
                r.get("run", run): r["settings"]["group_settings"] for r in records
                if r["step"] == "measure" and "group_settings" in r.get("settings", {})
            }.items())),
            "created": [min(r["provenance"]["created"] for r in records),
                        max(r["provenance"]["created"] for r in records)]}


def environment(records: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    if "versions" not in summary:
        return "No results yet.\n"
    run = summary["run"]
    versions = pd.DataFrame([{"Package": k, "Version": v}
                             for k, v in summary["versions"].items()])
    hw = summary["hardware"]
    commits = summary["git_commits"]
    created = summary["created"]
    threads = sorted({str(r["settings"].get("threads")) for r in records
                      if r["step"] == "measure" and "threads" in r["settings"]})
    measured = [r for r in records if r["step"] == "measure"
                and (r.get("machine_state") or {}).get("before")]
    loads = [r["machine_state"][k]["loadavg_1m"] for r in measured for k in ("before", "after")]
    governors = sorted({str(r["machine_state"]["before"]["governor"]) for r in measured})
    throttled = [f"{r['cell']['model']} {r['cell']['backend']}" for r in measured
                 if (r["machine_state"].get("gpu") or {}).get("throttled")]
    lines = [f"- CPU: {hw['cpu']} ({hw['cores']} usable cores, {hw['machine']}, {hw['system']})",
             f"- GPU: {hw.get('gpu') or 'none visible to PyTorch'}",
             f"- Intra-op threads per backend: {', '.join(threads) or 'n/a'}",
             f"- Runtime: {'; '.join(map(runtime_label, summary['runtimes']))}",
             f"- deploybench commit(s): {', '.join(commits)}; run `{run}`",
             f"- Results produced: {created[0]} to {created[-1]} (UTC)"]
    if measured:
        lines += [f"- CPU frequency governor: {', '.join(governors)} (None: not readable here)",
                  f"- 1-minute load average around the timed windows: {min(loads):.2f} to "
                  f"{max(loads):.2f}",
                  f"- GPU throttled during a timed window: {', '.join(throttled) or 'none seen'}"]
    lines.append("")
    return "\n".join(lines) + "\n" + md(versions)


def runs_line(summary: dict[str, Any]) -> str:
    runs = summary.get("runs") or [summary["run"]]
    names = ", ".join(f"`{r}`" for r in runs)
    return (f"Cells from run{'s' if len(runs) > 1 else ''} {names}, published by "
            "`deploybench publish`.")
