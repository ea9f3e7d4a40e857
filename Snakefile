# deploybench: benchmark OpenMMLab models across deployment backends.
# Rules are thin: each runs one `deploybench <step>` command; the logic lives in src/deploybench.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from deploybench.config import (
    NAME_PATTERN,
    Plan,
    container_prefix,
    dry_run,
    read_yaml,
    validate,
)
from deploybench.errors import UserError
from deploybench.fetch import export_settings, verify_fetched
from deploybench.forkserver import start_for_jobs, stop
from deploybench.watchdog import clear_stale_locks, export_for_jobs

# Snakemake's own message for a YAML error names no line: read the file here first.
try:
    if Path("config.yaml").exists():
        read_yaml("config.yaml")
except UserError as err:
    raise WorkflowError(str(err)) from None


configfile: "config.yaml"


# `snakemake --report report.html`: the run's docs and figures in one self-contained page.
report: "workflow/report/workflow.rst"


try:
    # A dry run plans without the data (e.g. the zoo config, offline): its absence is a warning.
    DRY_RUN = dry_run(workflow, sys.argv)
    config.update(validate(config, require_data=not DRY_RUN))
    PLAN = Plan(config)
    export_settings(config["fetch"])
    verify_fetched(
        PLAN.fetched_checkpoints(), Path("resources/checkpoints/.verified.json")
    )
except UserError as err:
    raise WorkflowError(str(err)) from None


# As the schema's names: a wildcard never spans a directory or holds a shell character.
wildcard_constraints:
    model=NAME_PATTERN,
    dataset=NAME_PATTERN,


# A job whose Snakemake dies stops too (no orphan keeps the machine busy).
export_for_jobs()
clear_stale_locks()
# Rules call the `deploybench` installed beside the Python that runs this Snakemake.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
if config["runtime"] == "docker":
    # Every step runs in the pinned image; Snakemake, the DAG and the logs stay on the host.
    shell.prefix(f"set -euo pipefail; {container_prefix(config)} ")


include: "workflow/rules/data.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/unavailable.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.published_stamp(),


onstart:
    # Local jobs fork from one process that has imported torch and the codebases (README,
    # "Run time"); containers and cluster nodes import their own.
    if (
        config["fork_server"]
        and config["runtime"] == "local"
        and workflow.local_exec
    ):
        start_for_jobs(Path("logs/forkserver.log"))


onsuccess:
    stop()


onerror:
    # A failed cell still appears in the docs, with its reason; the run itself stays failed.
    # (braces doubled: the command holds the gates as JSON, and shell() formats its argument)
    command = f"{report_command(PLAN.all_results())} --after-failure && {publish_command()} || true"
    shell(command.replace("{", "{{").replace("}", "}}"))
    stop()
