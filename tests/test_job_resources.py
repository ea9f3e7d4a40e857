"""What each step's job asks for, and the hardware profile's node type on a cluster."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from deploybench.config import validate
from deploybench.errors import UserError
from deploybench.job_resources import STEPS, node_requests, node_type_reason, step_resources

from .conftest import DEFAULT_CONFIG, REPO
from .test_pipeline import reduced_config


def test_a_cluster_job_asks_for_its_profile_s_node_type() -> None:
    config = {"cluster": {"h100": {"slurm_partition": "gpu", "constraint": "h100", "gpus": 8},
                          "epyc": {"slurm_partition": "cpu"}}}
    nodes = node_requests(config, ["h100", "epyc"], remote=True)
    assert nodes == {"h100": {"slurm_partition": "gpu", "constraint": "h100"},
                     "epyc": {"slurm_partition": "cpu"}}
    # Each job's request is its profile's node type; a key its profile lacks is left out.
    resources = step_resources("measure", nodes)
    assert (resources["mem_mb"], resources["runtime"]) == (STEPS["measure"].mem_mb,
                                                           STEPS["measure"].runtime)
    for profile, node in nodes.items():
        asked = {k: v(SimpleNamespace(profile=profile)) for k, v in resources.items()
                 if callable(v)}
        assert asked == {"slurm_partition": node["slurm_partition"],
                         "constraint": node.get("constraint")}
    # A step the profiles share (the synthetic dataset) runs on the first one's node type.
    assert step_resources("data", nodes, shared=True)["slurm_partition"] == "gpu"
    assert node_requests(config, ["laptop"], remote=False) == {}  # local runs ask for no node
    with pytest.raises(UserError, match=r"profile\(s\) 'laptop' have no node type.*cluster: "
                                        r"\{laptop: \{slurm_partition: <partition>\}\}"):
        node_requests(config, ["h100", "laptop"], remote=True)
    # One machine is one profile: several at once need a cluster.
    with pytest.raises(UserError, match=r"2 hardware profiles \(h100, epyc\).*--profile "
                                        r"profiles/slurm"):
        node_requests(config, ["h100", "epyc"], remote=False)


def test_a_node_type_without_gpus_gets_no_cuda_jobs() -> None:
    """Its CUDA cells and TensorRT-only builds are written as skipped on the submit host;
    a node type with GPUs leaves them to its jobs, which check the node."""
    config = {"cluster": {"h100": {"slurm_partition": "gpu", "gpus": 8},
                          "epyc": {"slurm_partition": "cpu"}}}
    epyc, h100 = node_type_reason(config, "epyc"), node_type_reason(config, "h100")
    assert "profile epyc has no GPU (cluster.epyc.gpus is 0" in epyc("tensorrt", "cuda", "fp16")
    assert epyc("qdq", "cpu", "int8")  # the QDQ model only TensorRT int8 runs
    assert not epyc("onnxruntime", "cpu", "int8") and not epyc("openvino", "cpu", "fp32")
    assert not h100("tensorrt", "cuda", "fp16") and not h100("qdq", "cpu", "int8")


def test_cluster_entries_are_checked_by_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["cluster"] = {"h100": {"partition": "gpu"}}
    with pytest.raises(UserError, match="slurm_partition"):
        validate(config)


def test_every_job_declares_its_memory_and_time_limit(tmp_path: Path) -> None:
    """Snakemake's own plan of a reduced default: every job but the docs' (on the submit host,
    as are the downloads: compute nodes often have no network) asks for memory and a time
    limit, as its rule declares them."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(reduced_config(["rtmdet_tiny_shapes", "fast_scnn_shapes"])))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"),
         "--directory", str(tmp_path / "work"), "--configfile", str(config), "-n",
         "--cores", "2"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\[|\Z)", run.stdout + run.stderr,
                      re.S | re.M)
    asked = {name: re.search(r"resources: (.*)", body).group(1) for name, body in jobs}
    assert {"synthetic_dataset", "fetch_checkpoint", "export_onnx", "measure_cpu", "evaluate",
            "build", "reference_outputs", "report"} <= set(asked)
    for name, resources in asked.items():
        if name in {"report", "publish", "unavailable_cells", "step_settings", "all"}:
            continue
        step = {"synthetic_dataset": "data", "fetch_checkpoint": "fetch",
                "export_onnx": "export", "reference_outputs": "reference",
                "measure_cpu": "measure",
                "measure_cuda": "measure"}.get(name, name)
        assert f"mem_mb={STEPS[step].mem_mb}" in resources, (name, resources)
        assert f"runtime={STEPS[step].runtime}" in resources, (name, resources)
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    local = re.search(r"localrules:\n((?:    \w+,\n)+)", common).group(1)
    assert set(local.replace(",", " ").split()) == {"all", "step_settings", "fetch_checkpoint",
                                                    "download_dataset", "report", "publish"}


def test_a_cluster_executor_is_read_off_the_command_line_and_profile(tmp_path: Path) -> None:
    from deploybench.invocation import submits_jobs

    profiles = tmp_path / "profiles"
    (profiles / "slurm").mkdir(parents=True)
    (profiles / "slurm" / "config.yaml").write_text("executor: slurm\njobs: 4\n")
    (profiles / "default").mkdir()
    (profiles / "default" / "config.yaml").write_text("cores: all\n")
    dirs = [profiles]
    assert submits_jobs(["snakemake", "--executor", "slurm"], {}, dirs)
    assert submits_jobs(["snakemake", "--executor=slurm"], {}, dirs)
    assert submits_jobs(["snakemake", "-e", "slurm", "--cores", "2"], {}, dirs)
    assert submits_jobs(["snakemake", "--profile", str(profiles / "slurm")], {}, dirs)
    assert submits_jobs(["snakemake", "--profile", "slurm"], {}, dirs)  # looked up by name
    assert submits_jobs(["snakemake"], {"SNAKEMAKE_PROFILE": "slurm"}, dirs)
    # The command line's executor wins over the profile's; local runs submit nothing.
    assert not submits_jobs(["snakemake", "--profile", "slurm", "-e", "local"], {}, dirs)
    assert not submits_jobs(["snakemake", "--cores", "2"], {}, dirs)
    assert not submits_jobs(["snakemake", "--profile", "default", "-n"], {}, dirs)
    assert not submits_jobs(["snakemake", "--profile", "missing"], {}, dirs)
