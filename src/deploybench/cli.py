"""One entry point, one subcommand per pipeline step: `deploybench <step> --help`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from deploybench.measure import idle

# Before anything imports torch: its OpenMP runtime reads its idle spinning when it is loaded
# (the fork server runs this entry point too, so every step it forks has it).
idle.apply_env()

from deploybench import forkserver, watchdog  # noqa: E402
from deploybench.errors import CellSkipped, UserError  # noqa: E402
from deploybench.gpu_device import pin_gpu_environment  # noqa: E402
from deploybench.provenance import usable_cores  # noqa: E402
from deploybench.settings import default  # noqa: E402


def _cmd_data(args: argparse.Namespace) -> int:
    from deploybench.data.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(seed=args.seed, num_train=args.num_train, num_val=args.num_val,
                         image_size=args.image_size)
    generate(args.out, spec)
    print(f"wrote synthetic dataset {spec} to {args.out}")
    return 0


def _cmd_download_dataset(args: argparse.Namespace) -> int:
    from deploybench.data.download import download_dataset

    entries = download_dataset([tuple(a) for a in args.archive], Path(args.out))
    print(f"unpacked {', '.join(entries)} into {args.out}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from deploybench import checksum_lock
    from deploybench.fetch import check_checkpoint, default_cache, fetch, mirrored

    url = mirrored(args.url)
    expected = checksum_lock.expected(args.url, args.sha256, args.lock)

    def lock_it(sha256: str) -> None:
        if args.lock and not expected.whole:
            checksum_lock.record(args.lock, checksum_lock.key(args.url), sha256)
            print(f"recorded its sha256 {sha256} in {args.lock}")

    actual = fetch(url, expected, args.out, retries=args.retries, backoff=args.backoff,
                   cache=default_cache(), check=check_checkpoint, verified=lock_it)
    print(f"fetched {url} -> {args.out} (sha256 {actual}, verified against "
          f"{expected.source})")
    return 0


def _cell(args: argparse.Namespace, backend: str, precision: str):
    from deploybench.results import Cell, shape_tag

    return Cell(args.model, args.task, backend, precision, getattr(args, "batch", 1),
                getattr(args, "device", "cpu"), shape_tag(args.input_shape))


def _pipeline_shape(args: argparse.Namespace) -> tuple[int, int] | None:
    """The shape to set the test pipeline to, when the cell runs at a shape not its own."""
    return tuple(args.input_shape) if args.resize_pipeline else None


def _expected_shape(args: argparse.Namespace) -> list[int]:
    return [getattr(args, "batch", 1), 3, *args.input_shape]


def _cell_inputs(args: argparse.Namespace, threads: int = 0):
    """The cell's inputs; `threads`: the step's intra-op threads (default its --threads; 0:
    every usable core)."""
    from deploybench.cell import CellInputs

    threads = threads or getattr(args, "threads", 0) or usable_cores()
    artifact = Path(args.artifact) if getattr(args, "artifact", None) else None
    return CellInputs(Path(args.config), Path(args.checkpoint), Path(args.data), artifact,
                      args.device, threads, _pipeline_shape(args),
                      args.checkpoint_sha256)


def _used(args: argparse.Namespace) -> dict[str, str | None]:
    """The files a cell ran, recorded by their sha256 in its result's provenance."""
    return {"checkpoint": args.checkpoint, "artifact": getattr(args, "artifact", None)}


def _settings(args: argparse.Namespace, *keys: str) -> dict:
    return {k: getattr(args, k) for k in ("config", "checkpoint", "checkpoint_sha256",
                                          "input_shape", "resize_pipeline", *keys)}


def _cmd_export(args: argparse.Namespace) -> int:
    from deploybench.atomic import save_array
    from deploybench.cell import check_input_shape
    from deploybench.export.onnx_export import export_onnx
    from deploybench.models.adapter import ModelAdapter, load_adapter
    from deploybench.results import run_step

    def body():
        adapter = load_adapter(args.config, args.checkpoint, "cpu",
                               _pipeline_shape(args), args.checkpoint_sha256)
        dataset = adapter.dataset(args.data)
        _, sample, _ = next(adapter.batches(dataset, 1))
        check_input_shape(_expected_shape(args), tuple(sample.shape))
        sample = adapter.graph_input(sample)  # slide inference: the graph is one crop
        if args.saved_input:
            _, first, _ = next(adapter.batches(dataset, max(1, args.dynamic_batch)))
            save_array(Path(args.saved_input), adapter.graph_input(first).cpu().numpy())
        # Where the graph is not the usual tensor-mode network, the docs say what it holds.
        split = {"graph": adapter.graph, "in_pytorch": adapter.in_pytorch} \
            if adapter.in_pytorch or adapter.graph != ModelAdapter.graph else {}
        start = time.perf_counter()
        meta = export_onnx(adapter, sample, args.onnx, args.opset, args.dynamic_batch)
        return "ok", "", {"onnx": args.onnx, **split, **meta,
                          "seconds": time.perf_counter() - start}

    return run_step("export", _cell(args, "onnx", "fp32"), args.out,
                    _settings(args, "opset", "dynamic_batch"), [args.config], body,
                    {"checkpoint": args.checkpoint, "artifact": args.onnx})


def _cmd_build(args: argparse.Namespace) -> int:
    from deploybench.backends import skip_reason
    from deploybench.backends.placeholder import placeholder
    from deploybench.backends.registry import builds
    from deploybench.export.build import BuildOptions, build_artifact
    from deploybench.models.adapter import load_adapter
    from deploybench.results import run_step
    from deploybench.settings import section

    options = BuildOptions.of(section("build", args.settings),
                              Path(args.timing_cache) if args.timing_cache else None,
                              tuple(args.batches))

    def body():
        # an unknown build is refused by build_artifact, naming the builds there are
        known = builds().get((args.backend, args.device, args.precision))
        companions = known.companions if known else ()
        reason = skip_reason(args.backend, args.precision, args.device, job=True)
        if reason:
            placeholder(Path(args.artifact), companions=companions)
            return "skipped", reason, {}
        adapter = load_adapter(args.config, args.checkpoint, "cpu",
                               _pipeline_shape(args), args.checkpoint_sha256)
        try:
            return "ok", "", build_artifact(adapter, Path(args.data), args.backend, args.device,
                                            args.precision, Path(args.onnx), Path(args.artifact),
                                            options)
        except CellSkipped as err:  # this backend cannot build this model: say so downstream
            placeholder(Path(args.artifact), str(err), companions)
            raise

    return run_step("build", _cell(args, args.backend, args.precision), args.out,
                    {**_settings(args, "backend", "device", "precision"),
                     **{k: str(v) if isinstance(v, Path) else v
                        for k, v in options.__dict__.items()}}, [args.config], body,
                    {"checkpoint": args.checkpoint, "source": args.onnx, "artifact": args.artifact})


def _measure_members(args: argparse.Namespace) -> list[tuple[object, Path]]:
    """(member, result path) of each cell the group times: the --cell entries, or the one cell
    of --backend/--precision/--artifact/--out."""
    from deploybench.measure.group import Member

    cells = [tuple(c) for c in args.cell or []]
    if args.backend:
        cells.append((args.backend, args.precision, args.artifact or "-", args.out))
    if not cells or any(c[3] is None for c in cells) or (args.backend and not args.precision):
        raise UserError("measure needs cells: --cell BACKEND PRECISION ARTIFACT OUT (ARTIFACT "
                        "- for none), repeated, or --backend, --precision and --out")
    return [(Member(_cell(args, backend, precision), None if artifact == "-" else Path(artifact)),
             Path(out)) for backend, precision, artifact, out in cells]


def _cmd_measure(args: argparse.Namespace) -> int:
    """Time a group of cells side by side (deploybench.measure.group); one result per cell.
    A cell that failed fails the job, and then every cell's record is left beside its output
    (Snakemake removes the outputs of a failed job; the report still shows every cell)."""
    from dataclasses import asdict

    from deploybench.atomic import write_json
    from deploybench.measure.group import GroupSettings, measure_group
    from deploybench.results import failure_path, record
    from deploybench.settings import section

    members = _measure_members(args)
    for _, out in members:
        out.unlink(missing_ok=True)
        failure_path(out).unlink(missing_ok=True)
    measure = section("measure", args.settings)
    group = GroupSettings.of(measure, threads=measure["threads"] or usable_cores())
    common = {**_settings(args, "batch", "device"), "threads": group.threads,
              "group_settings": asdict(group)}
    saved = Path(args.saved_input) if args.saved_input else None
    try:
        outcomes = measure_group([m for m, _ in members], _cell_inputs(args, group.threads),
                                 _expected_shape(args), saved, group)
    except Exception as err:  # noqa: BLE001 - the group itself broke: every cell says why
        from deploybench.measure.worker import failure_reason

        why = failure_reason(err)
        outcomes = [("failed", why, {})] * len(members)
    failed = any(status == "failed" for status, _, _ in outcomes)
    for (member, out), (status, reason, data) in zip(members, outcomes, strict=True):
        settings = {**common, "backend": member.cell.backend, "precision": member.cell.precision}
        used = {"checkpoint": args.checkpoint,
                "artifact": str(member.artifact) if member.artifact else None}
        write_json(failure_path(out) if failed else out,
                   record("measure", member.cell, status, reason, data, settings, [args.config],
                          used))
        if status == "failed":
            print(f"error: measure failed for {member.cell.model}/{member.cell.backend}/"
                  f"{member.cell.precision}: {reason}")
    return 1 if failed else 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from deploybench.evaluate import ParitySettings, evaluate_cell
    from deploybench.results import run_step

    cell = _cell(args, args.backend, args.precision)
    parity = ParitySettings(Path(args.reference) if args.reference else None,
                            args.parity_images, args.parity_iou, args.parity_score_threshold)
    settings = {**_settings(args, "backend", "precision", "device", "limit", "reference",
                            "parity_images", "parity_iou", "parity_score_threshold"),
                "threads": args.threads or usable_cores()}
    per_image = Path(args.per_image_out) if args.per_image_out else None
    published = _published(args.published)

    def body():
        status, reason, data = evaluate_cell(cell, _cell_inputs(args), _expected_shape(args),
                                             args.limit, parity, per_image)
        return status, reason, {**data, "published": published} if published else data

    return run_step("evaluate", cell, args.out, settings, [args.config], body, _used(args))


def _cmd_train(args: argparse.Namespace) -> int:
    from deploybench.results import Cell, run_step
    from deploybench.settings import section
    from deploybench.training.cell import train_cell
    from deploybench.training.settings import TrainSettings

    values = section("train", args.settings)
    settings = TrainSettings.of(values)
    threads = args.threads or values["threads"] or usable_cores()
    # batch 0 in the cell's identity: the config's own train_dataloader.batch_size
    cell = Cell(args.model, args.task, "pytorch", args.precision, args.batch_size or 0,
                args.device, "")
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    recorded = {"config": args.config, "checkpoint": args.checkpoint,
                "checkpoint_sha256": args.checkpoint_sha256, "device": args.device,
                "precision": args.precision, "batch_size": args.batch_size, "threads": threads,
                "train_settings": values}

    def body():
        return train_cell(Path(args.config), Path(args.data), checkpoint,
                          args.checkpoint_sha256, args.device, args.precision, args.batch_size,
                          threads, settings)

    return run_step("train", cell, args.out, recorded, [args.config], body,
                    {"checkpoint": args.checkpoint})


def _published(pairs: list[str]) -> dict[str, float]:
    published = {}
    for pair in pairs:
        metric, _, value = pair.partition("=")
        try:
            published[metric] = float(value)
        except ValueError:
            raise UserError(f"--published {pair!r}: give METRIC=VALUE, e.g. bbox_mAP=0.374") \
                from None
    return published


def _cmd_reference(args: argparse.Namespace) -> int:
    from deploybench.evaluate import write_reference

    info = write_reference(_cell_inputs(args), _expected_shape(args), args.images, Path(args.out))
    print(f"wrote {args.out}: PyTorch fp32 outputs of {info['images']} test images")
    return 0


def _gates(text: str | None) -> dict:
    import json

    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise UserError(f"--gates is not JSON ({err}); give e.g. "
                        "'{\"bbox_mAP\": {\"int8\": 0.02}}'") from None


def _cmd_report(args: argparse.Namespace) -> int:
    from deploybench.plan import REPORT_FILES
    from deploybench.report.build import build_report

    failed, outside = build_report(args.results, args.profile, Path(args.out_dir),
                                   _gates(args.gates), args.run)
    if args.after_failure:
        # Written outside a Snakemake job: date the docs back so the next run rebuilds them.
        for name in REPORT_FILES:
            os.utime(Path(args.out_dir) / name, (1, 1))  # 1, not 0: Snakemake reads 0 as unset
    print(f"wrote {', '.join(REPORT_FILES)} to {args.out_dir} ({failed} failed cells, "
          f"{outside} accuracy gate checks outside tolerance)")
    if args.strict and (failed or outside):
        print("error: --strict: failed cells or accuracy outside its gate; see the report",
              file=sys.stderr)
        return 1
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from deploybench.report.publish import publish

    files = publish(Path(args.run_report), Path(args.to), Path(args.stamp) if args.stamp else None,
                    args.profile, _gates(args.gates), args.run)
    print(f"published {', '.join(map(str, files))}")
    return 0


def _cmd_records_remove(args: argparse.Namespace) -> int:
    import re

    from deploybench.config import NAME_PATTERN, load
    from deploybench.report.publish import remove

    if not re.fullmatch(NAME_PATTERN, args.profile):
        raise UserError(f"--profile {args.profile!r} is not a profile's name (letters, digits, "
                        "'_', '-', '.'); give the folder's name under reports/")
    docs = Path(args.reports) / args.profile
    gates = load(args.config)["gates"] if Path(args.config).is_file() else None
    count, files = remove(docs, args.model, gates, shape=args.shape, backend=args.backend,
                          device=args.device, precision=args.precision, batch=args.batch)
    print(f"removed {count} records of {args.model} from {docs}; rewrote "
          f"{', '.join(map(str, files))}")
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    from deploybench.backends.registry import table

    print(table(how=not args.brief), end="")
    return 0


def _cmd_machines(args: argparse.Namespace) -> int:
    from deploybench.report.machines import write_index

    reports = Path(args.reports)
    if not reports.is_dir():
        raise UserError(f"{reports} is not a directory; pass the folder that holds the "
                        "published profiles (reports/)")
    print(f"wrote {write_index(reports)}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from deploybench.atomic import write_text
    from deploybench.config import default_gates, load
    from deploybench.report.compare import compare, render

    gates = load(args.config)["gates"] if args.config else default_gates()
    result = compare(Path(args.base), Path(args.new), args.threshold, gates,
                     args.across_settings)
    body = render(result, args.threshold)
    if args.out:
        write_text(args.out, body)
    else:
        print(body)
    if args.summary_json:
        write_text(args.summary_json, json.dumps(
            {v: result.count(v) for v in sorted(set(result.cells.verdict))}
            | {"regressions": result.regressions}, sort_keys=True) + "\n")
    if args.fail_on == "regression" and result.regressions:
        print(f"error: {result.regressions} regressions (latency, failing cells or accuracy "
              "beyond its gate); see the comparison", file=sys.stderr)
        return 1
    return 0


def _image_spec(args: argparse.Namespace):
    from deploybench.container.image import ImageSpec

    return ImageSpec(args.target, args.base or None, args.cuda_arch or None)


def _cmd_container(args: argparse.Namespace) -> int:
    from deploybench.container.run import run_step

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command[:2] == ["deploybench", "fetch"]:
        # A download is not what the image pins: it runs on the host, which has the network,
        # the shared download cache and the (read-only in containers) lock file.
        return main(command[1:])
    return run_step(command, _image_spec(args), args.memory, require_gpu=args.require_gpu)


def _cmd_image(args: argparse.Namespace) -> int:
    from deploybench.container.image import build_image, prune_images

    spec = _image_spec(args)
    if args.image_action == "name":
        print(spec.name())
        return 0
    if args.image_action == "prune":
        removed, kept = prune_images(spec)
        for line in [f"removed {tag}" for tag in removed] + [f"kept {tag}" for tag in kept]:
            print(line)
        print(f"{len(removed)} removed; this checkout's image {spec.name()} is kept")
        return 0
    name, image_id, built = build_image(spec, Path(args.wheelhouse) if args.wheelhouse else None,
                                        require_tensorrt=args.tensorrt)
    print(f"{'built' if built else 'up to date, not rebuilt:'} {name} {image_id}")
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from snakemake.utils import update_config

    from deploybench.config import read_yaml, validate
    from deploybench.plan import Plan

    merged: dict = {}
    for path in args.files:  # merged as Snakemake merges --configfile overlays
        update_config(merged, read_yaml(path))
    plan = Plan(validate(merged, source=" + ".join(args.files)))
    print(f"valid: {len(plan.cells())} cells of {len(plan.model_names)} models")
    return 0


def _cmd_fixture_train(args: argparse.Namespace) -> int:
    from deploybench.fixture.train import train

    digest = train(Path(args.config), Path(args.data), Path(args.out),
                   Path(args.work_dir) if args.work_dir else None)
    print(f"wrote {args.out}\nsha256 {digest}")
    return 0


def _cmd_zoo(args: argparse.Namespace) -> int:
    from deploybench import zoo

    if args.zoo_step == "show":
        from deploybench.zoo_config import input_shape

        model = zoo.lookup(args.name)
        try:
            derived = input_shape(model.config)
            shape = (tuple(derived["input_shape"]), not derived["resize_pipeline"])
        except UserError as err:
            shape = str(err)
        print(zoo.describe(model, shape), end="")
    else:
        print(zoo.listing(zoo.search(args.task, args.grep, args.dataset)), end="")
    return 0


def _cmd_forkserver(args: argparse.Namespace) -> int:
    if args.forkserver_step == "serve":
        return forkserver.serve(args.socket, args.parent_pid, args.idle_seconds, main)
    if not forkserver.stop(args.socket):
        raise UserError("no fork server answers there")
    return 0


def _model_args(p: argparse.ArgumentParser, out: bool = True, inference: bool = True) -> None:
    """The arguments that name a model to a step; `inference`: also its network input shape
    (training runs its train pipeline's own sizes, from the checkpoint or random init)."""
    p.add_argument("--model", required=True, help="model name (a key of `models` in the config)")
    p.add_argument("--task", required=True,
                   choices=("detection", "instance_segmentation", "segmentation"))
    p.add_argument("--config", required=True, help="the model's mmdet/mmseg config file")
    p.add_argument("--checkpoint", required=inference,
                   help="the fetched, verified checkpoint" + ("" if inference else
                                                              "; none: random init"))
    checksum = p.add_mutually_exclusive_group()
    checksum.add_argument("--checkpoint-sha256",
                          help="check the checkpoint against this sha256 where it is loaded")
    checksum.add_argument("--checkpoint-lock",
                          help="... or against its entry in this lock file (with "
                               "--checkpoint-url, the url it was fetched from)")
    p.add_argument("--checkpoint-url", help="the checkpoint's url: its key in the lock file")
    p.add_argument("--data", required=True, help="dataset root the model config reads")
    if inference:
        p.add_argument("--input-shape", required=True, type=int, nargs=2, metavar=("H", "W"),
                       help="the network input the cell runs at")
        p.add_argument("--resize-pipeline", action="store_true",
                       help="set the test pipeline's Resize and Pad to --input-shape (a shape "
                            "other than the model's own)")
    if out:
        p.add_argument("--out", required=True, help="result JSON to write")


def _cell_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--backend", required=True)
    p.add_argument("--precision", required=True)
    p.add_argument("--artifact", help="the file the backend runs (e.g. the ONNX model)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: all cores")


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--base", help="replace the pinned base image (config docker.base)")
    p.add_argument("--cuda-arch", help="gpu: the GPU architectures mmcv's CUDA ops are "
                                       "compiled for, TORCH_CUDA_ARCH_LIST (config "
                                       "docker.cuda_arch; default the Dockerfile's, 9.0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploybench", description=__doc__)
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("data", help="generate the seeded synthetic dataset")
    p.add_argument("--seed", type=int, default=default("datasets.*.seed"))
    p.add_argument("--num-train", type=int, default=default("datasets.*.num_train"))
    p.add_argument("--num-val", type=int, default=default("datasets.*.num_val"))
    p.add_argument("--image-size", type=int, default=default("datasets.*.image_size"))
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.set_defaults(func=_cmd_data)

    p = steps.add_parser("download-dataset", help="fetch and unpack a dataset's archives")
    p.add_argument("--archive", nargs=2, action="append", required=True,
                   metavar=("URL", "CHECKSUM"), help="an archive and its md5:<hex> or "
                   "sha256:<hex>; repeat for each")
    p.add_argument("--out", required=True, help="dataset directory to create")
    p.set_defaults(func=_cmd_download_dataset)

    p = steps.add_parser("fetch", help="download a checkpoint and verify its sha256")
    p.add_argument("--url", required=True, help="file://, http:// or https:// URL")
    checksum = p.add_mutually_exclusive_group(required=True)
    checksum.add_argument("--sha256", help="the file's whole sha256")
    checksum.add_argument("--lock", help="lock file: verify against its entry for the file "
                          "name, or else the name's 8-hex sha256 prefix and record it there")
    p.add_argument("--out", required=True)
    p.add_argument("--retries", type=int, default=4, help="retries on network errors")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay, doubling")
    p.set_defaults(func=_cmd_fetch)

    p = steps.add_parser("export", help="export the tensor-mode network to ONNX")
    _model_args(p)
    p.add_argument("--onnx", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=default("export.opset"))
    p.add_argument("--dynamic-batch", type=int, default=0, metavar="MAX",
                   help="export a dynamic batch axis, for batches up to MAX (0: static, batch 1)")
    p.add_argument("--saved-input", help="also save the first test images (as many as the "
                                         "largest batch) through the test pipeline, as .npy")
    p.set_defaults(func=_cmd_export)

    p = steps.add_parser("build", help="build a backend artifact: int8/fp16 model, TensorRT engine")
    _model_args(p)
    p.add_argument("--backend", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", required=True)
    p.add_argument("--onnx", required=True,
                   help="the model the build starts from (the export; the QDQ model for "
                        "TensorRT int8, the fp16 model for TensorRT fp16)")
    p.add_argument("--artifact", required=True, help="the built model to write")
    p.add_argument("--settings", type=Path,
                   help="the config's `build` section as JSON, as the pipeline writes it "
                        "(results/<profile>/<run>/settings/build.json); default: the schema's "
                        "defaults (workflow/schemas/config.schema.yaml)")
    p.add_argument("--timing-cache", help="TensorRT timing cache file, read and updated")
    p.add_argument("--batches", type=int, nargs="+", default=[1],
                   help="the batches the model is measured at: a dynamic-batch TensorRT "
                        "engine gets an optimisation profile tuned for each")
    p.set_defaults(func=_cmd_build)

    p = steps.add_parser("measure", help="time a group of cells side by side, interleaved "
                         "(one model, input shape, device and batch)")
    _model_args(p, out=False)
    p.add_argument("--cell", nargs=4, action="append",
                   metavar=("BACKEND", "PRECISION", "ARTIFACT", "OUT"),
                   help="a cell of the group: the file its backend runs (- for none) and its "
                        "result JSON; repeat for each")
    p.add_argument("--backend", help="one cell: its backend (with --precision and --out)")
    p.add_argument("--precision")
    p.add_argument("--artifact", help="one cell: the file the backend runs")
    p.add_argument("--out", help="one cell: its result JSON")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--settings", type=Path,
                   help="the config's `measure` section as JSON, as the pipeline writes it "
                        "(results/<profile>/<run>/settings/measure.json); default: the schema's "
                        "defaults (workflow/schemas/config.schema.yaml)")
    p.add_argument("--saved-input", help="the export's saved input (.npy): a model file whose "
                                         "cell has no stage breakdown is timed on it directly")
    p.set_defaults(func=_cmd_measure)

    p = steps.add_parser("train", help="time a model's own training step on its train split: "
                                       "s/iter (data / compute) and peak memory")
    _model_args(p, inference=False)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "amp"),
                   help="amp: mmengine's AmpOptimWrapper (CUDA only)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per iteration (default: the config's train_dataloader)")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads; 0: the settings' `threads`, else every usable core")
    p.add_argument("--settings", type=Path,
                   help="the config's `train` section as JSON, as the pipeline writes it "
                        "(results/<profile>/<run>/settings/train.json); default: the schema's")
    p.set_defaults(func=_cmd_train)

    p = steps.add_parser("evaluate", help="run one cell over the test split and its metric")
    _cell_args(p)
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    p.add_argument("--published", action="append", default=[], metavar="METRIC=VALUE",
                   help="a published value of a metric, kept beside the measured one")
    p.add_argument("--reference", help="PyTorch fp32 outputs (the reference step) to compare")
    p.add_argument("--parity-images", type=int, default=default("parity.images"))
    p.add_argument("--parity-iou", type=float, default=default("parity.iou"))
    p.add_argument("--parity-score-threshold", type=float,
                   default=default("parity.score_threshold"))
    p.add_argument("--per-image-out", help="npz for the metric's per-image statistics (the "
                                           "report's bootstrap of the accuracy drop)")
    p.set_defaults(func=_cmd_evaluate)

    p = steps.add_parser("reference", help="PyTorch fp32 outputs on the first test images")
    _model_args(p)
    p.add_argument("--images", type=int, default=default("parity.images"))
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: all cores")
    p.set_defaults(func=_cmd_reference, device="cpu", backend="pytorch")

    p = steps.add_parser("check-config", help="check config files (YAML, schema, references) "
                         "as Snakemake would merge them; errors name the file and line")
    p.add_argument("files", nargs="+", help="config.yaml, then any --configfile overlays")
    p.set_defaults(func=_cmd_check_config)

    p = steps.add_parser("report", help="merge result files into reports/<profile>/")
    p.add_argument("--profile", required=True)
    p.add_argument("--out-dir", required=True, help="the run's report directory")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a cell failed or a metric is outside its accuracy gate")
    p.add_argument("--gates", help="accuracy gates as JSON: {metric: {precision: max drop}}")
    p.add_argument("--after-failure", action="store_true",
                   help="written after a failed run: mark the docs out of date for Snakemake")
    p.add_argument("--run", default="local", help="the run's key (config `run`)")
    p.add_argument("results", nargs="*", help="result JSON files (missing ones are shown)")
    p.set_defaults(func=_cmd_report)

    p = steps.add_parser("compare", help="compare two published result sets: a pull-request "
                         "body and, with --fail-on, an exit code")
    p.add_argument("base", help="the docs before: reports/ or reports/<profile>/")
    p.add_argument("new", help="the docs after, in the same form")
    p.add_argument("--threshold", type=float, default=0.10,
                   help="smallest relative latency change that counts (with non-overlapping "
                        "confidence intervals); default 0.10, the spread of speed-ups between "
                        "back-to-back runs on a shared VM (docs/methodology.md); 0.05 on a "
                        "dedicated runner")
    p.add_argument("--config", help="pipeline config whose `gates` judge accuracy moves "
                                    "(default: the schema's gates)")
    p.add_argument("--across-settings", action="store_true",
                   help="judge latency moves even where the measurement settings (threads, "
                        "stopping rule) differ between the two sides")
    p.add_argument("--out", help="write the markdown body here (default: stdout)")
    p.add_argument("--summary-json", help="also write the verdict counts as JSON here")
    p.add_argument("--fail-on", choices=("never", "regression"), default="never",
                   help="regression: exit 1 on a latency regression, a newly failing cell or "
                        "an accuracy move beyond its gate")
    p.set_defaults(func=_cmd_compare)

    p = steps.add_parser("publish", help="copy a run's docs to reports/<profile>/")
    p.add_argument("--run-report", required=True, help="the run's report directory")
    p.add_argument("--to", required=True, help="the published docs' directory")
    p.add_argument("--stamp", help="file to write once published (the DAG's target)")
    p.add_argument("--profile", default="", help="the docs' title (default: --to's name)")
    p.add_argument("--gates", help="accuracy gates as JSON, as for `report`")
    p.add_argument("--run", default="local", help="the run's key (config `run`)")
    p.set_defaults(func=_cmd_publish)

    p = steps.add_parser("records", help="the published records: `records remove` retires a "
                         "model, or some of its cells, from a profile's docs")
    records = p.add_subparsers(dest="action", required=True)
    p = records.add_parser("remove", help="remove a model's (or its matching cells') records "
                           "from reports/<profile>/ and render the docs from the rest; every "
                           "other row stays as it was")
    p.add_argument("--profile", required=True, help="the docs' profile (reports/<profile>/)")
    p.add_argument("--model", required=True, help="the model key")
    for key in ("shape", "backend", "device", "precision"):
        p.add_argument(f"--{key}", help=f"only the cells of this {key}")
    p.add_argument("--batch", type=int, help="only the cells of this batch size")
    p.add_argument("--reports", default="reports", help="the published docs (default reports/)")
    p.add_argument("--config", default="config.yaml",
                   help="config whose gates render docs that did not record theirs")
    p.set_defaults(func=_cmd_records_remove)

    p = steps.add_parser("backends", help="the registered backends (plugins included): devices, "
                         "precisions and how each runs, as a markdown table")
    p.add_argument("--brief", action="store_true", help="devices and precisions only")
    p.set_defaults(func=_cmd_backends)

    p = steps.add_parser("machines", help="write reports/README.md: every published profile, "
                         "and the machines side by side")
    p.add_argument("reports", nargs="?", default="reports", help="default: reports")
    p.set_defaults(func=_cmd_machines)

    p = steps.add_parser("container", help="run one step in its pinned image (runtime: docker)")
    _image_args(p)
    p.add_argument("--memory", help="the container's memory limit (Docker's form, e.g. 8g)")
    p.add_argument("--require-gpu", action="store_true",
                   help="fail a cuda step the engine cannot give a GPU (config require_gpu), "
                        "instead of running it without one (its cells then skip)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="-- then the step's command, e.g. -- deploybench measure ...")
    p.set_defaults(func=_cmd_container)

    p = steps.add_parser("image", help="the pinned images, named by the hash of their files")
    sub = p.add_subparsers(dest="image_action", required=True, metavar="ACTION")
    i = sub.add_parser("name", help="print the image name this checkout's files hash to")
    _image_args(i)
    i = sub.add_parser("build", help="build the image unless it exists (never rebuilt "
                                     "unchanged)")
    _image_args(i)
    i.add_argument("--wheelhouse", help="where the image's wheels are gathered (default "
                                        ".cache/wheelhouse, .cache/wheelhouse-gpu)")
    i.add_argument("--no-tensorrt", dest="tensorrt", action="store_false",
                   help="gpu: build without TensorRT where NVIDIA's index is unreachable "
                        "(by default its absence fails the build)")
    i = sub.add_parser("prune", help="remove this target's images other than this checkout's "
                                     "(those of older definitions)")
    _image_args(i)
    p.set_defaults(func=_cmd_image)

    p = steps.add_parser("fixture", help="the embedded default's models")
    sub = p.add_subparsers(dest="fixture_step", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train a fixture model; write a weights-only checkpoint")
    t.add_argument("--config", required=True)
    t.add_argument("--data", required=True, help="the synthetic dataset directory")
    t.add_argument("--out", required=True)
    t.add_argument("--work-dir")
    t.set_defaults(func=_cmd_fixture_train)

    p = steps.add_parser("zoo", help="the mmdet / mmseg model zoo, from the installed "
                                      "packages' metafiles (offline)")
    sub = p.add_subparsers(dest="zoo_step", required=True, metavar="ACTION")
    z = sub.add_parser("list", help="the zoo's models, a line each")
    z.add_argument("--task", choices=("detection", "instance_segmentation", "segmentation"))
    z.add_argument("--dataset", help="e.g. COCO, Cityscapes")
    z.add_argument("--grep", help="a regular expression on the name or config file stem")
    z = sub.add_parser("show", help="one model: config, weights, task, published metrics")
    z.add_argument("name", help="the metafile Name or the config file stem")
    p.set_defaults(func=_cmd_zoo)

    p = steps.add_parser("forkserver", help="the process that forks steps with torch, mmdet and "
                                             "mmseg already imported (started by the Snakefile)")
    sub = p.add_subparsers(dest="forkserver_step", required=True, metavar="ACTION")
    f = sub.add_parser("serve", help="import, then serve steps on a Unix socket")
    f.add_argument("--socket", required=True, type=Path)
    f.add_argument("--parent-pid", type=int, help="stop when this process exits")
    f.add_argument("--idle-seconds", type=float, default=900.0)
    f = sub.add_parser("stop", help="stop the server")
    f.add_argument("--socket", help=f"default: ${forkserver.ENV}")
    p.set_defaults(func=_cmd_forkserver)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pin_gpu_environment()
    served = forkserver.run_in_server(argv)
    if served is not None:
        return served
    args = build_parser().parse_args(argv)
    watchdog.start()
    try:
        if getattr(args, "checkpoint_lock", None):
            from deploybench.checksum_lock import locked

            args.checkpoint_sha256 = locked(args.checkpoint_lock, args.checkpoint_url)
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
