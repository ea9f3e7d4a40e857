"""Latency statistics against numpy, and the stopping rule."""

from __future__ import annotations

import time

import numpy as np
import pytest

from deploybench.measure.stats import latency_stats
from deploybench.measure.timing import StoppingRule, time_calls


def test_stats_match_numpy() -> None:
    samples = [10.0, 12.0, 11.0, 50.0, 10.5, 11.5, 10.2, 13.0]
    x = np.array(samples)
    stats = latency_stats(samples, batch=2)
    assert stats["median"] == pytest.approx(np.median(x))
    assert stats["mean"] == pytest.approx(x.mean())
    assert stats["p90"] == pytest.approx(np.percentile(x, 90))
    assert stats["p99"] == pytest.approx(np.percentile(x, 99))
    assert stats["std"] == pytest.approx(x.std(ddof=1))
    assert stats["cov"] == pytest.approx(x.std(ddof=1) / x.mean())
    assert (stats["min"], stats["max"], stats["count"]) == (10.0, 50.0, 8)
    assert stats["fps"] == pytest.approx(2 * 1000 / np.median(x))


def test_median_confidence_interval() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 1.0, 400)
    stats = latency_stats(list(x))
    low, high = stats["median_ci95_low"], stats["median_ci95_high"]
    # The same percentile bootstrap, written out with numpy.
    boot = np.median(np.random.default_rng(0).choice(x, (2000, x.size)), axis=1)
    assert (low, high) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))
    assert low < stats["median"] < high
    # Close to the normal theory width: 2 x 1.96 x sigma x sqrt(pi / 2) / sqrt(n).
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(np.pi / 2) / np.sqrt(400), rel=0.25)
    assert latency_stats(list(x)) == stats  # deterministic
    more = latency_stats(list(rng.normal(10.0, 1.0, 4000)))
    assert more["median_ci95_high"] - more["median_ci95_low"] < (high - low) / 2


def test_single_sample_and_empty() -> None:
    assert latency_stats([5.0])["std"] == 0.0
    with pytest.raises(ValueError):
        latency_stats([])


def test_stops_on_count_and_time() -> None:
    calls = []

    def call() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.001)

    # Time-bound: 0.1 s needs far more than the 3 iterations asked for.
    rule = StoppingRule(warmup_iters=2, warmup_seconds=0.0, min_iters=3, min_seconds=0.1)
    samples = time_calls(call, rule)
    assert len(samples) >= 3 and sum(samples) >= 0.1 * 1000 * 0.9
    assert len(calls) == len(samples) + 2  # the warm-up calls are not kept
    assert all(s >= 1.0 for s in samples)
    # Count-bound: 30 iterations take longer than the 0 s asked for.
    calls.clear()
    assert len(time_calls(call, StoppingRule(0, 0.0, 30, 0.0))) == 30


def test_warmup_runs_for_its_minimum_time() -> None:
    start = time.perf_counter()
    time_calls(lambda: None, StoppingRule(warmup_iters=1, warmup_seconds=0.05, min_iters=1,
                                          min_seconds=0.0))
    assert time.perf_counter() - start >= 0.05


def test_max_seconds_bounds_a_slow_cell() -> None:
    samples = time_calls(lambda: time.sleep(0.01), StoppingRule(0, 0.0, 10_000, 0.0,
                                                                max_seconds=0.05))
    assert 1 <= len(samples) < 10_000


def test_repeats_interval_reaches_beyond_the_repeats_and_never_below_the_bootstrap() -> None:
    from deploybench.measure.stats import hierarchical_median_ci95, repeats_median_ci95

    rng = np.random.default_rng(0)
    # three runs whose medians differ by a factor (a shared, busy machine)
    runs = [rng.normal(level, 0.05 * level, 200) for level in (4.0, 7.0, 6.0)]
    low, high = repeats_median_ci95(runs)
    boot_low, boot_high = hierarchical_median_ci95(runs)
    assert low <= boot_low and high >= boot_high
    assert low < 4.0 * 0.95 and high > 7.0 * 1.05  # beyond what three values can show
    assert low > 0
    # repeats that agree: the within-run bootstrap is the floor
    same = [rng.normal(5.0, 0.5, 200) for _ in range(3)]
    low, high = repeats_median_ci95(same)
    assert (low, high) == pytest.approx(hierarchical_median_ci95(same), rel=0.5)
    assert low <= hierarchical_median_ci95(same)[0]
    # one repeat: its samples' bootstrap
    assert repeats_median_ci95(runs[:1]) == hierarchical_median_ci95(runs[:1])
