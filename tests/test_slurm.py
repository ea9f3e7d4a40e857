"""The pipeline through `--profile profiles/slurm` on a real single-node Slurm cluster
(scripts/slurm-single-node.sh: Debian's slurm-wlm 22.05, munge, slurmdbd on MariaDB), against
a local run of the same reduced config. Needs root (the cluster's daemons and /etc/slurm);
skipped with the reason elsewhere."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import REPO
from .test_pipeline import reduced_config, snakemake, snakemake_command

pytestmark = pytest.mark.slow
SCRIPT = REPO / "scripts" / "slurm-single-node.sh"
# Two hardware profiles in one run: a CPU node type and a GPU one (the `gpu` partition: the same
# node, with a gpu GRES).
CPU_NODE, GPU_NODE = "slurm-cpu", "slurm-gpu"
ACCURACY = ["model", "resolution", "backend", "device", "precision", "batch", "status",
            "bbox_mAP", "mIoU"]


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    if os.geteuid() != 0:
        pytest.skip("a Slurm cluster needs root (its daemons, /etc/slurm)")
    if not shutil.which("slurmctld"):
        install = subprocess.run(["bash", str(SCRIPT), "install"], capture_output=True,
                                 text=True, timeout=900)
        if install.returncode != 0:
            pytest.skip(f"Slurm's packages did not install: {install.stderr[-500:]}")
    start = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                           timeout=300)
    assert start.returncode == 0, start.stdout + start.stderr


def cluster_config() -> dict:
    """Both test models on PyTorch and ONNX Runtime, CPU and CUDA cells, one repeat, for two
    hardware profiles at once: each on its node type (partition), the CPU one without GPUs."""
    config = reduced_config(["rtmdet_tiny_shapes", "fast_scnn_shapes"])
    del config["models"]["rtmdet_tiny_shapes"]["shapes"], config["models"]["fast_scnn_shapes"][
        "batches"]
    config["profile"] = [CPU_NODE, GPU_NODE]
    config["cluster"] = {CPU_NODE: {"slurm_partition": "cpu"},
                         GPU_NODE: {"slurm_partition": "gpu", "gpus": 1}}
    config["matrix"]["precisions"] = ["fp32"]
    return config


SLURM = ["--profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "2"]


def slurm(work: Path, config: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return snakemake(work, config, *SLURM, *args)


def sacct(*fields: str) -> list[list[str]]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", "now-2hours", "-o", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def results(work: Path, profile: str, workload: str = "inference") -> pd.DataFrame:
    frame = pd.read_csv(work / "reports" / profile / "results.csv")
    return frame[frame.workload == workload]


def accuracy_rows(work: Path, profile: str) -> pd.DataFrame:
    return results(work, profile)[ACCURACY].sort_values(ACCURACY[:6]).reset_index(drop=True)


def job_profile(comment: str) -> str | None:
    """The hardware profile a job's executor comment names (rule_<rule>_wildcards_<values>)."""
    return next((p for p in (CPU_NODE, GPU_NODE) if f"_wildcards_{p}_" in comment), None)


def test_two_profiles_on_slurm_match_a_local_run(slurm_cluster: None, tmp_path: Path) -> None:
    config = cluster_config()
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    start = time.monotonic()
    run = snakemake(local, {**config, "profile": GPU_NODE})  # one machine: one profile
    local_seconds = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-3000:]
    jobs_before = {row[0] for row in sacct("JobID")}
    start = time.monotonic()
    run = slurm(cluster, config)
    slurm_seconds = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-5000:]
    print(f"one profile locally {local_seconds:.0f} s; two profiles at once through Slurm "
          f"{slurm_seconds:.0f} s")

    # Each profile has its own docs, with the same cells and accuracy as the local run. Its
    # CUDA cells were written as skipped: on the CPU node type without a job (it has no
    # GPU); on the GPU node type by their jobs (this cluster's node has no CUDA device).
    here = accuracy_rows(local, GPU_NODE)
    for profile in (CPU_NODE, GPU_NODE):
        pd.testing.assert_frame_equal(here, accuracy_rows(cluster, profile))
        csv = results(cluster, profile)
        cpu, cuda = csv[csv.device == "cpu"], csv[csv.device == "cuda"]
        assert len(cpu) == 4 and set(cpu.status) == {"ok"} and set(cuda.status) == {"skipped"}
        assert cpu.parity_min_cosine.gt(0.9999).all() and cpu.latency_ms_median.gt(0).all()
        why = "has no GPU (cluster.slurm-cpu.gpus is 0" if profile == CPU_NODE else \
            "no CUDA device"
        assert cuda.reason.str.contains(why, regex=False).all(), cuda.reason
        # Training as well: each model on the node type's CPU; CUDA's skipped with the reason.
        train = results(cluster, profile, "train")
        cpu, cuda = train[train.device == "cpu"], train[train.device == "cuda"]
        assert len(cpu) == 2 and set(cpu.status) == {"ok"} and cpu.train_s_iter_median.gt(0).all()
        assert set(cuda.status) == {"skipped"} and cuda.reason.str.contains(why, regex=False).all()
    index = (cluster / "reports" / "README.md").read_text()  # the machines side by side
    assert f"[{CPU_NODE}]({CPU_NODE}/README.md)" in index
    assert f"[{GPU_NODE}]({GPU_NODE}/README.md)" in index

    # Every step but the downloads, the skipped records and the docs ran as a Slurm job on
    # its profile's node type, each asking for the memory and time limit its rule declares;
    # measurements exclusive.
    jobs = [row for row in sacct("JobID", "Partition", "Comment", "ReqMem", "Timelimit",
                                 "State")
            if row[0] not in jobs_before]
    rules = [re.match(r"rule_(\w+?)(?:_wildcards_|$)", comment).group(1)
             for _, _, comment, *_ in jobs]
    assert {"synthetic_dataset", "export_onnx", "reference_outputs", "measure_cpu",
            "evaluate", "train"} <= set(rules)
    assert not {"fetch_checkpoint", "unavailable_cells", "report", "publish"} & set(rules)
    assert {state for *_, state in jobs} == {"COMPLETED"}
    partitions = {CPU_NODE: "cpu", GPU_NODE: "gpu", None: "cpu"}  # shared: the first's
    for _, partition, comment, *_ in jobs:
        assert partition == partitions[job_profile(comment)], comment
    measure = [job for job, rule in zip(jobs, rules, strict=True)
               if rule in ("measure_cpu", "measure_cuda")]
    assert {(m[3], m[4]) for m in measure} == {("8G", "01:00:00")}
    # One measure group per model and device: the CPU node type's CUDA groups never ran.
    assert sorted(job_profile(m[2]) for m in measure) == [CPU_NODE] * 2 + [GPU_NODE] * 4
    for job, *_ in measure:  # the controller keeps finished jobs (MinJobAge)
        shown = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True,
                               text=True, check=True).stdout
        assert "OverSubscribe=NO" in shown, shown  # --exclusive: the node to itself

    # A job killed by Slurm fails with Slurm's reason and leaves no output; the other cells
    # complete, and the next invocation reruns it. First scancel, then the time limit.
    again = {**copy.deepcopy(config), "profile": GPU_NODE, "run": "again"}
    victim = (cluster / "results" / GPU_NODE / "again" / "measure" / "fast_scnn_shapes"
              / "192x192" / "cpu" / "onnxruntime-fp32-b1.json")
    killed = tmp_path / "killed.log"
    with killed.open("w") as log:
        background = subprocess.Popen(snakemake_command(cluster, again, *SLURM),
                                      stdout=log, stderr=subprocess.STDOUT, text=True)
        job = wait_for_job("fast_scnn_shapes", "cpu", background)
        subprocess.run(["scancel", job], check=True)
        assert background.wait(timeout=900) != 0
    text = killed.read_text()
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in text, text[-3000:]
    assert not victim.exists()
    assert not (victim.parent / "pytorch-fp32-b1.json").exists()  # its group's, with it
    other = cluster / "results" / GPU_NODE / "again" / "measure" / "rtmdet_tiny_shapes"
    assert (other / "160x160" / "cpu" / "pytorch-fp32-b1.json").is_file()  # the others ran

    # A measurement that outlasts its rule's time limit (here 1 minute, its timing asked to
    # take 3) is killed by Slurm: TIMEOUT, and still no output.
    slow = {**copy.deepcopy(again), "measure": {**again["measure"], "min_seconds": 180,
                                                "max_seconds": 240}}
    start = time.monotonic()
    run = slurm(cluster, slow, str(victim.relative_to(cluster)), "--set-resources",
                "measure_cpu:runtime=1")
    assert run.returncode != 0
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'TIMEOUT'",
                     run.stdout + run.stderr), (run.stdout + run.stderr)[-3000:]
    assert not victim.exists()
    print(f"killed at its time limit after {time.monotonic() - start:.0f} s")

    run = slurm(cluster, again)
    assert run.returncode == 0, run.stderr[-5000:]
    assert victim.is_file()
    assert "measure_cpu:" in run.stdout + run.stderr
    assert accuracy_rows(cluster, GPU_NODE).equals(here)


def wait_for_job(model: str, device: str, run: subprocess.Popen[str],
                 timeout: float = 600) -> str:
    """The Slurm id of the running measure group of that model and device (the executor's job
    comment names the rule and its wildcards' values)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            job, comment = line.split("|", 1)
            # rule_measure_<device>_wildcards_<profile>_<model>_<shape>_<batch>
            if comment.startswith(f"rule_measure_{device}_wildcards_") and f"_{model}_" in comment:
                return job
        time.sleep(0.5)
    raise AssertionError("the measure job never ran")
