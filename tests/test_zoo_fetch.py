"""A zoo model's checkpoint through Snakemake: fetched from the zoo's host (played on loopback
through `fetch.mirror`), checked by the sha256 prefix in its name, locked, and shared between
checkouts through the download cache."""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deploybench import checksum_lock
from deploybench.fetch import ZOO_HOST
from deploybench.fixture.zoo_weights import random_init_checkpoint
from deploybench.models.loading import load_weights

from .conftest import DEFAULT_CONFIG, REPO, model_entry
from .zoo_host import ZooHost

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ZOO_NAME = "rtmdet_tiny_8xb32-300e_coco"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooHost]:
    served = tmp_path_factory.mktemp("zoo-host")
    random_init_checkpoint(ZOO_NAME, served)
    server = ZooHost(served)
    yield server
    server.close()


def checkout(root: Path, host: ZooHost, cache: Path) -> tuple[Path, Path]:
    """A working directory with a config naming the zoo model, and that config's path."""
    work = root / "work"
    work.mkdir(parents=True)
    (served,) = host.directory.iterdir()
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["models"] = {"rtmdet_zoo": {
        "zoo": ZOO_NAME, "dataset": "shapes",
        # The zoo's own file cannot be downloaded here: a random-init stand-in under an
        # OpenMMLab-style name, at the zoo host's URL layout.
        "checkpoint": {"url": f"{ZOO_HOST}mmdetection/v3.0/rtmdet/{served.name}"}}}
    config["fetch"] = {"mirror": host.url, "cache": str(cache)}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return work, path


def snakemake(work: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work),
                           "--configfile", str(config), "--cores", "1", *args],
                          capture_output=True, text=True, timeout=600)


def test_a_zoo_checkpoint_is_fetched_checked_locked_and_shared(host: ZooHost,
                                                               tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    work, config = checkout(tmp_path / "a", host, cache)
    target = "resources/checkpoints/rtmdet_zoo.pth"
    run = snakemake(work, config, target)
    assert run.returncode == 0, run.stderr[-3000:]
    (served,) = host.directory.iterdir()
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    assert host.requests == [f"/mmdetection/v3.0/rtmdet/{served.name}"]  # through the mirror
    assert checksum_lock.read(work / "checkpoints.lock") == {served.name: digest}
    log = (work / "logs/fetch/rtmdet_zoo.log").read_text()
    assert f"verified against the sha256 prefix in its name {served.name}" in log
    assert "100%" in log and log.count("\n") < 10  # one progress bar, not a line per chunk
    # The training-style checkpoint loads its weights, checked against the locked digest.
    assert load_weights(work / target, sha256=digest)
    # Nothing left to do; the lock changed no job's command.
    assert "Nothing to be done" in snakemake(work, config, target, "-n").stdout
    # Another checkout with the same cache (and the committed lock) downloads nothing and is
    # verified against the lock's whole digest.
    other, other_config = checkout(tmp_path / "b", host, cache)
    (other / "checkpoints.lock").write_text((work / "checkpoints.lock").read_text())
    run = snakemake(other, other_config, target)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(host.requests) == 1
    assert "verified against checkpoints.lock" in (other / "logs/fetch/rtmdet_zoo.log").read_text()
    # A fetched checkpoint replaced behind the pipeline's back is refused before any job.
    (work / target).unlink()
    (work / target).write_bytes(b"not the locked file")
    run = snakemake(work, config, target, "-n")
    assert run.returncode != 0 and "checkpoints.lock says " + digest in run.stdout + run.stderr


def test_a_coco_dataset_is_downloaded_checked_and_unpacked(small_dataset: Path,
                                                           tmp_path: Path) -> None:
    """The download rule with the archives played on loopback (COCO's own are 1 GB): fetched
    with their md5, unpacked into the val2017 layout the zoo configs read."""
    import zipfile

    from deploybench.data.layouts import missing

    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "val2017.zip", "w") as images:
        for image in sorted((small_dataset / "val2017").iterdir()):
            images.write(image, f"val2017/{image.name}")
    with zipfile.ZipFile(served / "annotations_trainval2017.zip", "w") as annotations:
        annotations.write(small_dataset / "annotations" / "instances_val2017.json",
                          "annotations/instances_val2017.json")
    host = ZooHost(served)
    try:
        config = copy.deepcopy(DEFAULT_CONFIG)
        config["models"] = {n: model_entry(n) for n in config["models"]}
        config["datasets"]["coco"] = {"kind": "coco", "download": True, "archives": [
            {"url": f"{host.url}zips/{name}",
             "md5": hashlib.md5((served / name).read_bytes()).hexdigest()}  # noqa: S324
            for name in ("val2017.zip", "annotations_trainval2017.zip")]}
        work = tmp_path / "work"
        work.mkdir()
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        run = snakemake(work, path, "resources/data/coco")
        assert run.returncode == 0, run.stderr[-3000:]
        assert missing("coco", work / "resources/data/coco") == []
        assert sorted(p.name for p in (work / "resources/data/coco").glob("[!.]*")) == [
            "annotations", "val2017"]
        assert len(host.requests) == 2
        # A wrong digest: the rule fails with both digests, and no dataset appears.
        config["datasets"]["coco"]["archives"][0]["md5"] = "0" * 32
        path.write_text(yaml.safe_dump(config))
        other = tmp_path / "other"
        other.mkdir()
        run = snakemake(other, path, "resources/data/coco")
        log = (other / "logs/data/coco.log").read_text()
        assert run.returncode != 0 and "md5 mismatch" in log and "0" * 32 in log
        assert not (other / "resources/data/coco").exists()
    finally:
        host.close()
