"""The OpenMMLab model zoo, offline: every model the installed mmdet and mmseg list in their own
metafiles (mmdet: `.mim/model-index.yml` -> `configs/*/metafile.yml`; mmseg: the same with
`metafile.yaml`), by its metafile Name or its config file's stem (mmdet's Names keep their 2.x
spelling: `yolox_s_8x8_300e_coco` is `yolox_s_8xb8-300e_coco.py`)."""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from deploybench.errors import UserError
from deploybench.metrics import METRICS as ALL_METRICS

CODEBASES = ("mmdet", "mmseg")
# The metafile's Task -> deploybench's task; a model with box and mask results is instance
# segmentation. Other tasks (panoptic, tracking, depth) are listed but not benchmarkable.
TASKS = {"Object Detection": "detection", "Instance Segmentation": "instance_segmentation",
         "Semantic Segmentation": "segmentation"}
# The metafile's metric names -> deploybench's metric keys and scale (mmdet's metric is 0-1).
METRICS = {m.zoo_name: (m.name, m.zoo_scale) for m in ALL_METRICS.values() if m.zoo_name}
# OpenMMLab weight files end in the first 8 hex digits of their sha256.
SHA256_PREFIX = re.compile(r"-([0-9a-f]{8})\.pth$")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 1200 models in a second


def _read(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_LOADER)  # noqa: S506 - a safe loader


@dataclass(frozen=True)
class ZooModel:
    name: str  # the metafile's Name
    codebase: str
    config: Path  # the config file inside the installed package
    weights: str | None  # URL
    task: str  # detection, instance_segmentation, segmentation, or "other: <metafile task>"
    dataset: str
    metrics: dict[str, float] = field(default_factory=dict)  # published, deploybench's keys

    @property
    def stem(self) -> str:
        return self.config.stem

    @property
    def config_ref(self) -> str:
        """`mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py`: the config in whichever
        environment runs the step (the host's, a container's, a cluster node's)."""
        parts = self.config.parts
        inside = parts[len(parts) - 1 - parts[::-1].index("configs") + 1:]  # after .mim/configs
        return f"{self.codebase}::{'/'.join(inside)}"

    @property
    def sha256_prefix(self) -> str | None:
        match = SHA256_PREFIX.search(self.weights or "")
        return match.group(1) if match else None

    @property
    def supported(self) -> bool:
        return self.task in TASKS.values() and self.weights is not None


def config_path(spec: Path | str) -> Path:
    """A config file, or `mmdet::<path>` / `mmseg::<path>`: a config the installed codebase
    ships (what zoo models name, so that it resolves wherever the step runs)."""
    codebase, sep, relative = str(spec).partition("::")
    if not sep:
        return Path(spec)
    import importlib.util

    found = importlib.util.find_spec(codebase) if codebase in CODEBASES else None
    if found is None or found.origin is None:
        raise UserError(f"{spec}: {codebase!r} is not an installed codebase; valid: "
                        f"{', '.join(CODEBASES)}")
    return Path(found.origin).parent / ".mim" / "configs" / relative


def _package_dir(codebase: str) -> Path | None:
    spec = importlib.util.find_spec(codebase)
    return Path(spec.origin).parent / ".mim" if spec and spec.origin else None


def _task_and_metrics(results: Any) -> tuple[str, str, dict[str, float]]:
    results = [results] if isinstance(results, dict) else list(results or [])
    tasks = [r.get("Task", "") for r in results]
    metrics: dict[str, float] = {}
    for r in results:
        for name, value in (r.get("Metrics") or {}).items():
            if name in METRICS and isinstance(value, int | float):
                key, scale = METRICS[name]
                metrics[key] = round(value * scale, 4)
    known = [TASKS[t] for t in tasks if t in TASKS]
    if "instance_segmentation" in known:
        task = "instance_segmentation"
    elif known:
        task = known[0]
    else:
        task = f"other: {tasks[0]}" if tasks else "other: unknown"
    dataset = next((r.get("Dataset", "") for r in results if r.get("Dataset")), "")
    return task, dataset, metrics


def _models_of(codebase: str, root: Path) -> list[ZooModel]:
    index = root / "model-index.yml"
    if not index.is_file():
        return []
    models = []
    for metafile in _read(index).get("Import", []):
        data = _read(root / metafile)
        if not isinstance(data, dict):
            continue  # a metafile of another shape (mmdet's objects365)
        for entry in data.get("Models") or []:
            if not entry.get("Config"):
                continue
            task, dataset, metrics = _task_and_metrics(entry.get("Results"))
            weights = entry.get("Weights")  # tracking models list several: not one model
            models.append(ZooModel(name=entry["Name"], codebase=codebase,
                                   config=root / entry["Config"],
                                   weights=weights if isinstance(weights, str) else None,
                                   task=task, dataset=dataset, metrics=metrics))
    return models


@cache
def index() -> tuple[ZooModel, ...]:
    """Every model of the installed codebases' metafiles (read once per process)."""
    models: list[ZooModel] = []
    for codebase in CODEBASES:
        root = _package_dir(codebase)
        if root is not None:
            models += _models_of(codebase, root)
    return tuple(models)


@cache
def _by_name_and_stem() -> tuple[dict[str, ZooModel], dict[str, ZooModel]]:
    models = index()
    return {m.name: m for m in models}, {m.stem: m for m in models}


def lookup(name: str) -> ZooModel:
    """A model by its metafile Name or config stem; a name that is neither gets the closest."""
    models = index()
    by_name, by_stem = _by_name_and_stem()
    found = by_name.get(name) or by_stem.get(name)
    if found:
        return found
    if not models:
        raise UserError("no model zoo found: mmdet / mmseg are not installed with their "
                        "metafiles (.mim/model-index.yml); run the set-up (make setup)")
    close = difflib.get_close_matches(name, list(by_name) + list(by_stem), n=5, cutoff=0.6)
    hint = f"; closest: {', '.join(dict.fromkeys(close))}" if close else ""
    raise UserError(f"no zoo model named {name!r} in mmdet or mmseg{hint} (browse: "
                    "`deploybench zoo list --grep PATTERN`)")


def search(task: str | None = None, grep: str | None = None,
           dataset: str | None = None) -> list[ZooModel]:
    try:
        pattern = re.compile(grep, re.IGNORECASE) if grep else None
    except re.error as err:
        raise UserError(f"--grep {grep!r} is not a regular expression ({err}); e.g. "
                        "'^retinanet_r50' or 'segformer'") from None
    return [m for m in index()
            if (task is None or m.task == task)
            and (dataset is None or m.dataset.lower() == dataset.lower())
            and (pattern is None or pattern.search(m.name) or pattern.search(m.stem))]


def describe(model: ZooModel, shape: tuple[tuple[int, int], bool] | str | None = None) -> str:
    """What `deploybench zoo show` prints; `shape`: the default input shape (and whether the
    test pipeline makes it of every image), or why there is none."""
    metrics = ", ".join(f"{k} {v:g}" for k, v in model.metrics.items()) or "none published"
    lines = [f"name:      {model.name}", f"config:    {model.config}",
             f"codebase:  {model.codebase}", f"task:      {model.task}",
             f"dataset:   {model.dataset}", f"published: {metrics} ({model.dataset})",
             f"weights:   {model.weights or 'none listed'}"]
    if isinstance(shape, str):
        lines.append(f"shape:     none by default ({shape}); set input_shape")
    elif shape is not None:
        (height, width), fixed = shape
        lines.append(f"shape:     {height}x{width} (input_shape default: " + (
            "what its test pipeline makes)" if fixed else "its keep-ratio test pipeline's "
            "landscape size; images are fitted inside and padded)"))
    if model.sha256_prefix:
        lines.append(f"sha256:    starts with {model.sha256_prefix} (from the file name)")
    if not model.supported:
        lines.append("not benchmarkable here: "
                     + ("no weights listed" if model.weights is None else
                        f"deploybench runs {', '.join(TASKS.values())}"))
    return "\n".join(lines) + "\n"


def listing(models: list[ZooModel]) -> str:
    """What `deploybench zoo list` prints: a line per model."""
    lines = [f"{'name':<56} {'task':<22} {'dataset':<12} published"]
    for m in models:
        metrics = ", ".join(f"{k} {v:g}" for k, v in m.metrics.items())
        lines.append(f"{m.name:<56} {m.task:<22} {m.dataset:<12} {metrics}")
    return "\n".join(lines) + f"\n{len(models)} models\n"
