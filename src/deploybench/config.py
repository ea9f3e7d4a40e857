"""The pipeline config: schema validation with defaults and semantic checks. What it plans
(cells and paths) is `plan.Plan`.

The Snakefile calls `validate` before any job is planned, so bad input fails up front with the
offending key named.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from deploybench import settings
from deploybench.errors import UserError
from deploybench.settings import SCHEMA_PATH  # noqa: F401 - where the config's keys are
from deploybench.zoo import config_path

# The schema's `name` (models, datasets, profile, run) without its anchors.
NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"


def _with_defaults(validator_class: Any) -> Any:
    """A validator that also fills in each property's schema default (Snakemake does the same)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict, instance: Any, schema: dict) -> Iterator:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    branches = error.schema.get("anyOf") if error.validator == "anyOf" else None
    if branches and all(set(b) == {"required"} for b in branches):
        # Alternative sets of keys: name what each lacks.
        lacking = ["; or ".join(", ".join(b["required"]) for b in branches)]
        missing = [k for k in branches[-1]["required"] if k not in error.instance]
        return (f"give {lacking[0]} (missing: {', '.join(missing)})")
    # "not valid under any of the given schemas" says nothing: say what the key takes instead.
    if error.validator in ("oneOf", "anyOf", "pattern") and "description" in error.schema:
        what = "key" if "propertyNames" in error.schema_path else "value"
        return f"{what} {error.instance!r} is not valid; expected {error.schema['description']}"
    retired = sorted(set(RETIRED) & set(error.instance)) \
        if error.validator == "additionalProperties" and isinstance(error.instance, dict) else []
    if retired and _where(error) == "measure":
        return f"{error.message}: {'; '.join(RETIRED[k] for k in retired)}"
    if _string_from_cli(error):
        return (f"{error.message}; if it was given with --config: Snakemake passes a value "
                "inside a mapping there as a string, so set it in a YAML file given with "
                "--configfile")
    return error.message


# measure settings of the time before measure groups, and what replaced them
RETIRED = {"repeats": "measure.repeats is gone: each model's cells are timed side by side in "
                      "interleaved rounds until their speed-ups are known to measure.precision",
           "min_iters": "measure.min_iters is gone: use measure.min_rounds"}
_YAML_TYPES = {"integer": (int,), "number": (int, float), "boolean": (bool,)}


def _string_from_cli(error: jsonschema.ValidationError) -> bool:
    """A string where a number or boolean belongs, which YAML would read as one: the shape
    `--config 'key={nested: 1}'` gives (Snakemake reads it with YAML's BaseLoader)."""
    wanted = error.validator_value if error.validator == "type" else None
    if not isinstance(error.instance, str) or not isinstance(wanted, str | list):
        return False
    try:
        parsed = yaml.safe_load(error.instance)
    except yaml.YAMLError:
        return False
    return any(type(parsed) in _YAML_TYPES.get(t, ()) for t in  # bool is no integer here
               ([wanted] if isinstance(wanted, str) else wanted))


def validate(config: dict[str, Any], source: str = "config",
             require_data: bool = True) -> dict[str, Any]:
    """A validated, default-filled copy of `config`; raises UserError naming every bad key.
    `require_data=False` (a dry run plans without the data): a dataset not on disk is a
    warning, not an error."""
    from deploybench.backends import names
    from deploybench.metrics import gated

    schema = settings.schema()
    # The backends are the registry's (plugins included), not a list kept in the schema.
    schema["properties"]["matrix"]["properties"]["backends"]["items"]["enum"] = list(names())
    # A gate names a metric the gates judge (deploybench.metrics): a misspelt one gates nothing.
    schema["properties"]["gates"]["propertyNames"] = {"enum": gated()}
    config = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.validators.validator_for(schema))(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  {_where(e)}: {_message(e)}" for e in errors]
        raise UserError(f"{source} is invalid:\n" + "\n".join(lines))
    _resolve_zoo_models(config, source)
    _check_references(config, source, require_data)
    return config


def _resolve_zoo_models(config: dict[str, Any], source: str) -> None:
    """Fill `zoo:` models from the installed metafiles (only imported when one is used)."""
    zoo_models = {name: m for name, m in config["models"].items() if "zoo" in m}
    if not zoo_models:
        return
    from deploybench.zoo_config import resolve

    problems = [p for name, m in zoo_models.items()
                for p in resolve(name, m, config["datasets"])]
    if problems:
        raise UserError(f"{source} is invalid:\n" + "\n".join(f"  {p}" for p in problems))


def _check_references(config: dict[str, Any], source: str, require_data: bool = True) -> None:
    models, datasets = config["models"], config["datasets"]
    problems = []
    if config["runtime"] != "local" and config["profile"] == "auto":
        problems.append(f"profile: 'auto' names the docs after the machine Snakemake runs on, "
                        f"but with runtime: {config['runtime']} the cells run in an image; set "
                        "profile to the runner's hardware profile (e.g. --config "
                        "profile=h100-sxm)")
    for name in config["matrix"]["models"]:
        if name not in models:
            problems.append(f"matrix.models: unknown model {name!r}; valid: {', '.join(models)}")
    for name, model in models.items():
        if model["dataset"] not in datasets:
            problems.append(f"models.{name}.dataset: unknown dataset {model['dataset']!r}; "
                            f"valid: {', '.join(datasets)}")
        if not model["checkpoint"].get("sha256"):
            from deploybench.checksum_lock import expected

            try:
                expected(model["checkpoint"]["url"], None, config["fetch"]["lock"])
            except UserError as err:
                problems.append(f"models.{name}.checkpoint: {err}")
        if "::" not in model["config"]:
            problems += _path_problems(f"models.{name}.config", model["config"])
        if not config_path(model["config"]).is_file():
            problems.append(f"models.{name}.config: file {model['config']} does not exist")
    for name, dataset in datasets.items():
        entry_problems = dataset_problems(name, dataset)
        absent = [] if entry_problems else missing_data(name, dataset)
        problems += entry_problems + (absent if require_data else [])
        for problem in absent if not require_data else []:
            print(f"warning: {problem} (planned anyway: a dry run)", file=sys.stderr)
    if not problems:
        problems += _planning_problems(config)
    if problems:
        raise UserError(f"{source} is invalid:\n" + "\n".join(f"  {p}" for p in problems))


def dataset_problems(name: str, dataset: dict[str, Any]) -> list[str]:
    """What is wrong with a dataset's entry itself."""
    kind, path = dataset["kind"], dataset.get("path")
    if dataset["download"] and (kind != "coco" or path):
        return [f"datasets.{name}.download: only a coco dataset is downloaded, into "
                f"resources/data/{name}: remove path (or download)"]
    if any(not (a.get("md5") or a.get("sha256")) for a in dataset.get("archives") or []):
        return [f"datasets.{name}.archives: give each archive an md5 or a sha256"]
    if not path and kind in ("directory", "coco", "cityscapes") and not dataset["download"]:
        return [f"datasets.{name}.path: required for kind {kind!r}"]
    return _path_problems(f"datasets.{name}.path", path) if path else []


def missing_data(name: str, dataset: dict[str, Any]) -> list[str]:
    """A dataset on disk must be there, laid out as its kind says; what to do if not."""
    from deploybench.data.layouts import missing

    if dataset["kind"] == "synthetic" or dataset["download"]:
        return []  # a rule makes it
    return [f"datasets.{name}.path: {problem}"
            for problem in missing(dataset["kind"], Path(dataset["path"]))]


def _path_problems(key: str, path: str) -> list[str]:
    """A relative path must stay in the working tree: the config cannot make a step read or
    write elsewhere by `..`. An absolute path is the user's explicit choice and is kept."""
    if Path(path).is_absolute():
        return []
    here = Path.cwd().resolve()
    if not (here / path).resolve().is_relative_to(here):
        return [f"{key}: {path} leads outside the working directory {here}; give a path inside "
                "it, or an absolute path if you mean one elsewhere"]
    return []


def _planning_problems(config: dict[str, Any]) -> list[str]:
    """A matrix entry that plans nothing is a mistake, not a run with nothing to do."""
    from deploybench.backends import spec, supports

    matrix = config["matrix"]
    problems = []
    for backend in matrix["backends"]:
        has = [f"{d} {p}" for d in matrix["devices"] for p in matrix["precisions"]
               if supports(backend, d, p)]
        if not has:
            offered = "; ".join(f"{d}: {', '.join(ps)}"
                                for d, ps in spec(backend).support.items())
            problems.append(
                f"matrix.backends: {backend} plans no cell with devices "
                f"{matrix['devices']} and precisions {matrix['precisions']}; {backend} has "
                f"{offered} (docs/backends.md): add one of those or remove {backend}")
    return problems + _training_problems(config)


def _training_problems(config: dict[str, Any]) -> list[str]:
    """Training settings that plan nothing: a device outside the matrix, amp without CUDA."""
    train, devices = config["train"], config["matrix"]["devices"]
    if not train["enabled"]:
        return []
    outside = [d for d in train["devices"] if d not in devices]
    if outside:
        return [f"train.devices: {outside} not in matrix.devices {devices}: training runs on "
                "the devices the run measures; add them there or remove them here"]
    devices = [d for d in devices if not train["devices"] or d in train["devices"]]
    if "cuda" not in devices and "fp32" not in train["precisions"]:
        return [f"train.precisions: {train['precisions']} plans no training cell with devices "
                f"{devices}: amp (mixed precision) trains on a CUDA device only; add fp32 to "
                "train on the CPU, add cuda to matrix.devices, or set train.enabled: false"]
    return []


def default_gates() -> dict[str, dict[str, float]]:
    """The schema's default accuracy gates (what a config without `gates` gets)."""
    schema = settings.schema()
    return {k: v["default"] for k, v in schema["properties"]["gates"]["properties"].items()}


def read_yaml(path: Path | str) -> dict[str, Any]:
    """A config file's content; a syntax error names the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise UserError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config is a mapping of keys (datasets, models, ...), not "
                        f"a {type(data).__name__}")
    return data


def load(path: Path | str) -> dict[str, Any]:
    return validate(read_yaml(path), source=str(path))
