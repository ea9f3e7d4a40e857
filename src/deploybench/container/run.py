"""`deploybench container -- deploybench <step> ...`: one pipeline step in its pinned image.

With `runtime: docker` every rule's command is prefixed with this wrapper. Snakemake stays on
the host; the step runs in the image of `docker.target`:
- the working tree bind-mounted at the same path, read-only, except the folders steps write
  (results/, resources/, reports/);
- as the host user's uid:gid, on the host process's CPUs, with its thread settings;
- the GPU requested (DeviceRequest) when the step runs on `--device cuda`: the GPUs that
  CUDA_VISIBLE_DEVICES names on the host (indices or UUIDs; one runner per GPU), else all;
  inside, they are the container's only GPUs, so the variable is not passed on;
- where the run requires a GPU (config `require_gpu`), an engine that cannot give one fails
  the step instead of running it without;
- SIGTERM or SIGINT (a cancelled job) stops and removes the container before exiting;
- its output streamed to this process's stdout (the job's log), its exit code returned;
- the image's reference, id and repo digest passed in, so every result's provenance names them.
A container that is killed (out of memory, a signal) fails the job with the reason and leaves
no partial output behind.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deploybench.backends.base import NO_GPU_ENV, REQUIRE_GPU_ENV
from deploybench.container.image import ImageSpec, docker_client, find_image
from deploybench.errors import UserError
from deploybench.provenance import IMAGE_ENV, git_commit

WRITABLE = ("results", "resources", "reports")
# Environment a step's timing depends on, passed through unchanged.
PASSED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
              "OPENBLAS_L2_SIZE", "TORCHINDUCTOR_CACHE_DIR", "NVIDIA_TF32_OVERRIDE")
NO_GPU_RUNTIME = 'could not select device driver'
# Every step's container carries it: a runner's leftovers can be found by it.
LABEL_STEP = "io.deploybench.step"


def gpu_request(env: dict[str, str]) -> Any:
    """The DeviceRequest for a cuda step: the GPUs CUDA_VISIBLE_DEVICES names (indices, as
    nvidia-smi numbers them, or UUIDs), else every GPU."""
    from docker.types import DeviceRequest

    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible:
        return DeviceRequest(device_ids=visible, capabilities=[["gpu"]])
    return DeviceRequest(count=-1, capabilities=[["gpu"]])


@contextmanager
def removed_on_signal(container: Any) -> Iterator[None]:
    """A cancelled job (SIGTERM from the runner or Snakemake, SIGINT) stops and removes its
    container: it belongs to dockerd, and would otherwise keep the GPU."""
    def stop(signum: int, _frame: Any) -> None:
        print(f"error: {signal.Signals(signum).name}: removing container {container.short_id}",
              file=sys.stderr)
        raise SystemExit(128 + signum)  # the caller's `finally` removes it

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wants_gpu(argv: Sequence[str]) -> bool:
    return any(a == "--device" and b == "cuda" for a, b in zip(argv, argv[1:], strict=False))


def _outputs(argv: Sequence[str]) -> list[Path]:
    """The files the step writes (for the export step --onnx; for builds --artifact)."""
    step = argv[1] if len(argv) > 1 else ""
    flags = ("--out",) + (("--onnx",) if step == "export" else ()) + \
        (("--artifact",) if step == "build" else ())
    return [Path(b) for a, b in zip(argv, argv[1:], strict=False) if a in flags]


def _remove_partial(outputs: list[Path]) -> None:
    """A killed step may leave an output or an atomic write's temporary sibling: remove both."""
    for out in outputs:
        out.unlink(missing_ok=True)
        if out.parent.is_dir():
            for tmp in out.parent.glob(f".{out.name}.*"):
                tmp.unlink(missing_ok=True)


def _mounts(workdir: Path) -> dict[str, dict[str, str]]:
    volumes = {str(workdir): {"bind": str(workdir), "mode": "ro"}}
    for name in WRITABLE:
        (workdir / name).mkdir(exist_ok=True)
        volumes[str(workdir / name)] = {"bind": str(workdir / name), "mode": "rw"}
    return volumes


def _kill_reason(state: dict[str, Any], code: int) -> str:
    if state.get("OOMKilled"):
        return ("the container ran out of memory (OOMKilled); give it more (config "
                "docker.memory, or Docker's own limit) or lower the batch")
    if code > 128:
        import signal

        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"the container was killed by {name} (exit code {code})"
    return ""


def _start(client: Any, image_id: str, options: dict[str, Any]) -> Any:
    """A started container; one that the engine created but could not start (a GPU request
    it cannot meet, say) is removed, not left behind in the `Created` state."""
    container = client.containers.create(image_id, **options)
    try:
        container.start()
    except BaseException:
        container.remove(force=True)
        raise
    return container


def run_step(argv: Sequence[str], spec: ImageSpec, memory: str | None = None,
             workdir: Path | None = None, require_gpu: bool = False) -> int:
    """Run `argv` in the image of `spec`; returns its exit code."""
    import docker

    if not argv:
        raise UserError("deploybench container: give the command to run after `--`")
    workdir = (workdir or Path.cwd()).resolve()
    client = docker_client()
    name, image = find_image(client, spec)
    digests = image.attrs.get("RepoDigests") or []
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env |= {IMAGE_ENV["image"]: name, IMAGE_ENV["image_id"]: image.id,
            IMAGE_ENV["repo_digest"]: digests[0] if digests else "",
            "DEPLOYBENCH_GIT_COMMIT": git_commit(), "HOME": "/tmp"}
    options: dict[str, Any] = {
        "command": list(argv), "working_dir": str(workdir), "volumes": _mounts(workdir),
        "user": f"{os.getuid()}:{os.getgid()}", "environment": env,
        "shm_size": "2g", "init": True,  # the step is not PID 1: signals act as on a host
        "cpuset_cpus": ",".join(map(str, sorted(os.sched_getaffinity(0)))),
        "labels": {LABEL_STEP: " ".join(argv[:2])},
    }
    if require_gpu:
        env[REQUIRE_GPU_ENV] = "1"
    if memory:
        options |= {"mem_limit": memory, "memswap_limit": memory}
    if _wants_gpu(argv):
        options["device_requests"] = [gpu_request(dict(os.environ))]
        # One CUDA order everywhere: nvidia-smi's and NVML's (PCI bus), not CUDA's fastest-first.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    outputs = _outputs(argv)
    try:
        container = _start(client, image.id, options)
    except docker.errors.APIError as err:
        if NO_GPU_RUNTIME not in str(err):
            raise UserError(f"starting {name} failed: {err.explanation or err}") from None
        reason = (f"this Docker engine cannot give a container the GPU ({err.explanation}); "
                  "install the NVIDIA Container Toolkit and configure Docker to use it "
                  "(`nvidia-ctk runtime configure --runtime=docker`, then restart dockerd; "
                  "docs/self-hosted-runner.md)")
        if require_gpu:
            raise UserError(f"{' '.join(argv[:2])}: this run requires a GPU (config "
                            f"require_gpu) and {reason}") from None
        # The step itself decides what a cell without a GPU becomes (skipped, with this reason,
        # which names the fix), as it does on a machine without one.
        print(f"warning: {reason}; running without the GPU", file=sys.stderr)
        del options["device_requests"]
        options["environment"][NO_GPU_ENV] = reason
        container = _start(client, image.id, options)
    try:
        with removed_on_signal(container):
            for chunk in container.logs(stream=True, follow=True):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            code = int(container.wait()["StatusCode"])
            container.reload()
            reason = _kill_reason(container.attrs.get("State", {}), code)
    except SystemExit:
        _remove_partial(outputs)
        raise
    finally:
        container.remove(force=True)
    if reason:
        _remove_partial(outputs)
        print(f"error: {' '.join(argv[:2])} in {name}: {reason}", file=sys.stderr)
    return code
