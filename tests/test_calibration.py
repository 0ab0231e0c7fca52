"""How far a decile's observed engagements may stray from a calibrated expectation by chance alone."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation.calibration import chance_within, poisson_band


def test_chance_within_is_the_poisson_mass_of_the_band():
    # Expecting 4: +-25% is 3..5 engagements, e^-4 (4^3/3! + 4^4/4! + 4^5/5!) = 0.547.
    # Expecting 1: only exactly 1 is within 0.75..1.25, e^-1 = 0.368.
    hand = [math.exp(-4) * (4**3 / 6 + 4**4 / 24 + 4**5 / 120), math.exp(-1)]
    assert chance_within(np.array([4.0, 1.0])) == pytest.approx(hand)


def test_a_few_engagements_per_decile_fail_a_25_percent_check_often_even_when_exact():
    # Five deciles expecting 8 each: each lands in 6..10 with e^-8 sum 8^k/k! (k = 6..10) = 0.625, so all
    # five do 0.625^5 = 9.5% of the time; expecting 400 each, each within 300..500 nearly always.
    few = chance_within(np.full(5, 8.0))
    hand = math.exp(-8) * sum(8**k / math.factorial(k) for k in range(6, 11))
    assert few == pytest.approx(np.full(5, hand)) and 0.09 < np.prod(few) < 0.10
    assert np.prod(chance_within(np.full(5, 400.0))) > 0.999


def test_the_band_holds_what_exact_scores_observe_95_percent_of_the_time():
    # Expecting 1: P(0) = 0.37 >= 2.5%, so the band starts at 0; P(<= 2) = 0.92 < 97.5% <= P(<= 3) = 0.98.
    low, high = poisson_band(np.array([1.0]))
    assert (low[0], high[0]) == (0, 3)
