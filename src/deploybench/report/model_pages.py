"""One detail page per model (`models/<model>.md` beside the front page): that model's rows of
every table (latency statistics, stages, accuracy and gates, parity, builds), so that a reader
who cares about one model reads one page. The tables, their columns and their explanations are
the detail page's (`benchmark.md`), which keeps every model per topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from deploybench.atomic import write_text
from deploybench.report import build

DIRECTORY = "models"


def _page(model: str, frame: pd.DataFrame, records: list[dict[str, Any]],
          gates: pd.DataFrame, tolerances: dict[str, dict[str, float]], profile: str) -> str:
    single = frame[frame.batch == 1]
    return "\n".join([
        f"# {model} on {profile}\n",
        f"This model's rows of every table; [front page](../{build.FRONT_PAGE}), [all models, "
        "by topic](../benchmark.md) (which also explains each column).\n",
        "## Latency statistics\n",
        f"In ms, {build.SCOPE}.\n",
        build.latency_detail(frame),
        *build.split_note(records),
        *build.slide_note(records),
        "## End to end, stage by stage\n",
        f"Median ms per stage, {build.END_TO_END}.\n",
        build.stages_table(records),
        "## Accuracy\n",
        build.accuracy_table(single, gates),
        "### Accuracy gates\n",
        build.gates_table(gates, tolerances),
        "## Output parity\n",
        build.parity_table(single),
        "## Builds\n",
        build.builds_table(records),
    ])


def write_model_pages(frame: pd.DataFrame, records: list[dict[str, Any]], gates: pd.DataFrame,
                      tolerances: dict[str, dict[str, float]], profile: str, out_dir: Path
                      ) -> list[str]:
    """Write every model's page; their paths relative to `out_dir`."""
    written = []
    for model in sorted(set(frame.model)):
        mine = [r for r in records if r["cell"]["model"] == model]
        page = Path(DIRECTORY) / f"{model}.md"
        write_text(out_dir / page, _page(model, frame[frame.model == model], mine,
                                         gates[gates.model == model] if "model" in gates
                                         else gates, tolerances, profile))
        written.append(str(page))
    return written
