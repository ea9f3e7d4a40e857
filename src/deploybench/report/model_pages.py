"""One detail page per model (`models/<model>.md` beside the front page): that model's rows of
every table (latency statistics, stages, accuracy and gates, parity, builds), so that a reader
who cares about one model reads one page. The tables, their columns and their explanations are
the detail page's (`benchmark.md`), which keeps every model per topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from deploybench.atomic import write_text
from deploybench.measure.run import END_TO_END, SCOPE
from deploybench.report import zoo_section
from deploybench.report.accuracy_section import accuracy_table, gates_table
from deploybench.report.builds_section import builds_table
from deploybench.report.front_page import DETAIL_PAGE, FRONT_PAGE
from deploybench.report.graph_notes import slide_note, split_note
from deploybench.report.latency_section import latency_detail
from deploybench.report.markdown import anchor
from deploybench.report.parity_section import parity_table
from deploybench.report.stages_section import stages_table
from deploybench.report.train_table import train_frame
from deploybench.report.zoo_section import zoo_tables

DIRECTORY = "models"


def _page(model: str, frame: pd.DataFrame, records: list[dict[str, Any]],
          gates: pd.DataFrame, tolerances: dict[str, dict[str, float]], profile: str) -> str:
    single = frame[frame.batch == 1]
    return "\n".join([
        f"# {model} on {profile}\n",
        f"This model's rows of every table; [front page](../{FRONT_PAGE}), [all models, "
        f"by topic](../{DETAIL_PAGE}) (which also explains each column).\n",
        "## Latency statistics\n",
        f"In ms, {SCOPE}.\n",
        latency_detail(frame),
        *split_note(records),
        *slide_note(records),
        "## Model zoo: training and inference\n",
        f"The model-zoo pages' columns ([what each means]({'../' + DETAIL_PAGE}#"
        f"{anchor(zoo_section.TITLE)})).\n",
        *zoo_tables(frame, train_frame(records)),
        "## End to end, stage by stage\n",
        f"Median ms per stage, {END_TO_END}.\n",
        stages_table(records),
        "## Accuracy\n",
        accuracy_table(single, gates),
        "### Accuracy gates\n",
        gates_table(gates, tolerances),
        "## Output parity\n",
        parity_table(single),
        "## Builds\n",
        builds_table(records),
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
