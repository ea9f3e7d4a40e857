"""Shared fixtures: the repository's embedded models and a small synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploybench.data.synthetic import SyntheticSpec, generate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def model_entry(name: str) -> dict:
    """The default config's entry for one embedded model, with absolute paths."""
    entry = dict(DEFAULT_CONFIG["models"][name])
    entry["config"] = str(REPO / entry["config"])
    ckpt = entry["checkpoint"]["url"].removeprefix("file:")
    entry["checkpoint"] = {**entry["checkpoint"], "url": (REPO / ckpt).as_uri()}
    return entry


def checkpoint_path(name: str) -> Path:
    return REPO / DEFAULT_CONFIG["models"][name]["checkpoint"]["url"].removeprefix("file:")


def pytest_report_header(config: pytest.Config) -> str:
    """Free disk, first: a run that fills the disk fails in whichever test comes next."""
    import shutil
    import tempfile

    free = {where: shutil.disk_usage(where).free / 2**30
            for where in (tempfile.gettempdir(), str(REPO))}
    return "disk free: " + ", ".join(f"{gib:.1f} GiB under {where}"
                                     for where, gib in free.items())


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same generator and seed as the default, a few images: the val split is identical."""
    root = tmp_path_factory.mktemp("data") / "shapes"
    return generate(root, SyntheticSpec(seed=0, num_train=2, num_val=6))


@pytest.fixture(scope="session")
def detector():
    from deploybench.models.adapter import load_adapter

    return load_adapter(model_entry("rtmdet_tiny_shapes")["config"],
                        checkpoint_path("rtmdet_tiny_shapes"))


@pytest.fixture(scope="session")
def segmentor():
    from deploybench.models.adapter import load_adapter

    return load_adapter(model_entry("fast_scnn_shapes")["config"],
                        checkpoint_path("fast_scnn_shapes"))


@pytest.fixture(scope="session")
def instance_segmentor():
    from deploybench.models.adapter import load_adapter

    return load_adapter(model_entry("rtmdet_ins_tiny_shapes")["config"],
                        checkpoint_path("rtmdet_ins_tiny_shapes"))


@pytest.fixture(scope="session")
def cpu_image() -> tuple[str, str]:
    """(name, base) of the cpu image of this checkout, built on a locally made base."""
    from deploybench.container.image import ImageSpec, build_image, prune_images

    from .docker_engine import ensure_engine, local_base

    ensure_engine()
    base = local_base()
    spec = ImageSpec("cpu", base)
    name, _, _ = build_image(spec)
    prune_images(spec)  # each change of the tree builds one: keep the disk
    return name, base
