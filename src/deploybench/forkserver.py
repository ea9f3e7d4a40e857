"""Steps without the import: one process imports torch, mmengine, mmdet and mmseg (about 7 s on
two cores, most of a small step's time), then forks a child for every `deploybench` step.

The Snakefile starts the server for a local run (not in containers, not on a cluster, where jobs
run elsewhere) and exports its socket's path; `deploybench` sends its argument list, working
directory, environment and stdin/stdout/stderr over that socket and exits with the child's
status. Each step is still its own process (a fork, with its own threads, files and memory),
so repeats stay independent measurements. Where no server answers, the step runs in-process as
before: the server is only ever a shortcut.

A child ends when its client does (Snakemake cancelled the job): the socket's end is its
signal. The server ends with the Snakemake that started it, or when told to stop.
"""

from __future__ import annotations

import array
import contextlib
import importlib
import json
import os
import selectors
import shlex
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

ENV = "DEPLOYBENCH_FORKSERVER"  # the server's socket path
# Everything a step imports that is slow to import: the codebases' registries as
# `register_all_modules` imports them (a child still sets its own default scope).
PRELOAD = (
    "torch",
    "mmengine.runner",
    "mmdet.datasets", "mmdet.engine", "mmdet.evaluation", "mmdet.models", "mmdet.visualization",
    "mmseg.datasets", "mmseg.engine", "mmseg.evaluation", "mmseg.models", "mmseg.structures",
    "mmseg.visualization",
    "deploybench.cli", "deploybench.evaluate", "deploybench.measure.run",
)
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
# Steps that start no Python work of their own are not worth a fork.
LOCAL_STEPS = frozenset({"forkserver", "container", "image", "check-config", "zoo"})
GRACE_SECONDS = 10.0
SOCKET_DIR_PREFIX = "deploybench-fork-"
_HEADER = struct.Struct("!I")
_FDS = 3  # stdin, stdout, stderr


def _send_request(conn: socket.socket, argv: Sequence[str]) -> None:
    request = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)})
    payload = request.encode()
    fds = array.array("i", range(_FDS))
    conn.sendmsg([_HEADER.pack(len(payload)) + payload],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])


def _receive_request(conn: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(_FDS * fds.itemsize))
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
    (size,) = _HEADER.unpack(data[: _HEADER.size])
    data = data[_HEADER.size:]
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client left mid-request")
        data += chunk
    return json.loads(data), list(fds)


def run_in_server(argv: Sequence[str]) -> int | None:
    """The step's exit status from a child of the server; None where no server answers (the
    caller then runs the step itself)."""
    path = os.environ.get(ENV)
    if not path or not argv or argv[0] in LOCAL_STEPS:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        _send_request(conn, argv)
    except OSError:
        conn.close()
        return None
    # The status line comes when the child exits; if this process dies first, the closed
    # socket ends the child.
    reply = conn.makefile("rb").readline()
    if not reply.strip().lstrip(b"-").isdigit():
        print(f"error: deploybench's fork server ({path}) ended before the step did; rerun "
              "the job (without the server: unset DEPLOYBENCH_FORKSERVER)", file=sys.stderr)
        return 1
    return int(reply)


def _end_with_client(conn: socket.socket) -> None:
    """In the child: the client's socket closing means the job was cancelled."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    # KeyboardInterrupt in the main thread: the step's context managers remove partial outputs.
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(GRACE_SECONDS)
    os._exit(130)


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    return value if isinstance(value, int) else 1


def _child(conn: socket.socket, request: dict, fds: list[int], main: Callable) -> None:
    """Become the step: the client's stdio, directory and environment; never returns."""
    code = 1
    try:
        # In ps and /proc/<pid>/cmdline the child is its step, not the server. (First: it
        # finds the process's argv area through the environment, which is replaced below.)
        import setproctitle  # only here: a host that runs steps in containers lacks it

        setproctitle.setproctitle(shlex.join(["deploybench", *request["argv"]]))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in enumerate(fds[:_FDS]):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENV, None)  # the child runs the step itself
        sys.argv = ["deploybench", *request["argv"]]
        threading.Thread(target=_end_with_client, args=(conn,), daemon=True).start()
        code = _exit_code(main(request["argv"]))
    except SystemExit as done:
        code = _exit_code(done.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - the traceback goes to the step's own log
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        # Not sys.exit: the server's atexit handlers and threads are not the child's.
        os._exit(code)


def _status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says


def preload() -> None:
    """Import what every step needs, leaving CUDA uninitialized for the children. mmengine and
    mmcv ask `torch.cuda.is_available()` at import; PyTorch answers with cudaGetDeviceCount,
    which initializes the CUDA driver, and a child forked after that cannot use CUDA. Asked
    through NVML instead, the answer is the same and the driver stays untouched."""
    os.environ[NVML_CHECK] = "1"
    for module in PRELOAD:
        importlib.import_module(module)


def serve(path: Path, parent_pid: int | None, idle_seconds: float,
          main: Callable[[list[str]], int]) -> int:
    """Import, then listen on `path` until `parent_pid` exits, a stop request, or idleness;
    each request's child runs `main(argv)` (the command line's entry point, handed in: this
    module sits below it)."""
    preload()

    parent = os.pidfd_open(parent_pid) if parent_pid else None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound under a temporary name and renamed: a client sees the path only once it is served.
    staging = path.with_name(path.name + ".staging")
    staging.unlink(missing_ok=True)
    listener.bind(str(staging))
    listener.listen(64)
    os.replace(staging, path)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    if parent is not None:
        selector.register(parent, selectors.EVENT_READ, "parent")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, client socket)
    idle_since = time.monotonic()
    print(f"fork server {os.getpid()} listening on {path}", flush=True)
    try:
        while True:
            events = selector.select(timeout=5.0)
            if not events and not children and time.monotonic() - idle_since > idle_seconds:
                print("idle; stopping", flush=True)
                return 0
            for key, _ in events:
                if key.data == "parent":
                    print("the Snakemake that started this server has exited; stopping",
                          flush=True)
                    return 0
                if key.data == "accept":
                    conn, _ = listener.accept()
                    try:
                        request, fds = _receive_request(conn)
                    except (OSError, ValueError, struct.error) as err:
                        print(f"bad request: {err}", flush=True)
                        conn.close()
                        continue
                    if request.get("argv") == ["forkserver", "stop"]:
                        for fd in fds:
                            os.close(fd)
                        conn.sendall(b"0\n")
                        conn.close()
                        print("stop requested", flush=True)
                        return 0
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        listener.close()
                        selector.close()
                        _child(conn, request, fds, main)
                    for fd in fds:
                        os.close(fd)
                    print(f"{pid}: deploybench {shlex.join(request['argv'])}", flush=True)
                    pidfd = os.pidfd_open(pid)
                    children[pidfd] = (pid, conn)
                    selector.register(pidfd, selectors.EVENT_READ, "child")
                    continue
                pid, conn = children.pop(key.fd)
                selector.unregister(key.fd)
                os.close(key.fd)
                _, wait_status = os.waitpid(pid, 0)
                print(f"{pid}: exit status {_status(wait_status)}", flush=True)
                with contextlib.suppress(OSError):  # a client that has gone: job failed
                    conn.sendall(b"%d\n" % _status(wait_status))
                conn.close()
                idle_since = time.monotonic()
    finally:
        path.unlink(missing_ok=True)
        if path.parent.name.startswith(SOCKET_DIR_PREFIX):
            path.parent.rmdir()


def stop(path: str | None = None) -> bool:
    """Ask the server at `path` (default: the environment's) to exit; False where none answers."""
    path = path or os.environ.get(ENV)
    if not path:
        return False
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        _send_request(conn, ["forkserver", "stop"])
        conn.recv(16)
    except OSError:
        return False
    finally:
        conn.close()
    return True


def start_for_jobs(log: Path, ready_seconds: float = 120.0) -> Path | None:
    """Called by the Snakefile before the first job: start a server whose parent is this
    process, wait until it serves (its imports must not run beside a timed job), and export
    its socket path to the jobs. None, with the reason in `log`, where it did not start."""
    import subprocess

    # A short directory of its own: a socket path has a 107-byte limit.
    path = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)) / "fork.sock"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # appended: each Snakemake of the run adds its own part
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out.write(f"== {started}: fork server for Snakemake pid {os.getpid()}\n".encode())
        out.flush()
        server = subprocess.Popen(
            [sys.executable, "-m", "deploybench", "forkserver", "serve", "--socket", str(path),
             "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # not in the terminal's group: Ctrl-C reaches the clients
    deadline = time.monotonic() + ready_seconds
    while not path.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            print(f"deploybench: the fork server did not start (see {log}); every step "
                  "imports its libraries itself", file=sys.stderr)
            return None
        time.sleep(0.1)
    os.environ[ENV] = str(path)
    return path
