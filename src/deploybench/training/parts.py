"""What one training iteration runs, built as mmengine's Runner builds it: the config's model
(SyncBN reverted: one process), its train dataloader and its optimizer wrapper.

deploybench calls `model.train_step(batch, optim_wrapper)` itself, as the Runner's train loop
does, instead of running the Runner: the Runner's hooks (logging, checkpoints, evaluation)
would add time that is not training and write a work directory, and timing the step directly
gives the data / compute split exactly where mmengine's IterTimerHook draws it. The learning
rate schedule and the EMA hook are not run: neither changes what an iteration computes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deploybench.errors import CellSkipped, UserError
from deploybench.models.loading import (
    codebase_of,
    load_mm_config,
    load_weights,
    register_codebase,
    set_data_root,
)

# The optimizer wrapper each training precision runs: AMP as mmdet's and mmseg's `--amp` set it.
WRAPPERS = {"fp32": "OptimWrapper", "amp": "AmpOptimWrapper"}
AMP_KEYS = ("loss_scale", "dtype", "use_fsdp")  # AmpOptimWrapper's own arguments


@dataclass
class TrainParts:
    model: torch.nn.Module
    loader: Any  # torch DataLoader
    optim_wrapper: Any  # mmengine OptimWrapper
    batch_size: int
    images: int  # in the train split
    num_workers: int
    lr_schedule: str  # the config's schedule, as the zoo tables write it


def check_request(device: str, precision: str, batch_size: int | None) -> None:
    """Refuse what cannot train, naming the fix."""
    if precision not in WRAPPERS:
        raise UserError(f"training precision {precision!r}: valid are "
                        f"{', '.join(WRAPPERS)} (train.precisions)")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"training batch size {batch_size}: a training iteration needs at least "
                        "one image per device; give a positive train.batch_size (or "
                        "models.<name>.train_batch_size), or null for the config's "
                        "train_dataloader.batch_size")
    if precision == "amp" and device != "cuda":
        raise UserError(f"AMP training on {device}: mmengine's AmpOptimWrapper runs on a CUDA "
                        "device; plan amp for cuda only (train.precisions), fp32 on the CPU")


def lr_schedule(cfg: Any) -> str:
    """The config's training length as the zoo tables write it: 1x / 2x / 3x (12, 24, 36
    epochs), else epochs or iterations."""
    train_cfg = cfg.get("train_cfg") or {}
    if train_cfg.get("max_epochs"):
        epochs = int(train_cfg["max_epochs"])
        return {12: "1x", 24: "2x", 36: "3x"}.get(epochs, f"{epochs} ep")
    if train_cfg.get("max_iters"):
        iters = int(train_cfg["max_iters"])
        return f"{iters // 1000}k it" if iters % 1000 == 0 else f"{iters} it"
    return ""


def _train_dataset(cfg: Any, data_root: Path) -> Any:
    from mmengine.registry import DATASETS

    loader = cfg.get("train_dataloader")
    if not loader:
        raise CellSkipped("the model's config has no train_dataloader: nothing to train on")
    try:
        dataset = DATASETS.build(copy.deepcopy(loader["dataset"]))
        if hasattr(dataset, "full_init"):
            dataset.full_init()
    except (FileNotFoundError, NotADirectoryError) as err:
        raise CellSkipped(f"no train split under {data_root} ({err}); training needs the "
                          "dataset's train split where the config's train_dataloader reads "
                          "it") from None
    if len(dataset) == 0:
        raise CellSkipped(f"the train split under {data_root} holds no images the config's "
                          "train_dataloader keeps (after its filter_cfg)")
    return dataset


def _optim_wrapper_cfg(cfg: Any, precision: str) -> dict[str, Any]:
    wrapper = copy.deepcopy(dict(cfg.optim_wrapper))
    wrapper["type"] = WRAPPERS[precision]
    if precision == "amp":
        wrapper.setdefault("loss_scale", "dynamic")
    else:  # a config written for AMP trains in fp32 here: the cell says fp32
        for key in AMP_KEYS:
            wrapper.pop(key, None)
    return wrapper


def build_parts(config: Path | str, data_root: Path, checkpoint: Path | None,
                sha256: str | None, device: str, precision: str,
                batch_size: int | None, seed: int = 0) -> TrainParts:
    """The model (from `checkpoint`'s weights, else its layers' own random init: a pretrained
    backbone's download is never attempted), dataloader and optimizer wrapper of one cell."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    from mmengine.runner import Runner

    check_request(device, precision, batch_size)
    cfg = load_mm_config(config)
    set_data_root(cfg, data_root)
    register_codebase(codebase_of(cfg))
    if not cfg.get("optim_wrapper"):
        raise UserError(f"model config {config} has no optim_wrapper: it cannot say how it "
                        "trains; give one (mmengine's optim_wrapper) or remove the model from "
                        "training (train.enabled)")
    dataset = _train_dataset(cfg, data_root)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    if checkpoint is not None:
        missing, _ = model.load_state_dict(load_weights(checkpoint, sha256), strict=False)
        if missing:
            raise UserError(f"checkpoint {checkpoint} does not match the config's model: "
                            f"{len(missing)} missing keys, e.g. {missing[:3]}; check that "
                            "models.<name>.config and checkpoint belong together")
    model = model.to(device).train()
    loader_cfg = copy.deepcopy(dict(cfg.train_dataloader))
    loader_cfg["dataset"] = dataset
    if batch_size is not None:
        loader_cfg["batch_size"] = batch_size
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    return TrainParts(model, loader, build_optim_wrapper(model, _optim_wrapper_cfg(cfg,
                                                                                    precision)),
                      int(loader_cfg["batch_size"]), len(dataset),
                      int(loader_cfg.get("num_workers", 0)), lr_schedule(cfg))
