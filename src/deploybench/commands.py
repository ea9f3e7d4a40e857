"""A plan's settings as the command lines the DAG's rules run (shell-quoted)."""

from __future__ import annotations

import shlex
from typing import Any

from deploybench.backends import runs_file
from deploybench.plan import Plan
from deploybench.results import shape_tag


def container_prefix(config: dict[str, Any]) -> str:
    """What `runtime: docker` puts before every step's command (shell-quoted)."""
    docker = config["docker"]
    args = ["deploybench", "container", "--target", docker["target"]]
    if docker["base"]:
        args += ["--base", docker["base"]]
    if docker.get("cuda_arch"):
        args += ["--cuda-arch", docker["cuda_arch"]]
    if config.get("require_gpu"):
        args.append("--require-gpu")
    if docker["memory"]:
        args += ["--memory", docker["memory"]]
    return shlex.join([*args, "--"])


def _identity(plan: Plan, name: str) -> list[str]:
    """What names a model, its checkpoint and its data to every step."""
    model = plan.model(name)
    checksum = plan.checksum_args(name)
    args = ["--model", name, "--task", model["task"], "--config", model["config"],
            "--checkpoint", plan.checkpoint(name), f"--checkpoint-{checksum[0][2:]}",
            checksum[1], "--data", plan.dataset_dir(model["dataset"])]
    if checksum[0] == "--lock":
        args += ["--checkpoint-url", model["checkpoint"]["url"]]
    return args


def model_args(plan: Plan, name: str, shape: str) -> str:
    """The CLI arguments that identify a model at one input shape to every step (shell-quoted).
    A shape other than the model's own `input_shape` also sets the test pipeline to it."""
    model = plan.model(name)
    height, width = shape.split("x")
    args = [*_identity(plan, name), "--input-shape", height, width]
    if shape != shape_tag(model["input_shape"]) or model.get("resize_pipeline"):
        args.append("--resize-pipeline")
    return shlex.join(args)


def train_model_args(plan: Plan, name: str) -> str:
    """The CLI arguments that identify a model to the train step (shell-quoted): no input
    shape (training runs its train pipeline's sizes), and its batch size where one is set."""
    batch = plan.train_batch(name)
    return shlex.join([*_identity(plan, name), *(["--batch-size", str(batch)] if batch else [])])


def group_cell_args(plan: Plan, model: str, shape: str, device: str, outputs: list[str]) -> str:
    """The `--cell BACKEND PRECISION ARTIFACT OUT` arguments of a group's command (shell-
    quoted): its cells in the plan's order, each with the result path Snakemake expects."""
    args = []
    for (backend, precision), out in zip(plan.group_combos(device), outputs, strict=True):
        artifact = plan.artifact(model, shape, backend, device, precision) or "-"
        args += ["--cell", backend, precision, artifact, out]
    if any(runs_file(b) for b, _ in plan.group_combos(device)):
        args += ["--saved-input", plan.saved_input(model, shape)]
    return shlex.join(args)
