"""The gain curve: hits of the top N on the holdout, worked by hand on five users, and how many users it
takes to reach 50 / 70 / 90% of what a list captures."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.gain import gain_curve_rows, gain_rows
from pipeline.evaluation.holdout import Scored
from pipeline.evaluation.metrics import make_truth
from reports.gain import expected_share, reach_table, users_for_share

NONE = np.zeros(0, np.int64)


def five_users():
    """Product 0's audience is users 0..4 in order; later, users 1 and 3 engaged with it, and so did a
    newcomer nobody could target (position -1): 3 later engagements, 2 of them catchable by this list."""
    truth = make_truth(np.array([0, 0, 0]), np.array([1, 3, -1]), 1, 5, NONE, NONE)
    return np.array([[0, 1, 2, 3, 4]]), np.array([5]), truth


def test_the_gain_of_five_users_worked_by_hand():
    positions, sizes, truth = five_users()
    rows = gain_curve_rows("propensity", positions, sizes, truth)
    assert rows["n"].tolist() == [1, 2, 3, 4, 5]
    assert rows["hits"].tolist() == [0, 1, 1, 2, 2]
    assert rows["share_of_truth"].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert rows["share_of_list"].tolist() == pytest.approx([0, 0.5, 0.5, 1, 1])
    # 50% of what the list catches at rank 2, 70% and 90% only at rank 4 (its second hit).
    assert reach_table(rows["share_of_list"]) == {0.5: 2, 0.7: 4, 0.9: 4}


def test_products_add_up_and_padding_past_a_short_audience_never_counts():
    """Product 1 has only two allowed users (size 2; the rest is padding that happens to hold user 3, a
    later engager of product 1): its hit at rank 1 adds to product 0's hits."""
    truth = make_truth(np.array([0, 0, 1, 1]), np.array([1, 3, 4, 3]), 2, 5, NONE, NONE)
    positions = np.array([[0, 1, 2, 3, 4], [4, 0, 3, 3, 3]])
    rows = gain_curve_rows("als", positions, np.array([5, 2]), truth)
    assert rows["hits"].tolist() == [1, 2, 2, 3, 3]
    assert rows["share_of_truth"].tolist() == pytest.approx([0.25, 0.5, 0.5, 0.75, 0.75])


def test_only_uncapped_strategies_with_audiences_get_a_curve():
    positions, sizes, truth = five_users()
    curve = gain_curve_rows("propensity", positions, sizes, truth)
    scored = [Scored("propensity", {}, 0.0, gain=curve), Scored("propensity", {}, 0.0, cap=2, gain=curve),
              Scored("random", {}, 0.0)]
    rows = gain_rows(scored)
    assert rows["strategy"].unique().tolist() == ["propensity"] and len(rows) == 5
    assert gain_rows([]).empty


@pytest.mark.parametrize("curve, share, users", [
    ([0.5, 0.8, 1.0], 0.5, 1),
    ([0.5, 0.8, 1.0], 0.7, 2),
    ([0.5, 0.8, 1.0], 0.9, 3),
    ([0.2, 0.4, 0.6], 0.9, None),   # the list never gets there
    ([0.1, 0.7, 0.7], 0.7, 2),      # reaching the share exactly counts
    ([], 0.5, None),
])
def test_users_for_share(curve, share, users):
    assert users_for_share(curve, share) == users


@pytest.mark.parametrize("scores, share", [
    ([0.5, 0.3, 0.2], [0.5, 0.8, 1.0]),
    ([0.0, 0.0], [0.0, 0.0]),        # no mass: nothing is expected
    ([2.0, -1.0, 2.0], [0.5, 0.5, 1.0]),  # a negative score adds nothing
])
def test_expected_share_of_an_audience(scores, share):
    assert expected_share(np.array(scores)).tolist() == pytest.approx(share)


def test_a_run_stores_every_strategy_s_curve_as_deep_as_its_evaluation(propensity_db):
    """The run ranks the holdout 100 deep (the evaluation's k = 100, beyond its depth of 5)."""
    from pipeline.strategies import STRATEGIES
    from store import read
    rows = read.gain(read.connect(propensity_db), 1)
    assert {r["strategy"] for r in rows} == set(STRATEGIES)
    assert [r["n"] for r in rows if r["strategy"] == "propensity"] == list(range(1, 101))
