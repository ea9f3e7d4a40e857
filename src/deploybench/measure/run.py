"""One cell made ready to time: its network call on a real preprocessed validation image, the
end-to-end stage breakdown, and the result record's numbers. A measure group
(`deploybench.measure.group`) holds one such target per worker process and times them
interleaved."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.backends import get_backend, runs_file
from deploybench.errors import UserError
from deploybench.measure.machine_state import peak_rss_mib
from deploybench.results import Cell

if TYPE_CHECKING:
    from deploybench.cell import CellInputs

SCOPE = ("network only: input already on the backend's device -> backbone + neck + head -> "
         "outputs on the device, synchronized")
END_TO_END = ("end to end: image file -> decode -> the model's test pipeline and data "
              "preprocessor -> to the device -> network -> to the host -> the model's "
              "post-processing (dataset records and annotation loading excluded)")

@dataclass
class Target:
    """A loaded cell: `call` runs the network once on the device-resident input, synchronized;
    `stages` times the end-to-end breakdown (None where it is not taken)."""

    call: Callable[[], None]
    input_shape: list[int]
    stages: Callable[[], dict[str, Any] | None]
    extras: dict[str, Any] = field(default_factory=dict)  # placement, crops per image
    settings: dict[str, str] = field(default_factory=dict)  # what the runner was set to


def _call_of(runner: Any, batch: np.ndarray) -> Callable[[], None]:
    device_input = runner.to_device(np.ascontiguousarray(batch))

    def call() -> None:
        runner.run(device_input)
        runner.synchronize()

    return call


def uses_saved_input(cell: Cell, saved_input: Path | None, stage_images: int) -> bool:
    """A model file whose cell takes no stage breakdown is timed on the export's saved input,
    without importing mmdet/mmseg or building the model."""
    return (saved_input is not None and runs_file(cell.backend)
            and (stage_images == 0 or cell.batch > 1))


@contextlib.contextmanager
def open_target(cell: Cell, inputs: CellInputs, export_shape: list[int] | None,
                saved_input: Path | None, stage_images: int, warmup_iters: int
                ) -> Iterator[Target]:
    """The cell loaded and its input on the device, for the lifetime of the context."""
    if uses_saved_input(cell, saved_input, stage_images):
        yield from _saved_input_target(cell, inputs, saved_input)
        return
    from deploybench.cell import check_input_shape, open_cell
    from deploybench.measure.stages import time_stages

    with open_cell(cell.backend, cell.precision, inputs) as opened:
        if len(opened.dataset) < cell.batch:
            raise UserError(f"batch {cell.batch} needs at least {cell.batch} test images; the "
                            f"dataset has {len(opened.dataset)}: lower matrix.batches or use a "
                            "larger split")
        _, batch, _ = next(opened.adapter.batches(opened.dataset, cell.batch))
        check_input_shape(export_shape, tuple(batch.shape))
        graph_input = opened.adapter.graph_input(batch)  # slide inference: one crop
        runner = opened.runner

        def stages() -> dict[str, Any] | None:
            if cell.batch != 1 or stage_images <= 0:
                return None
            taken: dict[str, Any] = {}
            shared = runner.share_cores()
            if shared:
                taken["runner_settings"] = shared
            variants = [("reference", "reference", False), ("tensor", "tensor", False)]
            if opened.adapter.has_masks:
                variants.append(("tensor_native_masks", "tensor", True))
            for name, path, native in variants:
                try:
                    taken[name] = time_stages(opened.adapter, opened.dataset, runner,
                                              stage_images, min(warmup_iters, stage_images),
                                              path, inputs.device, native)
                except UserError as err:  # a transform the tensor path does not implement
                    taken[name] = {"path": path, "skipped": str(err)}
            return {"scope": END_TO_END, **taken}

        extras = dict(opened.adapter.placement())
        crops = opened.adapter.crops(batch[:1])
        if crops > 1:  # the latency is per crop; the stage breakdown's network is per image
            extras["crops_per_image"] = crops
        yield Target(_call_of(runner, graph_input.cpu().numpy()), list(graph_input.shape),
                     stages, extras, runner.idle_settings())


def _saved_input_target(cell: Cell, inputs: CellInputs, saved_input: Path) -> Iterator[Target]:
    if not saved_input.is_file():
        raise UserError(f"{saved_input} is missing; run the pipeline's export step")
    saved = np.load(saved_input)
    if len(saved) < cell.batch:
        raise UserError(f"batch {cell.batch} needs at least {cell.batch} saved inputs; "
                        f"{saved_input} has {len(saved)}: rerun the export")
    runner = get_backend(cell.backend).load(None, inputs.artifact, cell.precision,
                                            inputs.device, inputs.threads)
    try:
        batch = saved[: cell.batch]
        yield Target(_call_of(runner, batch), list(batch.shape), lambda: None, {},
                     runner.idle_settings())
    finally:
        runner.close()


def process_memory(device: str) -> dict[str, float | None]:
    """This process's peak memory: resident, and what PyTorch allocated on the GPU."""
    cuda = None
    if device == "cuda" and "torch" in sys.modules:
        import torch

        cuda = torch.cuda.max_memory_allocated() / 2**20
    return {"peak_rss_mib": peak_rss_mib(), "torch_cuda_max_allocated_mib": cuda}
