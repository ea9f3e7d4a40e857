"""Full training checkpoints load their tensors; no code pickled in a checkpoint ever runs."""

from __future__ import annotations

import builtins
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

from deploybench.errors import UserError
from deploybench.models.loading import load_weights

from .conftest import checkpoint_path


class RunsCode:
    """A pickled object whose unpickling would call `func(*args)`."""

    def __init__(self, func: object, *args: object) -> None:
        self.call = (func, args)

    def __reduce__(self) -> tuple:
        return self.call


def training_checkpoint(state: dict, meta: dict, path: Path, zip_format: bool = True) -> str:
    """What an OpenMMLab training run saves: weights, optimizer state and pickled metadata."""
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}, "lr": 0.01}},
               path, _use_new_zipfile_serialization=zip_format)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_zoo_style_training_checkpoint_loads_its_weights(tmp_path: Path,
                                                           zip_format: bool) -> None:
    state = load_weights(checkpoint_path("fast_scnn_shapes"))
    meta = {"epoch": 12, "mmdet_version": "3.3.0", "dataset_meta": {"classes": ("a", "b")},
            "history": HistoryBuffer([1.0, 2.0], [1, 1]), "array": np.arange(4),
            "scalar": np.float64(1),
            "cfg": ConfigDict(model=dict(type="FastSCNN"))}
    path = tmp_path / "fast_scnn_20230101-0123abcd.pth"
    digest = training_checkpoint(state, meta, path, zip_format)
    loaded = load_weights(path, sha256=digest)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    state = {"w": torch.ones(2)}
    marker = tmp_path / "ran"
    # builtins.exec is not on torch's allow-list: it becomes an inert stand-in and does nothing.
    quiet = tmp_path / "exec.pth"
    training_checkpoint(state, {"x": RunsCode(builtins.exec, f"open({str(marker)!r}, 'w')")},
                        quiet)
    assert torch.equal(load_weights(quiet)["w"], state["w"])
    # os.system: torch's weights-only unpickler blocks the module outright; the file is refused.
    loud = tmp_path / "system.pth"
    training_checkpoint(state, {"x": RunsCode(os.system, f"touch {marker}")}, loud)
    with pytest.raises(UserError, match=r"cannot be read as tensors.*posix\.system"):
        load_weights(loud)
    assert not marker.exists()


def test_a_state_dict_of_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    training_checkpoint({"w": HistoryBuffer()}, {}, path)
    with pytest.raises(UserError, match="holds non-tensors"):
        load_weights(path)
