"""`runtime: docker` against a real Docker engine: image names, and each error a user can meet.

The engine here has no NVIDIA runtime, so the GPU request is answered as on any engine without
the NVIDIA Container Toolkit; a GPU itself cannot be given to a container on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploybench.cli import main
from deploybench.container.image import ImageSpec, docker_client, find_image
from deploybench.container.run import run_step
from deploybench.errors import UserError

from .docker_engine import REPO, ensure_engine

DEPLOYBENCH = str(Path(sys.executable).with_name("deploybench"))


def test_image_name_is_the_hash_of_what_it_is_built_from(tmp_path: Path) -> None:
    copy = tmp_path / "tree"
    for entry in ("docker", "envs", "src", "workflow/schemas", "pyproject.toml"):
        source = REPO / entry
        if source.is_dir():
            shutil.copytree(source, copy / entry, ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info", "wheelhouse"))
        else:
            shutil.copy2(source, copy / entry)
    cpu = ImageSpec("cpu")
    assert cpu.name(copy) == cpu.name(REPO)  # the same files: the same name, no rebuild
    assert cpu.name().startswith("deploybench-cpu:") and len(cpu.name().split(":")[1]) == 16
    assert ImageSpec("cpu", "debian:local").name(copy) != cpu.name(copy)
    assert ImageSpec("gpu").name(copy) != cpu.name(copy)
    (copy / "docker" / "README.md").write_text("not part of the image\n")
    assert cpu.name(copy) == cpu.name(REPO)
    with (copy / "envs" / "requirements.txt").open("a") as f:
        f.write("# a changed requirement set\n")
    assert cpu.name(copy) != cpu.name(REPO)  # any change to what it is built from: a new name


def test_unreachable_engine_says_how_to_start_it(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert main(["container", "--target", "cpu", "--", "deploybench", "--help"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Docker engine" in err and "start it" in err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to run the client as an unprivileged user")
def test_socket_not_permitted_says_which_group() -> None:
    ensure_engine()
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          DEPLOYBENCH, "container", "--target", "cpu", "--", "true"],
                         capture_output=True, text=True, timeout=120, cwd="/tmp")
    assert run.returncode == 2, run.stderr
    assert "not permitted to use the Docker engine" in run.stderr
    assert "docker` group" in run.stderr


def test_missing_image_says_how_to_build_it() -> None:
    ensure_engine()
    with pytest.raises(UserError, match=r"not found.*deploybench image build --target cpu "
                                        r"--base deploybench-test:absent"):
        find_image(docker_client(), ImageSpec("cpu", "deploybench-test:absent"))


def test_image_not_matching_its_pin(cpu_image: tuple[str, str]) -> None:
    """An image under the expected name whose content hash is another one is refused."""
    client = docker_client()
    spec = ImageSpec("cpu", "deploybench-test:pin")
    client.images.get(cpu_image[1]).tag(spec.name())  # the base: no deploybench label at all
    try:
        with pytest.raises(UserError, match="does not match its pin: its label "
                                            "io.deploybench.context-sha256 is absent"):
            find_image(client, spec)
    finally:
        client.images.remove(spec.name())


def test_prune_removes_older_definitions_only(cpu_image: tuple[str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """An image of an older definition is removed; this checkout's, and an old one that a
    container still uses, are kept."""
    client = docker_client()
    name, base = cpu_image
    client.images.get(name).tag("deploybench-cpu", "0ld0000000000000")
    scratch = client.containers.create(base, ["true"])
    scratch.commit("deploybench-cpu", "1nuse00000000000")  # an image of its own
    scratch.remove()
    user = client.containers.create("deploybench-cpu:1nuse00000000000", ["true"])
    try:
        assert main(["image", "prune", "--target", "cpu", "--base", base]) == 0
        out = capsys.readouterr().out
        assert "removed deploybench-cpu:0ld0000000000000" in out
        assert "kept deploybench-cpu:1nuse00000000000 (" in out and "1 removed" in out
        tags = {t for i in client.images.list(name="deploybench-cpu") for t in i.tags}
        assert name in tags and "deploybench-cpu:0ld0000000000000" not in tags
        assert client.images.get(base)  # another repository: untouched
    finally:
        user.remove(force=True)
        for tag in ("deploybench-cpu:0ld0000000000000", "deploybench-cpu:1nuse00000000000"):
            if any(tag in i.tags for i in client.images.list(name="deploybench-cpu")):
                client.images.remove(tag)


def test_gpu_request_without_nvidia_runtime(cpu_image: tuple[str, str], tmp_path: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """The engine's own answer is translated, and the step runs without the GPU: its cell is
    skipped with that reason, as on a machine with no GPU."""
    client = docker_client()
    before = {c.id for c in client.containers.list(all=True)}
    code = run_step(["python3", "-c", "import os; print(os.environ['DEPLOYBENCH_NO_GPU'])",
                     "--device", "cuda"], ImageSpec("cpu", cpu_image[1]), workdir=tmp_path)
    out, err = capfd.readouterr()
    assert code == 0
    assert "could not select device driver" in err and "NVIDIA Container Toolkit" in out
    # Neither container is left: the one the engine could not start, nor the one that ran.
    assert {c.id for c in client.containers.list(all=True)} == before


def test_killed_container_fails_with_the_reason_and_no_partial_output(
        cpu_image: tuple[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "cell.json"
    write_partial = (f"open({str(out.parent / '.cell.json.x1.tmp')!r}, 'w').write('half'); "
                     f"open({str(out)!r}, 'w').write('half');")
    spec = ImageSpec("cpu", cpu_image[1])
    killed = run_step(["python3", "-c", write_partial + " import os, signal; "
                       "os.kill(os.getpid(), signal.SIGKILL)", "--out", str(out)], spec,
                      workdir=tmp_path)
    assert killed == 137 and "killed by SIGKILL" in capfd.readouterr().err
    assert not out.exists() and not list(out.parent.glob(".cell.json.*"))
    oom = run_step(["python3", "-c", write_partial + " x = bytearray(1 << 30); x[::4096] = "
                    "b'1' * len(x[::4096])", "--out", str(out)], spec, memory="64m",
                   workdir=tmp_path)
    err = capfd.readouterr().err
    assert oom == 137 and "ran out of memory (OOMKilled)" in err, err
    assert not out.exists() and not list(out.parent.glob(".cell.json.*"))


def test_exit_code_and_output_pass_through(cpu_image: tuple[str, str], tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    """The step's own exit code and output reach the job; the tree is read-only but results/."""
    code = run_step(["sh", "-c", f"id -u; touch {tmp_path}/results/ok; "
                    f"touch {tmp_path}/forbidden; exit 3"],
                    ImageSpec("cpu", cpu_image[1]), workdir=tmp_path)
    out, err = capfd.readouterr()
    assert code == 3 and out.splitlines()[0] == str(os.getuid())
    assert (tmp_path / "results" / "ok").is_file() and not (tmp_path / "forbidden").exists()
    assert "Read-only file system" in out + err


def test_a_run_that_requires_a_gpu_fails_when_the_engine_cannot_give_one(
        cpu_image: tuple[str, str], tmp_path: Path) -> None:
    """The GPU runner's profile (require_gpu): the step fails, naming the fix; nothing runs
    without the GPU and no container is left."""
    client = docker_client()
    before = {c.id for c in client.containers.list(all=True)}
    with pytest.raises(UserError, match=r"deploybench measure: this run requires a GPU "
                                        r"\(config require_gpu\).*NVIDIA Container Toolkit"):
        run_step(["deploybench", "measure", "--device", "cuda"],
                 ImageSpec("cpu", cpu_image[1]), workdir=tmp_path, require_gpu=True)
    assert {c.id for c in client.containers.list(all=True)} == before


def test_cancelled_step_removes_its_container(cpu_image: tuple[str, str],
                                              tmp_path: Path) -> None:
    """SIGTERM to `deploybench container` (a cancelled job) stops and removes the container,
    which belongs to dockerd and would otherwise run on, holding the GPU."""
    import signal
    import time

    from deploybench.container.run import LABEL_STEP

    client = docker_client()
    step = subprocess.Popen([DEPLOYBENCH, "container", "--target", "cpu", "--base", cpu_image[1],
                             "--", "sleep", "300"], cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not client.containers.list(filters={"label": LABEL_STEP}):
        assert time.monotonic() < deadline and step.poll() is None, step.stderr
        time.sleep(0.2)
    step.send_signal(signal.SIGTERM)
    assert step.wait(timeout=60) == 128 + signal.SIGTERM
    assert "SIGTERM: removing container" in step.stderr.read()
    assert not client.containers.list(all=True, filters={"label": LABEL_STEP})


def test_tensorrt_int8_source_is_quantized_in_a_gpu_less_container(
        cpu_image: tuple[str, str], tmp_path: Path) -> None:
    """TensorRT int8's QDQ model is built by a `--device cpu` job, whose container gets no GPU:
    the DAG's own job makes a real symmetric-int8 QDQ model there (only the engine needs one)."""
    import json

    import onnx
    import yaml

    from .conftest import DEFAULT_CONFIG
    from .test_pipeline import snakemake

    work = tmp_path / "work"
    shutil.copytree(REPO / "fixtures", work / "fixtures",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(profile="docker-qdq", runtime="docker",
                  docker={"target": "cpu", "base": cpu_image[1]})
    config["datasets"]["shapes"].update(num_train=2, num_val=6)
    config["build"]["calibration_images"] = 2
    config["matrix"].update(models=["rtmdet_tiny_shapes"], backends=["tensorrt"],
                            devices=["cuda"], precisions=["int8"])
    assert "rtmdet_tiny_shapes" in DEFAULT_CONFIG["models"]
    built = Path("results/docker-qdq/local/build/rtmdet_tiny_shapes/160x160")
    run = snakemake(work, config, str(built / "tensorrt-int8-qdq.onnx.json"))
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads((work / built / "tensorrt-int8-qdq.onnx.json").read_text())
    assert result["status"] == "ok", result.get("reason")
    assert result["provenance"]["runtime"]["image"].startswith("deploybench-cpu:")
    model = onnx.load(work / built / "tensorrt-int8-qdq.onnx")
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantize) > 10
    zero_points = {i.name: i for i in model.graph.initializer}
    types = {zero_points[n.input[2]].data_type for n in quantize if len(n.input) > 2}
    assert types == {onnx.TensorProto.INT8}  # symmetric int8 throughout: what TensorRT takes


def test_a_gpu_run_in_containers_stops_before_its_first_job(
        cpu_image: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Snakemake's preflight for `require_gpu` under `runtime: docker` (common.smk): one probe
    container with the GPU, refused by this engine, and the run stops with the fix named."""
    from deploybench.backends.base import REQUIRE_GPU_ENV
    from deploybench.gpu_required import check_gpu_reachable

    monkeypatch.setenv(REQUIRE_GPU_ENV, "0")  # restored after the preflight sets it
    config = {"runtime": "docker", "docker": {"target": "cpu", "base": cpu_image[1]}}
    with pytest.raises(UserError, match=r"python -c: this run requires a GPU.*NVIDIA Container "
                                        r"Toolkit"):
        check_gpu_reachable(config)
