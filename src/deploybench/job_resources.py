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
    "evaluate": StepNeeds(8192, 720),  # a whole val split, on a CPU backend too
}

# A cluster job's request keys that name where it runs (the executor plugin's resources).
NODE_KEYS = ("slurm_partition", "constraint", "slurm_account", "qos")


def node_request(config: dict[str, Any], profile: str, remote: bool) -> dict[str, str]:
    """The node type of `profile` on a cluster (`remote`): its `cluster.<profile>` entry. An
    error where a cluster run's profile has none: its jobs could land on any node."""
    if not remote:
        return {}
    entry = (config.get("cluster") or {}).get(profile)
    if entry is None:
        raise UserError(
            f"hardware profile {profile!r} has no node type for the cluster: add "
            f"`cluster: {{{profile}: {{slurm_partition: <partition>}}}}` to the config (and "
            "`constraint: <feature>` where a partition mixes node types), or set `profile` to "
            "one that has one; see README, \"Scale out\"")
    return {k: str(v) for k, v in entry.items() if k in NODE_KEYS}


def step_resources(step: str, node: dict[str, str]) -> dict[str, Any]:
    """A rule's `resources:` for `step` (see STEPS), with the node type on a cluster."""
    needs = STEPS[step]
    return {"mem_mb": needs.mem_mb, "runtime": needs.runtime, **node}
