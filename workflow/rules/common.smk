# What every rule file uses. The validated config and its plans, where the steps run, and
# the helpers that turn a job's wildcards into its inputs and command line. Rule files hold
# rules only, so they do not depend on each other or on their include order.

import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from deploybench import unavailable
from deploybench.artifact_integrity import CACHE as VERIFIED_ARTIFACTS, heal
from deploybench.backends import runs_file
from deploybench.backends.base import REQUIRE_GPU_ENV
from deploybench.backends.registry import by_artifact
from deploybench.commands import (
    container_prefix,
    group_cell_args,
    model_args,
    train_model_args,
)
from deploybench.config import NAME_PATTERN, read_yaml, validate
from deploybench.errors import UserError
from deploybench.fetch import export_settings, verify_fetched
from deploybench.forkserver import start_for_jobs, stop
from deploybench.gpu_device import pin_gpu_environment
from deploybench.gpu_required import check_gpu_reachable
from deploybench.invocation import dry_run, submits_jobs
from deploybench.job_resources import node_requests, node_type_reason, step_resources
from deploybench.metric_bootstrap import per_image_path
from deploybench.plan import profile_plans, wildcard_plan
from deploybench.results import Cell
from deploybench.settings import write_section
from deploybench.watchdog import clear_stale_locks, export_for_jobs

# Before any job, or the fork server they start from, loads CUDA (gpu_device.py).
pin_gpu_environment()

# Snakemake's own message for a YAML error names no line: read the file here first.
try:
    if Path("config.yaml").exists():
        read_yaml("config.yaml")
except UserError as err:
    raise WorkflowError(str(err)) from None


configfile: "config.yaml"


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
    if config["require_gpu"] and not DRY_RUN and not workflow.remote_exec:
        # A GPU run without a reachable GPU fails here, before any job (on a cluster its jobs
        # check on their nodes).
        if not ON_CLUSTER:
            print(f"require_gpu: {check_gpu_reachable(config)}", file=sys.stderr)
        os.environ[REQUIRE_GPU_ENV] = "1"
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
    # An artifact changed in place since its step made it is moved aside (Snakemake's own
    # triggers see times, not content): a step that needs it has it made again first.
    for p in PLANS.values():
        for _, line in heal(
            p.artifact_records(), Path(p.results_dir(), VERIFIED_ARTIFACTS)
        ):
            print(f"deploybench: {line}", file=sys.stderr)
# Rules call the `deploybench` installed beside the Python that runs this Snakemake.
os.environ["PATH"] = (
    f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
)
if config["runtime"] == "docker":
    # Every step runs in the pinned image; Snakemake, the DAG and the logs stay on the host.
    shell.prefix(f"set -euo pipefail; {container_prefix(config)} ")


# On the machine Snakemake runs on, also on a cluster: downloads need its network (compute
# nodes often have none), the docs are written beside the checkout.
localrules:
    all,
    step_settings,
    fetch_checkpoint,
    download_dataset,
    report,
    publish,


# --- inputs and command lines of the rules ----------------------------------------------
SHAPE = "[0-9]+x[0-9]+"


def model_inputs(w):
    model = PLAN.model(w.model)
    inputs = {"checkpoint": PLAN.checkpoint(w.model)}
    if PLAN.dataset_planned(model["dataset"]) or not DRY_RUN:
        inputs["data"] = PLAN.dataset_dir(model["dataset"])
    if "::" not in model["config"]:  # not a config the installed codebase ships
        inputs["config"] = model["config"]
    return inputs


SYNTHETIC = [n for n, d in config["datasets"].items() if d["kind"] == "synthetic"]
DOWNLOADED = [
    n for n, d in config["datasets"].items() if d["kind"] == "coco" and d["download"]
]


IN_JOB = "decided in the job"


def machine_state(backend, device, precision):
    # A job parameter: when the machine gains (or loses) what a cell needs, the value changes
    # and Snakemake reruns the job, instead of keeping a result that says "skipped". In a
    # container or on a cluster this host is not the machine that matters: each job decides.
    if not STEPS_HERE:
        return IN_JOB
    from deploybench.unavailable import machine_reason

    return machine_reason(backend, device, precision) or "available"


def build_command(plan, backend, device, precision):
    cache = config["build"]["tensorrt_timing_cache"]
    cache = cache and os.path.join(plan.results_dir(), cache)
    return (
        f"deploybench build --backend {backend} --device {device} --precision {precision}"
        + (f" --timing-cache {shlex.quote(cache)}" if cache else "")
    )


# Every build a backend's spec declares, by its artifact's name: one rule makes them all.
BUILDS = by_artifact()


def build_of(w):
    return BUILDS[w.artifact]


# The devices with cells planned, each measured by `measure_<device>`.
MEASURE_DEVICES = [d for d in PLAN.config["matrix"]["devices"] if PLAN.group_combos(d)]


def cell_inputs(w):
    inputs = model_inputs(w)
    artifact = plan(w).artifact(w.model, w.shape, w.backend, w.device, w.precision)
    if artifact:
        inputs["artifact"] = artifact
    return inputs


def artifact_arg(_, input):
    return (
        f"--artifact {shlex.quote(input.artifact)}"
        if "artifact" in input.keys()
        else ""
    )


RUNNABLE = ("available", IN_JOB)


def cell_machine(w):
    return machine_state(w.backend, w.device, w.precision)


def group_inputs(w, device):
    """What a measure group runs: the model, each cell's artifact, the export's saved input,
    the `measure` settings. A changed artifact or setting reruns the whole group."""
    inputs = {**model_inputs(w), "settings": plan(w).settings("measure")}
    combos = plan(w).group_combos(device)
    for backend, precision in combos:
        artifact = plan(w).artifact(w.model, w.shape, backend, device, precision)
        if artifact:
            inputs[f"{backend}_{precision}"] = artifact
    if any(runs_file(backend) for backend, _ in combos):
        inputs["saved_input"] = plan(w).saved_input(w.model, w.shape)
    return inputs


def group_machine(w, device):
    return {
        f"{b} {p}": machine_state(b, device, p) for b, p in plan(w).group_combos(device)
    }


def measure_threads(w, device):
    # Timing owns the machine: no other job may run beside a measure group (a group this
    # machine cannot run at all only writes why, on one core). On a cluster the job has its
    # node to itself (--exclusive) and asks for the cores the profile's `set-threads` gives.
    if not any(m in RUNNABLE for m in group_machine(w, device).values()):
        return 1
    return max(1, config["measure"]["threads"]) if ON_CLUSTER else workflow.cores


def train_inputs(w):
    return {**model_inputs(w), "settings": plan(w).settings("train")}


def train_threads(w):
    # As a measure group, a job that times owns the machine (a cell whose device this machine
    # lacks is written by unavailable_cells, not by this rule).
    return max(1, config["train"]["threads"]) if ON_CLUSTER else workflow.cores


def parity_args():
    p = config["parity"]
    return (
        f"--parity-images {p['images']} --parity-iou {p['iou']}"
        f" --parity-score-threshold {p['score_threshold']}"
    )


def report_command(plan):
    strict = " --strict" if config["report"]["strict"] else ""
    args = ["deploybench", "report", "--profile", plan.profile, "--run", plan.run]
    args += [
        "--out-dir",
        plan.run_report_dir(),
        "--gates",
        json.dumps(config["gates"], sort_keys=True),
    ]
    return f"{shlex.join(args)}{strict} {shlex.join(plan.all_results())}"


def publish_command(plan, stamp=""):
    args = ["deploybench", "publish", "--run-report", plan.run_report_dir()]
    args += ["--to", plan.published_dir(), "--profile", plan.profile, "--run", plan.run]
    args += ["--gates", json.dumps(config["gates"], sort_keys=True)]
    args += ["--stamp", stamp] if stamp else []
    return shlex.join(args)


def per_image_files(plan):
    """The evaluate step's per-image metric files, for the bootstrap of each accuracy drop
    (cells this machine cannot run have none)."""
    unavailable = set(UNAVAILABLE)
    return [
        str(per_image_path(r))
        for r in plan.all_results()
        if "/evaluate/" in r and r not in unavailable
    ]


# The run's own docs, from its own results (git-ignored, under results/<profile>/<run>/).
def marked(path):
    """The run's docs as they appear in Snakemake's HTML report."""
    name = Path(path).name
    if name.endswith(".svg"):
        return report(path, caption="../report/figure.rst", category="Figures")
    caption = {"README.md": "front-page", "benchmark.md": "details"}.get(name, "data")
    return report(path, caption=f"../report/{caption}.rst", category="Docs")


def unavailable_reason(profile):
    """What decides here that a profile's cells cannot run: this machine, where the steps run
    on it; on a cluster, what the profile's node type lacks (the jobs check the rest). In a
    container each job decides for itself."""
    if STEPS_HERE:
        return unavailable.machine_reason
    return node_type_reason(config, profile) if ON_CLUSTER else None


# profile -> what decides its unavailable cells, for the profiles where this process decides
REASONS = {p: r for p in PLANS if (r := unavailable_reason(p))}
UNAVAILABLE = [
    path
    for p, reason in REASONS.items()
    for path in unavailable.outputs(PLANS[p], reason)
]


# --- the run as a whole --------------------------------------------------------------
onstart:
    # Local jobs fork from one process that has imported torch and the codebases
    # (docs/methodology.md, "Run time"); containers and cluster nodes import their own.
    if config["fork_server"] and STEPS_HERE:
        # One server for the run's profiles: its log is in the first one's run logs.
        start_for_jobs(
            Path(next(iter(PLANS.values())).logs_dir(), "forkserver.log")
        )


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
