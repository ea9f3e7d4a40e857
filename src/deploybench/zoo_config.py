"""`models.<name>.zoo: NAME`: fill a model's entry from the installed model zoo, offline.

What the metafile and the model's own config say (task, config path, weights URL, dataset,
published metrics, the input shape its test pipeline makes) fills every key the entry does not
give; keys given in the pipeline config win. Input shapes need the mmengine config read (a
fraction of a second per model, and mmengine imported), so they are remembered by config file
and its stat.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deploybench import zoo
from deploybench.errors import UserError


def _shapes_cache() -> Path:
    from deploybench.fetch import default_cache

    return default_cache() / "zoo-input-shapes.json"


def _shape_of(config: Path) -> dict[str, Any]:
    from deploybench.models.input_shape import default_input_shape
    from deploybench.models.loading import load_mm_config

    shape, fixed = default_input_shape(load_mm_config(config))
    return {"input_shape": list(shape), "resize_pipeline": not fixed}


def input_shape(config: Path, cache: Path | None = None) -> dict[str, Any]:
    """{input_shape: [h, w], resize_pipeline: bool} of a config's test pipeline, remembered
    in the download cache (shared between checkouts)."""
    cache = cache or _shapes_cache()
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
    if "input_shape" in entry:
        # A shape given here is set in the test pipeline: where it is the pipeline's own that
        # changes nothing, and it spares reading the config while planning.
        entry.setdefault("resize_pipeline", True)
        return []
    try:
        derived = input_shape(model.config)
    except UserError as err:
        return [f"models.{name}.input_shape: {model.name}: {err}; set it"]
    entry["input_shape"] = derived["input_shape"]
    entry.setdefault("resize_pipeline", derived["resize_pipeline"])
    return []
