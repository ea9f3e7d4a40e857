"""Recovery from a Snakemake that died (kill -9, a closed terminal) in one command.

- A step outlives no Snakemake: when the Snakemake that started it dies, the step stops too,
  instead of running on as an orphan whose load skews the next run's timing. The Snakefile
  exports its own host and PID (Snakemake's shell sits between it and the step, so the step's
  own parent is no guide); on another host (a cluster node) the check is off.
- The next `snakemake` clears the dead one's lock, which Snakemake would otherwise ask to be
  removed by hand (`--unlock`), and the default profile's `rerun-incomplete` redoes the jobs
  it left unfinished.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

ENV = "DEPLOYBENCH_SNAKEMAKE"  # "<hostname>:<pid>"
POLL_SECONDS = 1.0
GRACE_SECONDS = 10.0


def export_for_jobs() -> None:
    """Called by the Snakefile: the jobs it starts inherit this process's identity."""
    os.environ[ENV] = f"{socket.gethostname()}:{os.getpid()}"


def _is_snakemake(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]
    except OSError:
        return False
    return any(Path(a.decode(errors="replace")).name == "snakemake" for a in argv) or (
        b"-m" in argv and b"snakemake" in argv)


def _works_in(pid: int, workdir: Path) -> bool:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == workdir
    except PermissionError:
        return True  # another user's Snakemake: assume it may be working here
    except OSError:
        return False


def clear_stale_locks(workdir: Path | str = ".") -> list[Path]:
    """Remove Snakemake's locks in `workdir` when no other Snakemake process works there.
    Called while the Snakefile is read, before this Snakemake takes its own lock."""
    workdir = Path(workdir).resolve()
    locks = sorted((workdir / ".snakemake" / "locks").glob("*.lock"))
    if not locks or not Path("/proc/self").exists():
        return []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me and _is_snakemake(int(entry.name)) \
                and _works_in(int(entry.name), workdir):
            return []  # a live Snakemake holds them
    for lock in locks:
        lock.unlink(missing_ok=True)
    print(f"removed the lock of a Snakemake that is no longer running ({len(locks)} files in "
          f"{locks[0].parent})", file=sys.stderr)
    return locks


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(pid: int) -> None:
    while _alive(pid):
        time.sleep(POLL_SECONDS)
    # KeyboardInterrupt in the main thread: the step's context managers remove their partial
    # outputs (and `deploybench container` its container); a step stuck in native code that
    # does not return is ended after the grace period.
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(GRACE_SECONDS)
    os._exit(130)


def start() -> bool:
    """Watch the Snakemake named in the environment; False where there is none to watch."""
    value = os.environ.get(ENV, "")
    host, _, pid = value.rpartition(":")
    if not pid.isdigit() or host != socket.gethostname():
        return False
    # Python leaves SIGINT ignored where the shell started it so; the watchdog relies on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=_watch, args=(int(pid),), daemon=True, name="watchdog").start()
    return True
