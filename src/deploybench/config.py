"""The pipeline config: schema validation with defaults, semantic checks, cells and paths.

The Snakefile calls `validate` before any job is planned, so bad input fails up front with the
offending key named.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from deploybench.errors import UserError
from deploybench.fetch import Expected
from deploybench.provenance import hardware_profile
from deploybench.results import Cell, shape_tag
from deploybench.zoo import config_path

# Backends that run the exported ONNX model as it is (a built artifact where BUILDS says so).
ONNX_BACKENDS = ("onnxruntime", "onnxruntime_trt", "openvino")
# (backend, device, precision) -> the build step's artifact file name: made from the exported
# model (or from another artifact, the int8 QDQ model for TensorRT int8) by `deploybench build`.
BUILDS: dict[tuple[str, str, str], str] = {
    ("onnxruntime", "cpu", "int8"): "onnxruntime-int8.onnx",
    # Not a cell: the symmetric int8 QDQ model TensorRT int8 is built from (TensorRT takes only
    # symmetric int8; ONNX Runtime's own CPU int8 model has asymmetric uint8 activations).
    ("qdq", "cpu", "int8"): "tensorrt-int8-qdq.onnx",
    ("onnxruntime", "cuda", "fp16"): "onnxruntime-fp16.onnx",
    ("openvino", "cpu", "int8"): "openvino-int8.xml",
    ("tensorrt", "cuda", "fp32"): "tensorrt-fp32.engine",
    ("tensorrt", "cuda", "fp16"): "tensorrt-fp16.engine",
    ("tensorrt", "cuda", "int8"): "tensorrt-int8.engine",
}
# What `deploybench report` writes and `deploybench publish` copies to reports/<profile>/.
REPORT_FILES = ("README.md", "benchmark.md", "results.csv", "environment.json", "records.jsonl",
                "latency-accuracy.svg", "stages.svg", "latency-distribution.svg")
# Drawn only where a batch above 1 is planned (records with a batch above 1).
OPTIONAL_REPORT_FILES = ("throughput.svg",)
# The schema's `name` (models, datasets, profile, run) without its anchors.
NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


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


def validate(config: dict[str, Any], schema_path: Path = SCHEMA_PATH,
             source: str = "config", require_data: bool = True) -> dict[str, Any]:
    """A validated, default-filled copy of `config`; raises UserError naming every bad key.
    `require_data=False` (a dry run plans without the data): a dataset not on disk is a
    warning, not an error."""
    schema = yaml.safe_load(schema_path.read_text())
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
    from deploybench.backends import SUPPORT

    matrix = config["matrix"]
    problems = []
    for backend in matrix["backends"]:
        has = [f"{d} {p}" for d in matrix["devices"] for p in matrix["precisions"]
               if p in SUPPORT[backend].get(d, ())]
        if not has:
            offered = "; ".join(f"{d}: {', '.join(ps)}" for d, ps in SUPPORT[backend].items())
            problems.append(
                f"matrix.backends: {backend} plans no cell with devices "
                f"{matrix['devices']} and precisions {matrix['precisions']}; {backend} has "
                f"{offered} (README, Backends): add one of those or remove {backend}")
    return problems


def dry_run(workflow: Any, argv: list[str]) -> bool:
    """Whether Snakemake only plans (`-n`). Its executor, which knows, is chosen after the
    Snakefile is read, so the command line says it here."""
    if getattr(workflow, "dryrun", False):
        return True
    return any(arg in ("--dry-run", "--dryrun") or (
        arg.startswith("-") and not arg.startswith("--") and "n" in arg[1:]) for arg in argv[1:])


# Executors that run the jobs on this machine.
LOCAL_EXECUTORS = ("local", "dryrun", "touch")


def submits_jobs(argv: list[str], env: dict[str, str], profile_dirs: list[Path]) -> bool:
    """Whether this Snakemake sends its jobs to other machines (`--executor slurm`, given
    directly or by a `--profile` or $SNAKEMAKE_PROFILE). Snakemake picks its executor after it
    has read the Snakefile, so the command line and the profile's config.yaml say it here; a
    profile named without a path is looked up in `profile_dirs`."""
    executor, profiles = None, [env["SNAKEMAKE_PROFILE"]] if env.get("SNAKEMAKE_PROFILE") else []
    args = argv[1:]
    for i, arg in enumerate(args):
        for flag in ("--executor", "-e", "--profile"):
            if arg == flag and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(f"{flag}=") and flag.startswith("--"):
                value = arg.split("=", 1)[1]
            else:
                continue
            if flag == "--profile":
                profiles.append(value)
            else:
                executor = value
    for profile in profiles if executor is None else []:
        for base in [Path.cwd(), *profile_dirs]:
            found = base / profile / "config.yaml"
            if found.is_file():
                executor = (yaml.safe_load(found.read_text()) or {}).get("executor", executor)
                break
    return executor is not None and executor not in LOCAL_EXECUTORS


def default_gates() -> dict[str, dict[str, float]]:
    """The schema's default accuracy gates (what a config without `gates` gets)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
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


@dataclass(frozen=True)
class Plan:
    """Typed view of a validated config: which cells run, and where each file lives.

    Paths take a model and a shape tag ("160x160"): every step runs per input shape.
    """

    config: dict[str, Any]

    @property
    def profile(self) -> str:
        profile = self.config["profile"]
        if isinstance(profile, list):
            raise TypeError("a Plan is of one hardware profile: make it with profile_plans()")
        return hardware_profile() if profile == "auto" else profile

    @property
    def model_names(self) -> list[str]:
        return self.config["matrix"]["models"] or list(self.config["models"])

    def model(self, name: str) -> dict[str, Any]:
        return self.config["models"][name]

    def shapes(self, model: str) -> list[str]:
        """The shape tags a model runs at: its own `shapes`, else `matrix.shapes`; `default`
        is its `input_shape`. In the configured order, each once."""
        entry = self.model(model)
        listed = entry.get("shapes") or self.config["matrix"]["shapes"]
        tags = [shape_tag(entry["input_shape"] if s == "default" else s) for s in listed]
        return list(dict.fromkeys(tags))

    def cells(self) -> list[Cell]:
        """Every planned cell: the matrix, less what a backend does not have at all (SUPPORT)."""
        from deploybench.backends import supports

        matrix = self.config["matrix"]
        return [Cell(m, self.model(m)["task"], b, p, batch, d, shape) for m in self.model_names
                for shape in self.shapes(m) for batch in self.batches(m)
                for d in matrix["devices"] for b in matrix["backends"]
                for p in matrix["precisions"] if supports(b, d, p)]

    def batches(self, model: str) -> list[int]:
        """The batch sizes a model is measured at: its own `batches`, else `matrix.batches`."""
        return sorted(self.model(model).get("batches") or self.config["matrix"]["batches"])

    def max_batch(self, model: str) -> int:
        """The largest batch measured: above 1, the export gets a dynamic batch axis (and
        TensorRT a profile up to it); batch-1 models stay fully static, as deployments usually
        run them."""
        return max(self.batches(model))

    def builds(self) -> list[tuple[str, str, str, str, str]]:
        """(model, shape, backend, device, precision) of every build the planned cells need."""
        needed = {(c.model, c.shape, c.backend, c.device, c.precision) for c in self.cells()
                  if (c.backend, c.device, c.precision) in BUILDS}
        sources = {"int8": ("qdq", "cpu", "int8"), "fp16": ("onnxruntime", "cuda", "fp16")}
        needed |= {(m, s, *sources[p]) for m, s, b, _, p in set(needed)
                   if b == "tensorrt" and p in sources}
        return sorted(needed)

    def exported(self) -> list[tuple[str, str]]:
        """(model, shape) of every ONNX export the planned cells need, in plan order."""
        cells = [c for c in self.cells() if c.backend in ONNX_BACKENDS or c.backend == "tensorrt"]
        return list(dict.fromkeys((c.model, c.shape) for c in cells))

    # --- paths (relative to the Snakemake working directory) ---------------------------------
    def dataset_dir(self, name: str) -> str:
        return self.config["datasets"][name].get("path") or f"resources/data/{name}"

    def archive_args(self, dataset: str) -> list[str]:
        """`--archive URL CHECKSUM` for each archive a downloaded dataset unpacks."""
        from deploybench.data.download import COCO_ARCHIVES

        listed = self.config["datasets"][dataset].get("archives")
        archives = [(a["url"], f"md5:{a['md5']}" if a.get("md5") else f"sha256:{a['sha256']}")
                    for a in listed] if listed else COCO_ARCHIVES
        return [arg for url, checksum in archives for arg in ("--archive", url, checksum)]

    def published_args(self, model: str) -> list[str]:
        """`--published METRIC=VALUE` for each published metric of the model."""
        return [arg for metric, value in sorted(self.model(model).get("published", {}).items())
                for arg in ("--published", f"{metric}={value:g}")]

    def dataset_planned(self, name: str) -> bool:
        """The dataset is on disk, or a rule makes it (a dry run plans without the others)."""
        dataset = self.config["datasets"][name]
        return (dataset["kind"] == "synthetic" or dataset["download"]
                or Path(self.dataset_dir(name)).is_dir())

    def evaluate_limit(self, model: str) -> int | None:
        """Test images a model is evaluated on: its dataset's `subset` and `evaluate.limit`,
        the smaller; None for the whole split."""
        limits = [self.config["datasets"][self.model(model)["dataset"]]["subset"],
                  self.config["evaluate"]["limit"]]
        return min((n for n in limits if n), default=None)

    @staticmethod
    def checkpoint(model: str) -> str:
        return f"resources/checkpoints/{model}.pth"

    @property
    def lock(self) -> str:
        return self.config["fetch"]["lock"]

    def checksum_args(self, model: str) -> list[str]:
        """How a step verifies a checkpoint: the config's sha256, or its entry in the lock
        file (read when the step runs: the first fetch records it)."""
        checkpoint = self.model(model)["checkpoint"]
        if checkpoint.get("sha256"):
            return ["--sha256", checkpoint["sha256"].lower()]
        return ["--lock", self.lock]

    def fetched_checkpoints(self) -> dict[Path, Expected]:
        """Each planned model's checkpoint path and what its sha256 must be (the config's or
        the lock file's; a prefix only for a file fetched but not yet locked)."""
        from deploybench.checksum_lock import expected

        return {Path(self.checkpoint(m)): expected(self.model(m)["checkpoint"]["url"],
                                                   self.model(m)["checkpoint"].get("sha256"),
                                                   self.lock)
                for m in self.model_names}

    @property
    def run(self) -> str:
        return self.config["run"]

    def profile_dir(self) -> str:
        """What every run on this profile shares (the TensorRT timing cache)."""
        return f"results/{self.profile}"

    def results_dir(self) -> str:
        """This run's results: a new `run` key measures everything again."""
        return f"{self.profile_dir()}/{self.run}"

    def onnx(self, model: str, shape: str) -> str:
        return f"{self.results_dir()}/export/{model}/{shape}.onnx"

    def saved_input(self, model: str, shape: str) -> str:
        """The export's first test images through the test pipeline (as many as the largest
        batch): what a measure repeat without the stage breakdown times a model file on."""
        return f"{self.results_dir()}/export/{model}/{shape}.input.npy"

    def export_result(self, model: str, shape: str) -> str:
        return f"{self.results_dir()}/export/{model}/{shape}.json"

    def built(self, model: str, shape: str, backend: str, device: str, precision: str) -> str:
        return f"{self.results_dir()}/build/{model}/{shape}/{BUILDS[backend, device, precision]}"

    def build_result(self, model: str, shape: str, backend: str, device: str,
                     precision: str) -> str:
        return str(Path(self.built(model, shape, backend, device, precision)).with_suffix(".json"))

    def artifact(self, model: str, shape: str, backend: str, device: str,
                 precision: str) -> str | None:
        """The file a cell's backend runs; None where it runs the checkpoint itself."""
        if (backend, device, precision) in BUILDS:
            return self.built(model, shape, backend, device, precision)
        return self.onnx(model, shape) if backend in ONNX_BACKENDS else None

    def reference(self, model: str, shape: str) -> str:
        return f"{self.results_dir()}/reference/{model}/{shape}.npz"

    def build_source(self, model: str, shape: str, backend: str, device: str,
                     precision: str) -> str:
        """The model a build starts from: TensorRT int8 and fp16 start from the QDQ and fp16
        models (explicit quantization; strongly typed networks from TensorRT 11), the rest
        from the export."""
        if backend == "tensorrt" and precision == "int8":
            return self.built(model, shape, "qdq", "cpu", "int8")
        if backend == "tensorrt" and precision == "fp16":
            return self.built(model, shape, "onnxruntime", "cuda", "fp16")
        return self.onnx(model, shape)

    def cell_result(self, step: str, cell: Cell) -> str:
        return (f"{self.results_dir()}/{step}/{cell.model}/{cell.shape}/{cell.device}/"
                f"{cell.backend}-{cell.precision}-b{cell.batch}.json")

    def cell_results(self, cell: Cell) -> list[tuple[str, str]]:
        """(step, path) of every result a cell has: its measurement, then its evaluation.
        Accuracy and parity are per image: evaluated at batch 1 only."""
        results = [("measure", self.cell_result("measure", cell))]
        return results + ([("evaluate", self.cell_result("evaluate", cell))]
                          if cell.batch == 1 else [])

    def group_combos(self, device: str) -> list[tuple[str, str]]:
        """(backend, precision) of the cells a measure group on `device` times side by side:
        every one the matrix plans there, in the matrix's order (the same for every model)."""
        from deploybench.backends import supports

        matrix = self.config["matrix"]
        return [(b, p) for b in matrix["backends"] for p in matrix["precisions"]
                if supports(b, device, p)]

    def measure_groups(self) -> dict[tuple[str, str, str, int], list[Cell]]:
        """(model, shape, device, batch) -> the cells timed together in one window: the
        cells a reader compares."""
        groups: dict[tuple[str, str, str, int], list[Cell]] = {}
        for c in self.cells():
            groups.setdefault((c.model, c.shape, c.device, c.batch), []).append(c)
        return groups

    def run_report_dir(self) -> str:
        """The run's own docs, made from its results; `publish` copies them to reports/."""
        return f"{self.results_dir()}/report"

    def run_report_files(self) -> list[str]:
        """The run's docs; the throughput figure where a batch above 1 is planned."""
        names = REPORT_FILES + (OPTIONAL_REPORT_FILES if any(
            self.max_batch(m) > 1 for m in self.model_names) else ())
        return [f"{self.run_report_dir()}/{name}" for name in names]

    def published_dir(self) -> str:
        return f"reports/{self.profile}"

    def published_stamp(self) -> str:
        """The DAG's final target. It lives with the run's results, not in the committed docs:
        a checkout that has the docs but not the results still runs every cell."""
        return f"{self.results_dir()}/published.json"

    def all_results(self) -> list[str]:
        """Every result file the report merges, in a stable order."""
        exports = [self.export_result(m, s) for m, s in self.exported()]
        exports += [self.build_result(*build) for build in self.builds()]
        return exports + [path for c in self.cells() for _, path in self.cell_results(c)]


def profiles(config: dict[str, Any]) -> list[str]:
    """The hardware profiles a run measures: `profile`, one name (or "auto") or several."""
    chosen = config["profile"]
    return [hardware_profile() if name == "auto" else name
            for name in (chosen if isinstance(chosen, list) else [chosen])]


def profile_plans(config: dict[str, Any]) -> dict[str, Plan]:
    """A Plan for each profile the run measures, in the configured order."""
    return {name: Plan({**config, "profile": name}) for name in profiles(config)}


def wildcard_plan(config: dict[str, Any]) -> Plan:
    """The plan whose paths hold a `{profile}` wildcard: the rules' output patterns."""
    return Plan({**config, "profile": "{profile}"})


def container_prefix(config: dict[str, Any]) -> str:
    """What `runtime: docker` puts before every step's command (shell-quoted)."""
    import shlex

    docker = config["docker"]
    args = ["deploybench", "container", "--target", docker["target"]]
    if docker["base"]:
        args += ["--base", docker["base"]]
    if docker["memory"]:
        args += ["--memory", docker["memory"]]
    return shlex.join([*args, "--"])


def model_args(plan: Plan, name: str, shape: str) -> str:
    """The CLI arguments that identify a model at one input shape to every step (shell-quoted).
    A shape other than the model's own `input_shape` also sets the test pipeline to it."""
    import shlex

    model = plan.model(name)
    dataset = plan.dataset_dir(model["dataset"])
    height, width = shape.split("x")
    checksum = plan.checksum_args(name)
    args = ["--model", name, "--task", model["task"], "--config", model["config"],
            "--checkpoint", plan.checkpoint(name), f"--checkpoint-{checksum[0][2:]}",
            checksum[1], "--data", dataset, "--input-shape", height, width]
    if checksum[0] == "--lock":
        args += ["--checkpoint-url", model["checkpoint"]["url"]]
    if shape != shape_tag(model["input_shape"]) or model.get("resize_pipeline"):
        args.append("--resize-pipeline")
    return shlex.join(args)
