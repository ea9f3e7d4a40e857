# deploybench: benchmark OpenMMLab models across deployment backends.
# Rules are thin: each runs one `deploybench <step>` command; the logic lives in src/deploybench.
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from deploybench.config import (
    NAME_PATTERN,
    container_prefix,
    dry_run,
    profile_plans,
    read_yaml,
    submits_jobs,
    validate,
    wildcard_plan,
)
from deploybench.errors import UserError
from deploybench.fetch import export_settings, verify_fetched
from deploybench.forkserver import start_for_jobs, stop
from deploybench.job_resources import node_requests, node_type_reason, step_resources
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
    # The run's hardware profiles (one, or several on a cluster), each with its own results
    # and docs; the rules' paths hold a {profile} wildcard (PLAN).
    PLANS = profile_plans(config)
    PLAN = wildcard_plan(config)
    # Whether jobs run elsewhere: on cluster nodes (this Snakemake submits them, or is a
    # cluster job's own). Each then asks for the hardware profile's node type (`cluster`).
    ON_CLUSTER = workflow.remote_exec or submits_jobs(
        sys.argv,
        dict(os.environ),
        [
            Path(workflow.basedir),
            Path.home() / ".config/snakemake",
            Path("/etc/xdg/snakemake"),
        ],
    )
    NODES = node_requests(config, list(PLANS), remote=ON_CLUSTER)
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
    profile="|".join(map(re.escape, PLANS)),


def plan(wildcards):
    """The Plan of a job's hardware profile."""
    return PLANS[wildcards.profile]


# Whether the steps run on this machine: not in containers, not on cluster nodes (and so for
# one profile). Only then does this process decide what the machine can run, and start the
# fork server; elsewhere each job decides where it runs, after what its node type lacks.
STEPS_HERE = config["runtime"] == "local" and not ON_CLUSTER
# A job whose Snakemake dies stops too (no orphan keeps the machine busy).
export_for_jobs()
if not workflow.remote_exec:
    # Not in a cluster job's Snakemake: on a node of its own it sees no Snakemake working in
    # the shared directory, and would take the running one's lock for stale.
    clear_stale_locks()
# Rules call the `deploybench` installed beside the Python that runs this Snakemake.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
if config["runtime"] == "docker":
    # Every step runs in the pinned image; Snakemake, the DAG and the logs stay on the host.
    shell.prefix(f"set -euo pipefail; {container_prefix(config)} ")


# On the machine Snakemake runs on, also on a cluster: downloads need its network (compute
# nodes often have none), the docs are written beside the checkout.
localrules:
    all,
    fetch_checkpoint,
    download_dataset,
    report,
    publish,


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
        [p.published_stamp() for p in PLANS.values()],


onstart:
    # Local jobs fork from one process that has imported torch and the codebases (README,
    # "Run time"); containers and cluster nodes import their own.
    if config["fork_server"] and STEPS_HERE:
        start_for_jobs(Path("logs/forkserver.log"))


onsuccess:
    stop()


onerror:
    # A failed cell still appears in the docs, with its reason; the run itself stays failed.
    # (braces doubled: the command holds the gates as JSON, and shell() formats its argument)
    for p in PLANS.values():
        command = (
            f"{report_command(p)} --after-failure && {publish_command(p)} || true"
        )
        shell(command.replace("{", "{{").replace("}", "}}"))
    stop()
