"""What each step's job asks of the machine that runs it, declared by the rules themselves: a
local run (`--cores`), the GPU runner and a Slurm cluster (`--profile profiles/slurm`) then
schedule the same DAG the same way.

Memory and time limits are sized for the zoo's largest models at the seed tables' shapes (Cascade
R-CNN at 800x1344, a whole COCO val split on a CPU backend); a Snakemake profile's
`set-resources` raises them per rule where a cluster's models need more. On a cluster, the
hardware profile's node type (`cluster.<profile>` in the config) is part of every job's request,
so that the cells of one profile never run on another's nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploybench.errors import UserError


@dataclass(frozen=True)
class StepNeeds:
    mem_mb: int  # resident memory: Slurm's --mem, Snakemake's mem_mb
    runtime: int  # minutes: Slurm's time limit; a job past it is killed and reported failed


STEPS: dict[str, StepNeeds] = {
    "fetch": StepNeeds(2048, 60),  # a checkpoint download
    "data": StepNeeds(4096, 120),  # COCO val2017 (1 GB) unpacked, or the synthetic set made
    "export": StepNeeds(8192, 60),
    "build": StepNeeds(16384, 120),  # int8 calibration; TensorRT's tactic search
    "reference": StepNeeds(8192, 60),
    "measure": StepNeeds(8192, 60),
    "train": StepNeeds(16384, 60),  # a batch of activations, gradients and optimizer state
    "evaluate": StepNeeds(8192, 720),  # a whole val split, on a CPU backend too
}

# A cluster job's request keys that name where it runs (the executor plugin's resources).
NODE_KEYS = ("slurm_partition", "constraint", "slurm_account", "qos")

Node = dict[str, str]


def node_requests(config: dict[str, Any], profiles: list[str], remote: bool) -> dict[str, Node]:
    """Each hardware profile's node type on a cluster (`remote`): its `cluster.<profile>`
    entry. Errors where a profile has none (its jobs could land on any node), and where a run
    of several profiles is not a cluster run: one machine is one profile."""
    if not remote:
        if len(profiles) > 1:
            raise UserError(
                f"profile lists {len(profiles)} hardware profiles ({', '.join(profiles)}), but "
                "this run's jobs all run on this machine, which is one of them at most: run "
                "one profile here (`--config profile=<profile>`), or several on a cluster, "
                "each on its node type (`--profile profiles/slurm`; docs/slurm.md)")
        return {}
    clusters = config.get("cluster") or {}
    missing = [p for p in profiles if p not in clusters]
    if missing:
        raise UserError(
            f"hardware profile(s) {', '.join(map(repr, missing))} have no node type for the "
            f"cluster: add `cluster: {{{missing[0]}: {{slurm_partition: <partition>}}}}` to the "
            "config (and `constraint: <feature>` where a partition mixes node types, `gpus: "
            "<per node>` where it has GPUs), or run a profile that has one; see docs/slurm.md")
    return {p: {k: str(v) for k, v in clusters[p].items() if k in NODE_KEYS} for p in profiles}


def node_type_reason(config: dict[str, Any], profile: str) -> Callable[[str, str, str], str]:
    """(backend, device, precision) -> why `profile`'s node type cannot run it, or "" where it
    may (the job then checks its node). A node type without GPUs runs no CUDA cell, and
    builds nothing that only TensorRT uses (its QDQ model)."""
    gpus = (config.get("cluster") or {}).get(profile, {}).get("gpus", 0)

    def reason(backend: str, device: str, precision: str) -> str:
        if gpus or (device != "cuda" and backend != "qdq"):
            return ""
        return (f"the node type of profile {profile} has no GPU (cluster.{profile}.gpus is 0; "
                "set it to the GPUs per node where it has some)")

    return reason


def step_resources(step: str, nodes: dict[str, Node], shared: bool = False) -> dict[str, Any]:
    """A rule's `resources:` for `step` (see STEPS), with the node type of the job's profile
    on a cluster: the `profile` wildcard's, or for a `shared` step (no profile of its own,
    e.g. the synthetic dataset) the first profile's."""
    needs = STEPS[step]
    resources: dict[str, Any] = {"mem_mb": needs.mem_mb, "runtime": needs.runtime}
    if shared:
        return {**resources, **next(iter(nodes.values()), {})}
    for key in sorted({k for node in nodes.values() for k in node}):
        resources[key] = _of_profile(nodes, key)
    return resources


def _of_profile(nodes: dict[str, Node], key: str) -> Any:
    # None where the job's profile does not set it: the executor then leaves the flag out.
    return lambda wildcards: nodes[wildcards.profile].get(key)
