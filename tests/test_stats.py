"""Latency statistics against numpy, paired ratios, and a worker's slice and warm-up."""

from __future__ import annotations

import time

import numpy as np
import pytest

from deploybench.measure.stats import latency_stats, ratio_ci95, relative_halfwidth
from deploybench.measure.worker import time_slice, warm_up


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


def test_a_slice_times_each_call_and_the_warm_up_runs_its_minimum() -> None:
    calls = []

    def call() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.001)

    samples, cpu_before, cpu_after = time_slice(call, 5)
    assert len(samples) == len(calls) == 5 and all(s >= 1.0 for s in samples)
    assert cpu_after >= cpu_before  # sleeping takes (next to) no CPU
    start = time.perf_counter()
    assert warm_up(lambda: None, 1, 0.05) > 1 and time.perf_counter() - start >= 0.05
    assert warm_up(call, 3, 0.0) == 3


def test_paired_ratio_interval() -> None:
    """Per-round ratios that scatter around 2 by a factor: the estimate is their geometric
    mean; the interval on logs narrows as sqrt(rounds) and holds the true ratio."""
    rng = np.random.default_rng(1)
    few = 2.0 * np.exp(rng.normal(0, 0.05, 10))
    many = 2.0 * np.exp(rng.normal(0, 0.05, 160))
    estimate, low, high = ratio_ci95(few)
    assert estimate == pytest.approx(float(np.exp(np.log(few).mean())))
    _, low_many, high_many = ratio_ci95(many)
    # 95 % of such intervals hold the true ratio
    intervals = [ratio_ci95(2.0 * np.exp(rng.normal(0, 0.05, 160)))[1:] for _ in range(400)]
    assert 0.92 <= np.mean([low <= 2.0 <= high for low, high in intervals]) <= 0.98
    assert (high_many - low_many) < (high - low) / 3  # about sqrt(16) = 4 x narrower
    assert relative_halfwidth(low_many, high_many, 2.0) < 0.015
    # Drift that multiplies both cells of a round cancels: the same ratio every round.
    assert ratio_ci95([2.0] * 5)[1:] == pytest.approx((2.0, 2.0))
    assert ratio_ci95([2.0])[2] == float("inf")  # one round: no interval


def test_ratio_interval_spans_the_machine_states_it_passed_through() -> None:
    """A ratio that holds at 2.0 for half the window and at 2.2 for the other half (a shared
    machine's state changed): an interval over single rounds is narrow and holds neither run's
    answer; the batch-means interval is as wide as the states are apart."""
    rng = np.random.default_rng(2)
    ratios = np.r_[2.0 * np.exp(rng.normal(0, 0.02, 60)), 2.2 * np.exp(rng.normal(0, 0.02, 60))]
    estimate, low, high = ratio_ci95(ratios)
    _, iid_low, iid_high = ratio_ci95(ratios, batches=1)
    assert iid_high < 2.2 and iid_low > 2.0  # single rounds: precise, and wrong for both
    assert relative_halfwidth(low, high, estimate) > 3 * relative_halfwidth(iid_low, iid_high,
                                                                             estimate)
    assert low < 2.06 and high > 2.14  # within reach of either state's answer


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
