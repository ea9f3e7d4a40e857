"""Warm up, then time a call until a minimum count AND a minimum time are both reached."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StoppingRule:
    warmup_iters: int = 5
    warmup_seconds: float = 1.0
    min_iters: int = 20
    min_seconds: float = 3.0
    max_seconds: float = 120.0  # a bound for pathological cells, never reached by a healthy one


def time_calls(call: Callable[[], object], rule: StoppingRule) -> list[float]:
    """Raw per-call latencies in milliseconds, measured with a monotonic high-resolution clock."""
    start = time.perf_counter()
    done = 0
    while done < rule.warmup_iters or time.perf_counter() - start < rule.warmup_seconds:
        call()
        done += 1
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        elapsed = time.perf_counter() - start
        enough = len(samples) >= rule.min_iters and elapsed >= rule.min_seconds
        if enough or elapsed >= rule.max_seconds:
            return samples
