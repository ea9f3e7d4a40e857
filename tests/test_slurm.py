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
PROFILE = "slurm-node"
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
    """Both test models on PyTorch and ONNX Runtime, CPU and CUDA cells, one repeat; the
    hardware profile's node type is the `gpu` partition (one node with a gpu GRES)."""
    config = reduced_config(["rtmdet_tiny_shapes", "fast_scnn_shapes"])
    del config["models"]["rtmdet_tiny_shapes"]["shapes"], config["models"]["fast_scnn_shapes"][
        "batches"]
    config["profile"] = PROFILE
    config["cluster"] = {PROFILE: {"slurm_partition": "gpu"}}
    config["matrix"]["precisions"] = ["fp32"]
    config["measure"]["repeats"] = 1
    return config


SLURM = ["--profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "2"]


def slurm(work: Path, config: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return snakemake(work, config, *SLURM, *args)


def sacct(*fields: str) -> list[list[str]]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", "now-2hours", "-o", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def accuracy_rows(work: Path) -> pd.DataFrame:
    csv = pd.read_csv(work / "reports" / PROFILE / "results.csv")
    return csv[ACCURACY].sort_values(ACCURACY[:6]).reset_index(drop=True)


def test_the_pipeline_on_slurm_matches_a_local_run(slurm_cluster: None, tmp_path: Path
                                                   ) -> None:
    config = cluster_config()
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    start = time.monotonic()
    run = snakemake(local, config)
    local_seconds = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-3000:]
    jobs_before = {row[0] for row in sacct("JobID")}
    start = time.monotonic()
    run = slurm(cluster, config)
    slurm_seconds = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-5000:]
    print(f"same config: local {local_seconds:.0f} s, through Slurm {slurm_seconds:.0f} s")

    # The same cells with the same accuracy; CUDA cells went to the GPU node type and found no
    # CUDA device there (this cluster's node has none), as they do locally.
    here, there = accuracy_rows(local), accuracy_rows(cluster)
    pd.testing.assert_frame_equal(here, there)
    cpu = there[there.device == "cpu"]
    assert len(cpu) == 4 and set(cpu.status) == {"ok"}
    assert set(there[there.device == "cuda"].status) == {"skipped"}
    csv = pd.read_csv(cluster / "reports" / PROFILE / "results.csv")
    assert csv[csv.device == "cpu"].parity_min_cosine.gt(0.9999).all()
    assert csv[csv.device == "cpu"].latency_ms_median.gt(0).all()

    # Every step but the downloads and the docs ran as a Slurm job on the profile's node type,
    # each asking for the memory and time limit its rule declares; measurements exclusive.
    jobs = [row for row in sacct("JobID", "Partition", "Comment", "ReqMem", "Timelimit",
                                 "State")
            if row[0] not in jobs_before]
    rules = [re.match(r"rule_(\w+?)(?:_wildcards_|$)", comment).group(1)
             for _, _, comment, *_ in jobs]
    assert {"synthetic_dataset", "export_onnx", "reference_outputs", "measure",
            "evaluate"} <= set(rules)
    assert not {"fetch_checkpoint", "report", "publish"} & set(rules)
    assert {partition for _, partition, *_ in jobs} == {"gpu"}
    assert {state for *_, state in jobs} == {"COMPLETED"}
    measure = [job for job, rule in zip(jobs, rules, strict=True) if rule == "measure"]
    assert len(measure) == 8 and {(m[3], m[4]) for m in measure} == {("8G", "01:00:00")}
    for job, *_ in measure:  # the controller keeps finished jobs (MinJobAge)
        shown = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True,
                               text=True, check=True).stdout
        assert "OverSubscribe=NO" in shown, shown  # --exclusive: the node to itself

    # A job killed by Slurm fails with Slurm's reason and leaves no output; the other cells
    # complete, and the next invocation reruns it.
    again = {**copy.deepcopy(config), "run": "again"}
    victim = (cluster / "results" / PROFILE / "again" / "measure" / "fast_scnn_shapes"
              / "192x192" / "cpu" / "onnxruntime-fp32-b1-r1.json")
    killed = tmp_path / "killed.log"
    with killed.open("w") as log:
        background = subprocess.Popen(snakemake_command(cluster, again, *SLURM),
                                      stdout=log, stderr=subprocess.STDOUT, text=True)
        job = wait_for_job("fast_scnn_shapes", "onnxruntime", "cpu", background)
        subprocess.run(["scancel", job], check=True)
        assert background.wait(timeout=900) != 0
    text = killed.read_text()
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in text, text[-3000:]
    assert not victim.exists()
    run = slurm(cluster, again)
    assert run.returncode == 0, run.stderr[-5000:]
    assert victim.is_file()
    assert "measure:" in run.stdout + run.stderr and accuracy_rows(cluster).equals(there)


def wait_for_job(model: str, backend: str, device: str, run: subprocess.Popen[str],
                 timeout: float = 600) -> str:
    """The Slurm id of the running measure job of that cell (the executor's job comment names
    the rule and its wildcards' values)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            job, comment = line.split("|", 1)
            # rule_measure_wildcards_<model>_<shape>_<device>_<backend>_<precision>_...
            if (comment.startswith(f"rule_measure_wildcards_{model}_")
                    and f"_{device}_{backend}_" in comment):
                return job
        time.sleep(0.5)
    raise AssertionError("the measure job never ran")
