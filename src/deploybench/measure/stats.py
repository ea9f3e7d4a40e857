"""Latency statistics over raw samples, all computed by numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
# A speed-up's interval goes over the means of this many consecutive runs of rounds.
RATIO_BATCHES = 8
BOOTSTRAP_SEED = 0  # fixed: the same samples give the same interval (and byte-identical docs)


def median_ci95(x: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile-bootstrap 95 % confidence interval of the median."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(x, size=(resamples, x.size), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def hierarchical_median_ci95(repeats: Sequence[Sequence[float]],
                             resamples: int = BOOTSTRAP_RESAMPLES,
                             seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95 % interval of the pooled median over repeats in separate processes: each bootstrap
    draw picks the repeats with replacement, then samples within each picked repeat with
    replacement. Samples of one process are not independent of each other (its thread
    placement, memory layout and the machine's state are shared), so pooling them as if they
    were gives an interval far narrower than the spread between runs; resampling the repeats
    puts that spread into the interval."""
    groups = [np.asarray(r, dtype=np.float64) for r in repeats if len(r)]
    if len(groups) == 1:
        return median_ci95(groups[0], resamples, seed)
    rng = np.random.default_rng(seed)
    size = min(len(g) for g in groups)  # equal weight per repeat, as the design intends
    picks = rng.integers(0, len(groups), size=(resamples, len(groups)))
    medians = np.empty(resamples)
    for i, chosen in enumerate(picks):
        draw = [groups[j][rng.integers(0, len(groups[j]), size)] for j in chosen]
        medians[i] = np.median(np.concatenate(draw))
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def repeats_median_ci95(repeats: Sequence[Sequence[float]]) -> tuple[float, float]:
    """95 % interval of a cell's median over repeats in separate processes.

    The repeats' medians are what varies from run to run, and there are few of them (three in
    the embedded default): a bootstrap cannot reach beyond the range of three values, so it
    covers far less than 95 % (on this project's VM, 9 of 12 rerun medians fell inside the
    hierarchical bootstrap's interval). So: Student's t interval over the repeat medians with
    G - 1 degrees of freedom, on a log scale (run-to-run noise multiplies: a busy machine makes
    a call slower by a factor; the bounds stay positive), and never narrower than the
    hierarchical bootstrap, which holds the within-run part when the repeats agree."""
    groups = [np.asarray(r, dtype=np.float64) for r in repeats if len(r)]
    boot_low, boot_high = hierarchical_median_ci95(groups)
    if len(groups) < 2:
        return boot_low, boot_high
    from scipy.stats import t as student_t

    logs = np.log([np.median(g) for g in groups])
    spread = student_t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    center = logs.mean()
    return (min(boot_low, float(np.exp(center - spread))),
            max(boot_high, float(np.exp(center + spread))))


def latency_stats(samples_ms: Sequence[float], batch: int = 1) -> dict[str, float]:
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples")
    ci_low, ci_high = median_ci95(x)
    p90, p95, p99 = np.percentile(x, [90, 95, 99])
    median = float(np.median(x))
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return {"median": median, "mean": mean, "p90": float(p90), "p95": float(p95),
            "p99": float(p99), "std": std, "min": float(x.min()), "max": float(x.max()),
            "cov": std / mean if mean > 0 else 0.0, "count": int(x.size),
            "median_ci95_low": ci_low, "median_ci95_high": ci_high,
            # Throughput of the typical call: images per second at the median latency.
            "fps": batch * 1000.0 / median if median > 0 else 0.0}


def ratio_ci95(ratios: Sequence[float], batches: int = RATIO_BATCHES
               ) -> tuple[float, float, float]:
    """(estimate, low, high) of a ratio from its per-round paired readings, in time order: the
    geometric mean, and a 95 % interval on a log scale (a busy moment slows both cells of a
    round by a factor, which the ratio cancels; what remains multiplies, and the bounds stay
    positive).

    The interval is by batch means: the rounds are cut into `batches` consecutive runs, and
    Student's t goes over the runs' means. Rounds next to each other are not independent: a
    shared machine passes through states lasting seconds that slow cells unequally, so the
    ratio holds steady within a state and moves between them. An interval over single rounds
    then measures one state and claims a precision that the next run does not reproduce; the
    runs' means differ as much as the states do. With fewer than two rounds the interval is
    unbounded."""
    logs = np.log(np.asarray(ratios, dtype=np.float64))
    center = float(np.exp(logs.mean()))
    if logs.size < 2:
        return center, 0.0, float("inf")
    from scipy.stats import t as student_t

    count = min(batches, logs.size // 2)
    if count >= 2:  # the earliest rounds left over when the rounds do not divide evenly
        size = logs.size // count
        points = logs[logs.size - count * size:].reshape(count, size).mean(axis=1)
    else:
        points = logs
    spread = (student_t.ppf(0.975, points.size - 1) * points.std(ddof=1)
              / np.sqrt(points.size))
    return center, float(np.exp(logs.mean() - spread)), float(np.exp(logs.mean() + spread))


def relative_halfwidth(low: float, high: float, center: float) -> float:
    """Half the interval's width over its center: +-3 % is 0.03."""
    return (high - low) / 2 / center if center > 0 else float("inf")
