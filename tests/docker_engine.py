"""A real Docker engine for the tests: started when it is not running (as root, with Debian's
docker.io), a Debian bookworm base made locally (no registry is reachable here), and the cpu
image built on it. Skipped, with the reason, where none of that is possible."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCAL_BASE = "deploybench-base:bookworm-local"


def _ping() -> str:
    """Empty when the engine answers, else why not."""
    try:
        import docker

        docker.from_env().ping()
        return ""
    except Exception as err:  # noqa: BLE001 - any failure means: no engine
        return str(err)


def ensure_engine() -> None:
    why = _ping()
    if not why:
        return
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        pytest.skip(f"no Docker engine ({why}) and none can be started here (needs root and "
                    "dockerd: envs/setup.sh installs Debian's docker.io as root)")
    log = open("/tmp/deploybench-dockerd.log", "ab")  # noqa: SIM115 - the daemon outlives us
    subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not _ping():
            return
        time.sleep(1)
    pytest.fail(f"started dockerd, but it does not answer: {_ping()}; see "
                "/tmp/deploybench-dockerd.log")


def local_base() -> str:
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        pytest.skip("the local base image needs root and debootstrap (envs/setup.sh installs it)")
    run = subprocess.run(["bash", str(REPO / "docker" / "local-base.sh"), LOCAL_BASE],
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.strip()
