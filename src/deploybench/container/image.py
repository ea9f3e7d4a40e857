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
DOCKERFILE = "docker/Dockerfile"
# What the Dockerfile copies from the checkout (the wheelhouse is derived from envs/).
CONTEXT = ("docker/Dockerfile", "docker/system-packages.sh", "docker/install-stack.sh",
           "envs", "pyproject.toml", "src", "workflow/schemas")
LABEL_HASH = "io.deploybench.context-sha256"
# mmcv 2.1.0's own requirements: it is installed from a wheel built on the host, and the
# wheelhouse must hold what it needs.
MMCV_REQUIREMENTS = ("addict", "mmengine", "numpy", "packaging", "Pillow", "pyyaml", "yapf",
                     "opencv-python")


@dataclass(frozen=True)
class ImageSpec:
    target: str
    base: str | None = None  # None: the Dockerfile's pinned base

    def build_args(self) -> dict[str, str]:
        args = {"TARGET": self.target}
        if self.base:
            args |= {"BASE": self.base, "PYTHON_IMAGE": self.base}
        elif self.target == "gpu":
            args["BASE"] = pinned_arg("GPU_BASE")
        return args

    def context_hash(self, root: Path = REPO) -> str:
        digest = hashlib.sha256()
        for path in _context_files(root):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        digest.update(repr(sorted(self.build_args().items())).encode())
        return digest.hexdigest()

    def name(self, root: Path = REPO) -> str:
        return f"deploybench-{self.target}:{self.context_hash(root)[:16]}"


def _context_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for entry in CONTEXT:
        path = root / entry
        if path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and not p.name.endswith(".pyc")
                      and not any(part == "__pycache__" or part.endswith(".egg-info")
                                  for part in p.parts)]
        elif path.is_file():
            files.append(path)
    return sorted(files)


def pinned_arg(name: str, root: Path = REPO) -> str:
    """A pinned default of the Dockerfile (its `ARG NAME=value` line)."""
    for line in (root / DOCKERFILE).read_text().splitlines():
        if line.startswith(f"ARG {name}="):
            return line.removeprefix(f"ARG {name}=").strip()
    raise UserError(f"{DOCKERFILE} pins no {name}")


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
        client = docker.from_env()
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


def build_image(spec: ImageSpec, wheelhouse: Path | None = None) -> tuple[str, str, bool]:
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
    house = REPO / "docker" / "wheelhouse"
    if house.exists():
        shutil.rmtree(house)
    house.mkdir()
    (house / ".keep").touch()
    if spec.target == "cpu":
        source = wheelhouse or Path(os.environ.get("DEPLOYBENCH_WHEELHOUSE",
                                                   REPO / ".cache" / "wheelhouse"))
        fill_wheelhouse(source)
        for wheel in source.glob("*.whl"):
            if wheel.stat().st_dev == house.stat().st_dev:
                (house / wheel.name).hardlink_to(wheel)
            else:
                shutil.copy2(wheel, house)
    args = spec.build_args() | {"GIT_COMMIT": git_commit(REPO),
                                "CONTEXT_SHA256": expected}
    try:
        for chunk in client.api.build(path=str(REPO), dockerfile=DOCKERFILE, tag=name,
                                      buildargs=args, rm=True, forcerm=True, decode=True):
            if "stream" in chunk:
                sys.stdout.write(chunk["stream"])
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
