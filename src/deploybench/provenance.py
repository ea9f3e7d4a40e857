"""Where a number came from: package versions, hardware, git commit, and a hash of the inputs."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from deploybench.artifact_integrity import file_sha256

# What every result records the version of: these, and each backend's `packages`.
PACKAGES = ("torch", "mmcv", "mmengine", "mmdet", "mmsegmentation", "onnx", "numpy",
            "opencv-python", "snakemake")


def packages() -> tuple[str, ...]:
    from deploybench.backends.registry import specs

    return tuple(dict.fromkeys([*PACKAGES, *(p for s in specs().values() for p in s.packages)]))


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    providers = metadata.packages_distributions()
    for name in packages():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            # An import name that a differently named distribution provides (tensorrt from
            # tensorrt-cu13-bindings): its version, with that distribution's name.
            dists = providers.get(name.replace("-", "_"), [])
            versions[name] = (f"{metadata.version(dists[0])} ({dists[0]})" if dists
                              else "not installed")
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def hardware() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": usable_cores(), "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}", "gpu": gpu_name() or None,
            "host": host_id()}


@functools.cache
def host_id() -> str:
    """Which machine, as a digest of its host name and machine id (not the name itself): two
    runs on different hosts of the same kind differ in speed, and `compare` must know."""
    machine_id = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            machine_id = Path(path).read_text().strip()
            break
    return hashlib.sha256(f"{platform.node()} {machine_id}".encode()).hexdigest()[:12]


def _slug(name: str) -> str:
    name = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$", "", name.lower())
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


@functools.cache  # read for every result path the Snakefile plans; the machine stays the same
def hardware_profile() -> str:
    """A label for docs from this machine: CPU model and core count, e.g. `amd-epyc-2c`, and
    the first GPU where PyTorch sees one (`...-nvidia-h100-80gb-hbm3`)."""
    label = f"{_slug(cpu_model()) or 'cpu'}-{usable_cores()}c"
    gpu = gpu_name()
    return f"{label}-{_slug(gpu)}" if gpu else label


def gpu_name() -> str:
    """The first CUDA device's name; empty without one. From PyTorch where the process has
    imported it, else from NVML, so that a step that needs no torch does not import it."""
    if "torch" in sys.modules:
        return _torch_gpu_name()
    try:
        import pynvml

        from deploybench.gpu_device import nvml_handle

        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(nvml_handle(pynvml))  # this process's cuda:0
    except Exception:  # noqa: BLE001 - no NVML, no driver, no device: no GPU to name
        # Without the NVIDIA driver there is no CUDA device: no need to import torch to know.
        return _torch_gpu_name() if Path("/proc/driver/nvidia").exists() else ""
    return name.decode() if isinstance(name, bytes) else str(name)


def _torch_gpu_name() -> str:
    try:
        import torch
    except ImportError:
        return ""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""


# The checkout this deploybench runs from (an editable install): the code that made a number,
# whatever directory Snakemake works in.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def git_commit(cwd: Path | str | None = None) -> str:
    """The commit of the deploybench checkout that runs (`-dirty` with uncommitted changes)."""
    if os.environ.get("DEPLOYBENCH_GIT_COMMIT"):  # a step in a container: the host's checkout
        return os.environ["DEPLOYBENCH_GIT_COMMIT"]
    cwd = PROJECT_ROOT if cwd is None else cwd
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        # reports/ is the pipeline's own product: regenerating it does not make the code dirty.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)reports"], cwd=cwd, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def inputs_hash(settings: dict[str, Any], files: list[Path | str] = ()) -> str:
    """sha256 of a step's settings and the content of the config files it read."""
    from deploybench.zoo import config_path  # `mmdet::...`: the codebase's own config

    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in map(config_path, files):
        digest.update(path.read_bytes() if path.is_file() else b"missing:" + bytes(path))
    return digest.hexdigest()


# Set by `deploybench container` in the containers it starts (runtime: docker).
IMAGE_ENV = {"image": "DEPLOYBENCH_IMAGE", "image_id": "DEPLOYBENCH_IMAGE_ID",
             "repo_digest": "DEPLOYBENCH_IMAGE_DIGEST"}


def runtime() -> dict[str, str]:
    """Where the step ran: `local`, or `docker` with the image's reference, id and repo digest
    (empty for an image built locally and never pushed, hence the id)."""
    if not os.environ.get(IMAGE_ENV["image"]):
        return {"kind": "local"}
    return {"kind": "docker", **{k: os.environ.get(v, "") for k, v in IMAGE_ENV.items()}}


def provenance(settings: dict[str, Any], files: list[Path | str] = (),
               used: dict[str, Path | str | None] | None = None) -> dict[str, Any]:
    """`used`: the checkpoint and artifacts the step ran, each recorded by its sha256 (an
    OpenVINO IR by its .xml and .bin)."""
    hashes = {}
    for role, path in (used or {}).items():
        if path and Path(path).is_file():
            hashes[role] = file_sha256(path)
            if Path(path).suffix == ".xml" and Path(path).with_suffix(".bin").is_file():
                hashes[role + "_weights"] = file_sha256(Path(path).with_suffix(".bin"))
    return {"versions": package_versions(), "hardware": hardware(), "git_commit": git_commit(),
            "runtime": runtime(), "config_sha256": inputs_hash(settings, files),
            "files_sha256": hashes,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
