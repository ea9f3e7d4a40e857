"""The config's `train` section, typed (its defaults are the schema's)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrainSettings:
    warmup_iters: int
    min_iters: int
    min_seconds: float  # span several of a shared machine's states
    max_seconds: float  # the cell's time cap for its measured iterations
    precision: float  # the median s/iter's 95 % interval's target half-width

    @classmethod
    def of(cls, values: Mapping[str, Any] | None = None, **overrides: Any) -> TrainSettings:
        from deploybench.settings import defaults

        merged = {**defaults("train"), **(values or {}), **overrides}
        return cls(**{f.name: merged[f.name] for f in fields(cls)})
