"""The fork server: steps forked from one process that has imported torch and the codebases.
A real server process, real `deploybench` clients, a real silent HTTP peer on loopback."""

from __future__ import annotations

import filecmp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploybench.forkserver import ENV, SOCKET_DIR_PREFIX

DEPLOYBENCH = str(Path(sys.executable).with_name("deploybench"))


def _start(parent_pid: int, log: Path) -> tuple[subprocess.Popen, Path]:
    path = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)) / "fork.sock"
    with open(log, "wb") as out:
        proc = subprocess.Popen([DEPLOYBENCH, "forkserver", "serve", "--socket", str(path),
                                 "--parent-pid", str(parent_pid)],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the server never listened"
        time.sleep(0.2)
    return proc, path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    log = tmp_path_factory.mktemp("forkserver") / "server.log"
    proc, path = _start(os.getpid(), log)
    yield path, log
    subprocess.run([DEPLOYBENCH, "forkserver", "stop", "--socket", str(path)], check=True)
    assert proc.wait(timeout=30) == 0
    assert not path.exists() and not path.parent.exists()  # nothing left in /tmp


def _run(args: list[str], server: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if server:
        env[ENV] = str(server)
    return subprocess.run([DEPLOYBENCH, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_forked_step_writes_what_the_step_writes_itself(server: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    path, log = server
    args = ["data", "--num-train", "2", "--num-val", "2", "--image-size", "32", "--out", "d"]
    (tmp_path / "forked").mkdir()
    (tmp_path / "direct").mkdir()
    forked = _run(args, path, tmp_path / "forked")  # relative paths: the client's directory
    direct = _run(args, None, tmp_path / "direct")
    assert forked.returncode == direct.returncode == 0, forked.stderr + direct.stderr
    assert forked.stdout == direct.stdout  # the client's stdout is the child's
    a, b = tmp_path / "forked" / "d", tmp_path / "direct" / "d"
    assert _files(a) == _files(b) and _files(a)
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in _files(a))
    assert "deploybench data --num-train 2 --num-val 2 --image-size 32 --out d" in \
        log.read_text()  # it was forked, not run by the client


def test_exit_status_and_errors_reach_the_client(server: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    path, _ = server
    missing = _run(["fetch", "--url", "file:nowhere.pth", "--sha256", "0" * 64, "--out", "x"],
                   path, tmp_path)
    assert missing.returncode == 2 and "error:" in missing.stderr and "nowhere.pth" in \
        missing.stderr, missing.stderr
    usage = _run(["measure"], path, tmp_path)
    assert usage.returncode == 2 and "required" in usage.stderr


def test_no_server_means_the_step_runs_itself(tmp_path: Path) -> None:
    gone = tmp_path / "gone.sock"
    run = _run(["data", "--num-train", "1", "--num-val", "1", "--image-size", "32", "--out",
                "d"], gone, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "d").is_dir()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_cancelled_client_ends_its_step(server: tuple[Path, Path], tmp_path: Path) -> None:
    """Snakemake cancels a job by ending its process, here the client: the forked step ends
    too, removes its partial output, and the server serves the next step."""
    path, log = server
    silent = socket.socket()  # accepts, never answers: the download hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/weights.pth"
    env = {**os.environ, ENV: str(path)}
    client = subprocess.Popen([DEPLOYBENCH, "fetch", "--url", url, "--sha256", "0" * 64,
                               "--out", "ckpt/weights.pth", "--retries", "0"],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        child = None
        while child is None and time.monotonic() < deadline:
            for line in log.read_text().splitlines():
                if url in line:
                    child = int(line.split(":")[0])
            time.sleep(0.2)
        assert child, log.read_text()
        while not _cmdline(child).startswith("deploybench fetch") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _cmdline(child).startswith("deploybench fetch --url")  # named as its step
        time.sleep(1.0)
        client.kill()
        client.wait()
        deadline = time.monotonic() + 20
        while _cmdline(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _cmdline(child), "the step outlived its client"
    finally:
        client.kill()
        silent.close()
    assert _files(tmp_path) == []  # no partial checkpoint, no temporary file
    deadline = time.monotonic() + 10
    while f"{child}: exit status" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"{child}: exit status 130" in log.read_text()
    after = _run(["data", "--num-train", "1", "--num-val", "1", "--image-size", "32", "--out",
                  "d"], path, tmp_path)
    assert after.returncode == 0, after.stderr


def test_the_server_ends_with_its_snakemake(tmp_path: Path) -> None:
    parent = subprocess.Popen(["sleep", "600"])
    try:
        proc, path = _start(parent.pid, tmp_path / "server.log")
        parent.send_signal(signal.SIGTERM)
        parent.wait()
        assert proc.wait(timeout=30) == 0
        assert not path.exists()
        assert "has exited; stopping" in (tmp_path / "server.log").read_text()
    finally:
        parent.kill()
