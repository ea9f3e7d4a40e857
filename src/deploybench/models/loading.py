"""Load an OpenMMLab config and build its model from a verified checkpoint, on the CPU or a GPU."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from deploybench.errors import UserError
from deploybench.zoo import config_path

CODEBASES = ("mmdet", "mmseg")


def register_codebase(codebase: str) -> None:
    """Import the codebase's registries and make it the default scope (builds resolve there)."""
    if codebase == "mmdet":
        from mmdet.utils import register_all_modules
    elif codebase == "mmseg":
        from mmseg.utils import register_all_modules
    else:
        raise UserError(f"unknown codebase {codebase!r}; valid: {', '.join(CODEBASES)}")
    register_all_modules(init_default_scope=True)


def load_mm_config(path: Path | str) -> Any:
    """Read an mmengine config file (inheritance such as `mmdet::` resolved)."""
    from mmengine.config import Config

    path = config_path(path)
    if not path.is_file():
        raise UserError(f"model config {path} does not exist; set models.<name>.config in the "
                        "pipeline config to an mmdet/mmseg config file")
    return Config.fromfile(str(path))


def codebase_of(cfg: Any) -> str:
    scope = cfg.get("default_scope")
    if scope not in CODEBASES:
        raise UserError(f"config's default_scope is {scope!r}; deploybench needs one of "
                        f"{', '.join(CODEBASES)} (add `default_scope = 'mmdet'` or 'mmseg')")
    return scope


def _dataloader_datasets(cfg: Any) -> list[Any]:
    datasets = []
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(key)
        if loader is None:
            continue
        dataset = loader["dataset"]
        # Wrappers (RepeatDataset, ConcatDataset, ...) keep the real dataset one level down.
        while "dataset" in dataset:
            dataset = dataset["dataset"]
        datasets.append(dataset)
    return datasets


def set_data_root(cfg: Any, data_root: Path | str) -> None:
    """Point every dataset and evaluator annotation file of `cfg` at `data_root`."""
    root = str(Path(data_root)) + "/"
    old_roots = set()
    for dataset in _dataloader_datasets(cfg):
        if dataset.get("data_root"):
            old_roots.add(dataset["data_root"])
        dataset["data_root"] = root
    for key in ("val_evaluator", "test_evaluator"):
        evaluators = cfg.get(key)
        if evaluators is None:
            continue
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            ann_file = evaluator.get("ann_file")
            for old in old_roots:
                if ann_file and ann_file.startswith(old):
                    evaluator["ann_file"] = root + ann_file[len(old):]


def read_verified(checkpoint: Path, sha256: str | None) -> bytes:
    """The checkpoint's bytes, checked against `sha256` in memory: what is hashed is exactly what
    is loaded, even if the file is replaced meanwhile."""
    if not checkpoint.is_file():
        raise UserError(f"checkpoint {checkpoint} does not exist; run the pipeline's fetch step "
                        "(snakemake fetches it from models.<name>.checkpoint.url)")
    data = checkpoint.read_bytes()
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():
            raise UserError(f"checkpoint {checkpoint} changed since it was fetched: sha256 "
                            f"{actual}, the config says {sha256.lower()}; delete the file so "
                            "that the pipeline fetches it again")
    return data


def load_weights(checkpoint: Path | str, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint, its sha256 checked again here, where it is loaded.

    Full training checkpoints (model-zoo files) load too: their pickled metadata becomes inert
    placeholders and no pickled code runs (`safe_checkpoint`); only tensors are kept.
    """
    from deploybench.models.safe_checkpoint import load_tensors

    checkpoint = Path(checkpoint)
    data = load_tensors(read_verified(checkpoint, sha256), str(checkpoint))
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state:
        raise UserError(f"checkpoint {checkpoint} holds no state dict")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise UserError(f"checkpoint {checkpoint}: its state dict holds non-tensors "
                        f"({', '.join(map(str, not_tensors[:3]))}); not a model checkpoint")
    return state


def build_model(cfg: Any, checkpoint: Path | str, device: str = "cpu",
                sha256: str | None = None) -> torch.nn.Module:
    """The config's model with the checkpoint's weights, in eval mode on `device`."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS

    register_codebase(codebase_of(cfg))
    model = MODELS.build(cfg.model)
    # SyncBN needs a process group (and CUDA); plain BN computes the same thing at inference.
    model = revert_sync_batchnorm(model)
    state = load_weights(checkpoint, sha256)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise UserError(f"checkpoint {checkpoint} does not match config's model: "
                        f"{len(missing)} missing keys, e.g. {missing[:3]}; check that "
                        "models.<name>.config and checkpoint belong together")
    if unexpected:
        print(f"warning: checkpoint has {len(unexpected)} keys the model does not use, "
              f"e.g. {unexpected[:3]}")
    return model.to(device).eval()
