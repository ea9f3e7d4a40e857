"""`models.<name>.zoo: NAME`: fill a model's entry from the installed model zoo, offline.

What the metafile and the model's own config say (task, config path, weights URL, dataset,
published metrics, the input shape its test pipeline makes) fills every key the entry does not
give; keys given in the pipeline config win. Input shapes need the mmengine config read (a
fraction of a second per model), so they are remembered by config file and its stat.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deploybench import zoo
from deploybench.errors import UserError

SHAPES_CACHE = Path("resources/.zoo-input-shapes.json")


def _shape_of(config: Path) -> dict[str, Any]:
    from deploybench.models.input_shape import default_input_shape
    from deploybench.models.loading import load_mm_config

    shape, fixed = default_input_shape(load_mm_config(config))
    return {"input_shape": list(shape), "resize_pipeline": not fixed}


def input_shape(config: Path, cache: Path = SHAPES_CACHE) -> dict[str, Any]:
    """{input_shape: [h, w], resize_pipeline: bool} of a config's test pipeline."""
    stat = config.stat()
    key = f"{config}:{stat.st_size}:{stat.st_mtime_ns}"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in known:
        from deploybench.atomic import write_json

        known[key] = _shape_of(config)
        write_json(cache, known)
    return known[key]


def resolve(name: str, entry: dict[str, Any], datasets: dict[str, Any]) -> list[str]:
    """Fill `entry` (models.<name>) in place from its zoo model; the problems found, if any."""
    where = f"models.{name}.zoo"
    try:
        model = zoo.lookup(entry["zoo"])
    except UserError as err:
        return [f"{where}: {err}"]
    if not model.supported:
        return [f"{where}: {model.name} is {model.task}"
                + (" with no weights listed" if model.weights is None else "")
                + f"; deploybench runs {', '.join(zoo.TASKS.values())}"]
    entry.setdefault("task", model.task)
    entry.setdefault("config", model.config_ref)
    entry.setdefault("checkpoint", {"url": model.weights})
    entry.setdefault("published", dict(model.metrics))
    if "dataset" not in entry:
        key = model.dataset.lower()
        if key not in datasets:
            return [f"models.{name}.dataset: {model.name} is evaluated on {model.dataset}; add a "
                    f"dataset named {key!r} (datasets.{key}) or set models.{name}.dataset"]
        entry["dataset"] = key
    try:
        derived = input_shape(model.config)
    except UserError as err:
        if "input_shape" in entry:
            derived = {"input_shape": entry["input_shape"], "resize_pipeline": True}
        else:
            return [f"models.{name}.input_shape: {model.name}: {err}; set it"]
    entry.setdefault("input_shape", derived["input_shape"])
    # A shape the pipeline does not make of every image by itself is set in the pipeline.
    entry.setdefault("resize_pipeline", derived["resize_pipeline"]
                     or list(entry["input_shape"]) != derived["input_shape"])
    return []
