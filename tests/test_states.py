"""Reading the machine's state off a measure group's rounds (measure/states.py)."""

from __future__ import annotations

import numpy as np
import pytest

from deploybench.measure.states import quiet_rounds, slowdowns
from deploybench.measure.stats import ratio_ci95


def window(rng: np.random.Generator) -> tuple[list[list[float | None]], np.ndarray]:
    """Three cells for 60 rounds; in rounds 20-34 the machine's other tenants slow them
    unequally (by 1.25, 1.5 and 1.7), as seen on this project's VM."""
    quiet = np.array([4.0, 1.0, 0.8])
    slow = quiet * np.array([1.25, 1.5, 1.7])
    disturbed = np.zeros(60, dtype=bool)
    disturbed[20:35] = True
    medians = [[float((slow if d else quiet)[c] * np.exp(rng.normal(0, 0.02)))
                for d in disturbed] for c in range(3)]
    return medians, disturbed


def test_rounds_of_a_disturbed_state_are_found_and_left_out() -> None:
    medians, disturbed = window(np.random.default_rng(0))
    flags = np.array(quiet_rounds(medians, 0.10))
    assert (flags == ~disturbed).all()
    slow = np.array(slowdowns(medians))
    assert np.all(slow[disturbed] > 1.3) and np.all(slow[~disturbed] < 1.06)
    assert all(quiet_rounds(medians, 0.0))  # 0: every round


def test_the_quiet_speedup_is_the_one_a_quiet_window_gives() -> None:
    """A window that a disturbed state took a quarter of: over every round the speed-up of the
    third cell is off; over the quiet rounds it is the quiet machine's 5.0."""
    medians, _ = window(np.random.default_rng(1))
    flags = quiet_rounds(medians, 0.10)
    every = ratio_ci95([r / c for r, c in zip(medians[0], medians[2], strict=True)])[0]
    quiet = ratio_ci95([r / c for r, c, q in zip(medians[0], medians[2], flags, strict=True)
                        if q])
    assert every < 4.8
    assert quiet[0] == pytest.approx(5.0, rel=0.01) and quiet[1] < 5.0 < quiet[2]


def test_a_cell_that_missed_rounds_and_an_empty_round() -> None:
    medians: list[list[float | None]] = [[2.0, 2.0, None, 3.0], [1.0, None, None, 1.5]]
    assert slowdowns(medians)[2] is None
    assert quiet_rounds(medians, 0.10) == [True, True, False, False]
