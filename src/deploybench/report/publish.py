"""Publish a run's docs: copy them from results/<profile>/<run>/report/ to reports/<profile>/.

The committed docs are never a Snakemake output: Snakemake would take their presence in a
fresh checkout for a finished run and measure nothing. A run's own report is the DAG's product;
publishing copies it, file by file and atomically, and the stamp it leaves is the DAG's target.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from deploybench.atomic import atomic_path, write_json
from deploybench.config import REPORT_FILES
from deploybench.errors import UserError


def publish(run_report: Path, to: Path, stamp: Path | None = None) -> list[Path]:
    """Copy the run's docs to `to`; every file checked before any is replaced."""
    sources = [run_report / name for name in REPORT_FILES]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise UserError(f"cannot publish: {', '.join(missing)} missing; run `deploybench "
                        "report` (the pipeline's report rule) for this run first")
    published = []
    for source in sources:
        target = to / source.name
        with atomic_path(target) as tmp:
            tmp.write_bytes(source.read_bytes())
        published.append(target)
    if stamp is not None:
        write_json(stamp, {"published_to": str(to), "files": {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in published}})
    return published
