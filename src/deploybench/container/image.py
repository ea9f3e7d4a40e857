"""The pinned images: named by the hash of what they are built from, built once per name.

An image's name is `deploybench-<target>:<hash>`, the hash covering the Dockerfile and its
scripts, the requirement files, the package's source and schema, and the build arguments
(target, base). An unchanged definition therefore maps to an image that exists and is reused,
and any change to one of them names an image that does not exist yet and is built.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploybench.errors import UserError

REPO = Path(__file__).resolve().parents[3]
# Each target's definition and what it copies from the checkout (the wheelhouse is derived
# from envs/).
DOCKERFILES = {"cpu": "docker/Dockerfile", "gpu": "docker/gpu.Dockerfile"}
CONTEXTS = {
    "cpu": ("docker/Dockerfile", "docker/system-packages.sh", "docker/install-stack.sh",
            "envs", "pyproject.toml", "src", "workflow/schemas"),
    "gpu": ("docker/gpu.Dockerfile", "docker/system-packages.sh", "docker/install-gpu-stack.sh",
            "envs", "pyproject.toml", "src", "workflow/schemas"),
}
LABEL_HASH = "io.deploybench.context-sha256"
# mmcv 2.1.0's own requirements: it is installed from a wheel built on the host, and the
# wheelhouse must hold what it needs.
MMCV_REQUIREMENTS = ("addict", "mmengine", "numpy", "packaging", "Pillow", "pyyaml", "yapf",
                     "opencv-python")
# The gpu image's wheels come from these, each hash-pinned (envs/lock-gpu-image.sh).
GPU_LOCKS = ("gpu-image.lock", "gpu-build.lock")
TENSORRT_INDEX = "https://pypi.nvidia.com"


@dataclass(frozen=True)
class ImageSpec:
    target: str
    base: str | None = None  # None: the Dockerfile's pinned base
    cuda_arch: str | None = None  # gpu: TORCH_CUDA_ARCH_LIST; None: the Dockerfile's

    @classmethod
    def of_config(cls, config: dict[str, Any]) -> ImageSpec:
        """The steps' image under `runtime: docker`: the config's `docker` section."""
        docker = config["docker"]
        return cls(docker["target"], docker["base"], docker.get("cuda_arch"))

    @property
    def dockerfile(self) -> str:
        return DOCKERFILES[self.target]

    def build_args(self) -> dict[str, str]:
        args = {"TARGET": self.target}
        if self.base:
            args["BASE"] = self.base
        if self.cuda_arch:
            args["TORCH_CUDA_ARCH_LIST"] = self.cuda_arch
        return args

    def context_hash(self, root: Path = REPO) -> str:
        digest = hashlib.sha256()
        for path in _context_files(root, CONTEXTS[self.target]):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        digest.update(repr(sorted(self.build_args().items())).encode())
        return digest.hexdigest()

    def name(self, root: Path = REPO) -> str:
        return f"deploybench-{self.target}:{self.context_hash(root)[:16]}"


def _context_files(root: Path, context: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for entry in context:
        path = root / entry
        if path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and not p.name.endswith(".pyc")
                      and not any(part == "__pycache__" or part.endswith(".egg-info")
                                  for part in p.parts)]
        elif path.is_file():
            files.append(path)
    return sorted(files)


def pinned_arg(name: str, target: str = "cpu", root: Path = REPO) -> str:
    """A pinned default of a target's Dockerfile (its `ARG NAME=value` line)."""
    dockerfile = DOCKERFILES[target]
    for line in (root / dockerfile).read_text().splitlines():
        if line.startswith(f"ARG {name}="):
            return line.removeprefix(f"ARG {name}=").strip().strip('"')
    raise UserError(f"{dockerfile} pins no {name}")


class ImageMissing(UserError):
    """No image of the expected name exists on the engine: build it."""


def docker_client() -> Any:
    """A client of the Docker engine, or a UserError that says how to reach one."""
    try:
        import docker
    except ImportError:
        raise UserError("the Docker SDK is not installed: run `make setup` (envs/setup.sh)") \
            from None
    try:
        # Removing a many-GB image on a busy engine (an image build beside it) can take minutes:
        # docker-py's default of 60 s would fail a request that is merely slow.
        client = docker.from_env(timeout=900)
        client.ping()
    except docker.errors.DockerException as err:
        text = str(err)
        if "Permission denied" in text or "PermissionError" in text:
            raise UserError(f"not permitted to use the Docker engine ({text}); add this user to "
                            "the `docker` group (then log in again) or run as a user that "
                            "may") from None
        raise UserError(f"cannot reach the Docker engine ({text}); start it (`sudo systemctl "
                        "start docker`, or `dockerd &`) or set DOCKER_HOST to its socket") \
            from None
    return client


def find_image(client: Any, spec: ImageSpec) -> tuple[str, Any]:
    """(name, image) of the image named for `spec`, checked against its pin; a UserError when
    it is missing or does not match."""
    import docker

    expected = spec.context_hash()
    name = f"deploybench-{spec.target}:{expected[:16]}"
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        base = f" --base {spec.base}" if spec.base else ""
        raise ImageMissing(f"image {name} not found: the {spec.target} image of this checkout has "
                        f"not been built on this engine; build it with `deploybench image build "
                        f"--target {spec.target}{base}` (or `make image`)") from None
    found = (image.labels or {}).get(LABEL_HASH, "")
    if found != expected:
        raise UserError(f"image {name} ({image.id}) does not match its pin: its label "
                        f"{LABEL_HASH} is {found or 'absent'}, this checkout's files hash to "
                        f"{expected}; remove it (`docker rmi {name}`) and build it "
                        f"again with `deploybench image build --target {spec.target}`")
    return name, image


def fill_wheelhouse(wheelhouse: Path, python: str = sys.executable) -> None:
    """Every wheel the cpu image installs, from the host: `docker build` sees neither the host's
    pip configuration nor its local wheels, and mmcv would compile again (~16 min)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    envs = REPO / "envs"
    stamp = wheelhouse / ".filled-for"
    want = hashlib.sha256(b"".join((envs / f).read_bytes() for f in
                                   ("requirements.txt", "constraints.txt"))).hexdigest()
    if stamp.is_file() and stamp.read_text() == want:
        return  # the same pins: the same wheels
    requirements = [line for line in (envs / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith(("#", "mmcv"))]
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    # `pip wheel`, not `download`: a dependency published only as a source archive is built
    # into a wheel here, once, and the image needs no build tools for it.
    subprocess.run([*pip, "wheel", "-q", "-w", str(wheelhouse), "--prefer-binary",
                    "-c", str(envs / "constraints.txt"), "setuptools", "wheel",
                    *MMCV_REQUIREMENTS, *requirements], check=True)
    if not list(wheelhouse.glob("mmcv-2.1.0-*.whl")):
        # pip's wheel cache holds the wheel envs/setup.sh built; `pip wheel` reuses it.
        subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(wheelhouse), "mmcv==2.1.0"], check=True,
                       env={**os.environ, "MMCV_WITH_OPS": "1"})
    stamp.write_text(want)


def fill_gpu_wheelhouse(wheelhouse: Path, python: str = sys.executable,
                        tensorrt: bool = True) -> bool:
    """Every wheel the gpu image installs, hash-checked against envs/gpu-*.lock, from the
    package index alone (not this machine's CPU torch); TensorRT from NVIDIA's index where it
    is reachable. Returns whether TensorRT's wheels are in the wheelhouse."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    envs = REPO / "envs"
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL")}
    clean["PIP_CONFIG_FILE"] = os.devnull
    pip = [python, "-m", "pip", "--disable-pip-version-check", "download", "-q", "--no-deps",
           "-d", str(wheelhouse)]
    locks = [arg for lock in GPU_LOCKS for arg in ("-r", str(envs / lock))]
    subprocess.run([*pip, "--require-hashes", *locks], check=True, env=clean)
    if not tensorrt:
        return False
    # The bindings are on PyPI; the libraries only on NVIDIA's index.
    done = subprocess.run([*pip, "--extra-index-url", TENSORRT_INDEX, "--only-binary", ":all:",
                           "-r", str(envs / "tensorrt.txt")], env=clean, check=False,
                          capture_output=True, text=True)
    if done.returncode:
        print(f"warning: TensorRT's wheels could not be fetched from {TENSORRT_INDEX} "
              f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}); "
              "the image will have no TensorRT", file=sys.stderr)
        for stray in wheelhouse.glob("tensorrt_cu13*"):
            stray.unlink()
        return False
    return True


def _stage_wheels(source: Path, house: Path) -> None:
    for wheel in [*source.glob("*.whl"), *source.glob("*.tar.gz")]:
        if wheel.stat().st_dev == house.stat().st_dev:
            (house / wheel.name).hardlink_to(wheel)
        else:
            shutil.copy2(wheel, house)


def build_image(spec: ImageSpec, wheelhouse: Path | None = None,
                require_tensorrt: bool = False) -> tuple[str, str, bool]:
    """(name, id, built): build the image unless one of its name (and pin) exists."""
    from deploybench.provenance import git_commit

    client = docker_client()
    try:
        name, image = find_image(client, spec)
        return name, image.id, False
    except ImageMissing:
        pass
    expected = spec.context_hash()
    name = f"deploybench-{spec.target}:{expected[:16]}"
    default = REPO / ".cache" / ("wheelhouse" if spec.target == "cpu" else "wheelhouse-gpu")
    source = wheelhouse or Path(os.environ.get("DEPLOYBENCH_WHEELHOUSE", default))
    if spec.target == "cpu":
        fill_wheelhouse(source)
    elif not fill_gpu_wheelhouse(source) and require_tensorrt:
        raise UserError(f"the gpu image needs TensorRT and {TENSORRT_INDEX} was not reachable; "
                        "build where it is, or pass --no-tensorrt for an image without it")
    house = REPO / "docker" / "wheelhouse"
    if house.exists():
        shutil.rmtree(house)
    house.mkdir()
    (house / ".keep").touch()
    _stage_wheels(source, house)
    args = spec.build_args() | {"GIT_COMMIT": git_commit(REPO),
                                "CONTEXT_SHA256": expected}
    try:
        for chunk in client.api.build(path=str(REPO), dockerfile=spec.dockerfile, tag=name,
                                      buildargs=args, rm=True, forcerm=True, decode=True,
                                      timeout=6 * 3600):
            if "stream" in chunk:
                sys.stdout.write(chunk["stream"])
                sys.stdout.flush()
            if "error" in chunk:
                raise UserError(f"building {name} failed: {chunk['error'].strip()}")
    finally:
        shutil.rmtree(house, ignore_errors=True)
    return name, client.images.get(name).id, True


def prune_images(spec: ImageSpec) -> tuple[list[str], list[str]]:
    """(removed, kept): the `deploybench-<target>` images other than this checkout's. Each
    change of the definition names a new image, and the old ones (2-3 GB where the requirements
    changed) would pile up on a runner; one that a container still uses is kept."""
    import docker

    client = docker_client()
    current = spec.name()
    removed: list[str] = []
    kept: list[str] = []
    for image in client.images.list(name=f"deploybench-{spec.target}"):
        for tag in image.tags:
            if tag == current or not tag.startswith(f"deploybench-{spec.target}:"):
                continue
            try:
                client.images.remove(tag)  # an untag where another name shares the image
                removed.append(tag)
            except docker.errors.APIError as err:  # in use by a container: Docker refuses
                kept.append(f"{tag} ({err.explanation or err})")
    return removed, kept
