"""The plan of a validated config: which cells run, and where each file lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploybench.fetch import Expected
from deploybench.provenance import hardware_profile
from deploybench.results import Cell, shape_tag

# What `deploybench report` writes and `deploybench publish` copies to reports/<profile>/.
REPORT_FILES = ("README.md", "benchmark.md", "results.csv", "environment.json", "records.jsonl",
                "latency-accuracy.svg", "stages.svg", "latency-distribution.svg")
# Drawn only where a batch above 1 is planned (records with a batch above 1).
OPTIONAL_REPORT_FILES = ("throughput.svg",)


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
        """Every planned cell: the matrix, less what a backend does not have at all (its
        spec's `support`)."""
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
        """(model, shape, backend, device, precision) of every build the planned cells need,
        and of the builds those start from."""
        from deploybench.backends.registry import builds

        known = builds()
        needed = {(c.model, c.shape, c.backend, c.device, c.precision) for c in self.cells()
                  if (c.backend, c.device, c.precision) in known}
        todo = list(needed)
        while todo:
            model, shape, *key = todo.pop()
            source = known[tuple(key)].source  # type: ignore[index]
            if source and (model, shape, *source) not in needed:
                needed.add((model, shape, *source))
                todo.append((model, shape, *source))
        return sorted(needed)

    def exported(self) -> list[tuple[str, str]]:
        """(model, shape) of every ONNX export the planned cells need, in plan order."""
        from deploybench.backends import runs_file

        cells = [c for c in self.cells() if runs_file(c.backend)]
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

    def logs_dir(self) -> str:
        """This run's step logs: a later run under another key keeps this one's."""
        return f"logs/{self.profile}/{self.run}"

    def settings(self, section: str) -> str:
        """The config's `section` as its steps read it (`deploybench.settings`)."""
        return f"{self.results_dir()}/settings/{section}.json"

    def onnx(self, model: str, shape: str) -> str:
        return f"{self.results_dir()}/export/{model}/{shape}.onnx"

    def saved_input(self, model: str, shape: str) -> str:
        """The export's first test images through the test pipeline (as many as the largest
        batch): what a measure repeat without the stage breakdown times a model file on."""
        return f"{self.results_dir()}/export/{model}/{shape}.input.npy"

    def export_result(self, model: str, shape: str) -> str:
        return f"{self.results_dir()}/export/{model}/{shape}.json"

    def built(self, model: str, shape: str, backend: str, device: str, precision: str) -> str:
        from deploybench.backends.registry import builds

        artifact = builds()[backend, device, precision].artifact
        return f"{self.results_dir()}/build/{model}/{shape}/{artifact}"

    def build_result(self, model: str, shape: str, backend: str, device: str,
                     precision: str) -> str:
        return self.built(model, shape, backend, device, precision) + ".json"

    def artifact(self, model: str, shape: str, backend: str, device: str,
                 precision: str) -> str | None:
        """The file a cell's backend runs; None where it runs the checkpoint itself."""
        from deploybench.backends import runs_file
        from deploybench.backends.registry import builds

        if (backend, device, precision) in builds():
            return self.built(model, shape, backend, device, precision)
        return self.onnx(model, shape) if runs_file(backend) else None

    def reference(self, model: str, shape: str) -> str:
        return f"{self.results_dir()}/reference/{model}/{shape}.npz"

    def build_source(self, model: str, shape: str, backend: str, device: str,
                     precision: str) -> str:
        """The model a build starts from: another build's artifact where the build's spec
        says so (TensorRT fp16 and int8), else the export."""
        from deploybench.backends.registry import builds

        source = builds()[backend, device, precision].source
        return self.built(model, shape, *source) if source else self.onnx(model, shape)

    def cell_result(self, step: str, cell: Cell) -> str:
        return (f"{self.results_dir()}/{step}/{cell.model}/{cell.shape}/{cell.device}/"
                f"{cell.backend}-{cell.precision}-b{cell.batch}.json")

    def cell_results(self, cell: Cell) -> list[tuple[str, str]]:
        """(step, path) of every result a cell has: its measurement, then its evaluation.
        Accuracy and parity are per image: evaluated at batch 1 only."""
        results = [("measure", self.cell_result("measure", cell))]
        return results + ([("evaluate", self.cell_result("evaluate", cell))]
                          if cell.batch == 1 else [])

    def train_batch(self, model: str) -> int | None:
        """Images per training iteration: the model's `train_batch_size`, else
        `train.batch_size`; None for its config's own."""
        own = self.model(model).get("train_batch_size")
        return own if own is not None else self.config["train"]["batch_size"]

    def train_cells(self) -> list[Cell]:
        """Every planned training cell: model x device (`train.devices` of `matrix.devices`)
        x training precision (amp on CUDA only). Its batch is the batch size asked for, 0 for
        the config's own."""
        train = self.config["train"]
        if not train["enabled"]:
            return []
        devices = [d for d in self.config["matrix"]["devices"]
                   if not train["devices"] or d in train["devices"]]
        return [Cell(m, self.model(m)["task"], "pytorch", p, self.train_batch(m) or 0, d, "")
                for m in self.model_names for d in devices
                for p in train["precisions"] if p == "fp32" or d == "cuda"]

    def train_result(self, cell: Cell) -> str:
        return f"{self.results_dir()}/train/{cell.model}/{cell.device}/{cell.precision}.json"

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

    def artifact_records(self) -> list[tuple[Path, Path]]:
        """(artifact, the result of the step that made it) of every export and build."""
        return ([(Path(self.onnx(m, s)), Path(self.export_result(m, s)))
                 for m, s in self.exported()]
                + [(Path(self.built(*b)), Path(self.build_result(*b))) for b in self.builds()])

    def all_results(self) -> list[str]:
        """Every result file the report merges, in a stable order."""
        exports = [self.export_result(m, s) for m, s in self.exported()]
        exports += [self.build_result(*build) for build in self.builds()]
        return (exports + [path for c in self.cells() for _, path in self.cell_results(c)]
                + [self.train_result(c) for c in self.train_cells()])


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
