"""What the benchmarks share: an embedded model, a few synthetic images and its ONNX export."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Exported:
    config: Path
    checkpoint: Path
    data: Path
    onnx: Path
    adapter: Any
    batch: torch.Tensor  # the first test image, through the model's test pipeline
    samples: list


@contextmanager
def exported(model: str, num_train: int = 1, num_val: int = 2) -> Iterator[Exported]:
    """`model` (a fixture name, e.g. rtmdet_tiny_shapes) exported at its own input shape, in a
    temporary directory that lives as long as the context, with a synthetic dataset of the
    default's seed."""
    from deploybench.data.synthetic import SyntheticSpec, generate
    from deploybench.export.onnx_export import export_onnx
    from deploybench.models.adapter import load_adapter

    config = REPO / f"fixtures/configs/{model}.py"
    checkpoint = REPO / f"fixtures/checkpoints/{model}.pth"
    with TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "shapes", SyntheticSpec(seed=0, num_train=num_train,
                                                                    num_val=num_val))
        adapter = load_adapter(config, checkpoint)
        _, batch, samples = next(adapter.batches(adapter.dataset(data)))
        onnx = Path(tmp) / f"{model}.onnx"
        export_onnx(adapter, batch, onnx, 17)
        yield Exported(config, checkpoint, data, onnx, adapter, batch, samples)
