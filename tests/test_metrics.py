"""Offline metrics on a case small enough to work out by hand.

Two products, five candidate users (positions 0-4), audiences of three:
  P0: [0, 1, 2]   truth: users 1 and 3 (known) and one user the candidates never saw -> 3 truth users
  P1: [0, 3, 4]   truth: user 4                                                     -> 1 truth user
Excluded: user 4 from P0, user 1 from P1 (neither is in that product's truth or audience).

k = 3: P0 hits user 1 at rank 2, P1 hits user 4 at rank 3.
  precision: 1/3 and 1/3 -> macro 1/3, micro 2/6.      recall: 1/3 and 1/1 -> macro 2/3, micro 2/4.
  hit rate 1.  NDCG: P0 (1/log2 3) / (1 + 1/log2 3 + 1/log2 4) = 0.29608, P1 (1/log2 4) / 1 = 0.5.
  ceiling: reachable P0 = 2 (users 1, 3), P1 = 1 -> (2 + 1) / 4 = 0.75.
  coverage: all five users / 5 = 1.  exposure (2, 1, 1, 1, 1): Gini 2*(1+2+3+4+10)/(5*6) - 6/5 = 2/15.
  random: P0 min(3, 4 allowed) * 2/4 = 1.5 hits, P1 3 * 1/4 = 0.75 -> recall 2.25/4; lift 0.5/0.5625.
k = 1: both audiences start with user 0, who is nobody's truth: every hit metric 0.
  ceiling (min(2, 1) + min(1, 1)) / 4 = 0.5; coverage 1/5; exposure (2, 0, 0, 0, 0): Gini 0.8.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation import metrics
from pipeline.evaluation.metrics import (
    METRICS,
    evaluate_audiences,
    expected_random_recall,
    gini,
    make_truth,
    recall_standard_error,
    versus,
)


@pytest.fixture(params=[None, 3], ids=["all cells at once", "one product per step"])
def case(request, monkeypatch):
    if request.param:  # HIT_CELLS = depth: the hit lookup goes product by product, with the same answers
        monkeypatch.setattr(metrics, "HIT_CELLS", request.param)
    truth = make_truth(truth_products=np.array([0, 0, 0, 1]), truth_positions=np.array([1, 3, -1, 4]),
                       n_products=2, n_users=5,
                       excluded_products=np.array([0, 1]), excluded_positions=np.array([4, 1]))
    positions = np.array([[0, 1, 2], [0, 3, 4]])
    return evaluate_audiences(positions, np.array([3, 3]), truth, ks=(1, 3)), truth


def test_every_metric_at_k3(case):
    m, _ = case
    ndcg_p0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    expected = {"precision_macro": 1 / 3, "precision_micro": 2 / 6, "recall_macro": 2 / 3, "recall_micro": 0.5,
                "hit_rate": 1.0, "ndcg": (ndcg_p0 + 0.5) / 2, "reachable_ceiling": 0.75, "user_coverage": 1.0,
                "exposure_gini": 2 / 15, "lift_over_random": 0.5 / 0.5625}
    assert set(expected) == set(METRICS)
    for metric, value in expected.items():
        assert m[(3, metric)] == pytest.approx(value), metric


def test_every_metric_at_k1(case):
    m, _ = case
    for metric in ("precision_macro", "precision_micro", "recall_macro", "recall_micro", "hit_rate", "ndcg",
                   "lift_over_random"):
        assert m[(1, metric)] == 0.0, metric
    assert m[(1, "reachable_ceiling")] == pytest.approx(0.5)
    assert m[(1, "user_coverage")] == pytest.approx(0.2)
    assert m[(1, "exposure_gini")] == pytest.approx(0.8)


def test_truth_counts_unknown_users_but_cannot_reach_them(case):
    _, truth = case
    assert truth.truth_size.tolist() == [3, 1]
    assert truth.reachable.tolist() == [2, 1]
    assert truth.allowed.tolist() == [4, 4]
    assert expected_random_recall(truth, 3) == pytest.approx(2.25 / 4)


def test_excluded_truth_users_are_not_reachable():
    truth = make_truth(np.array([0, 0]), np.array([1, 2]), 1, 4, np.array([0]), np.array([2]))
    assert truth.reachable.tolist() == [1] and truth.truth_size.tolist() == [2]


def test_short_audiences_count_only_their_filled_slots():
    truth = make_truth(np.array([0]), np.array([1]), 1, 3, np.zeros(0, np.int64), np.zeros(0, np.int64))
    m = evaluate_audiences(np.array([[1, 0, 0]]), np.array([1]), truth, ks=(3,))
    assert m[(3, "precision_micro")] == 1.0 and m[(3, "precision_macro")] == pytest.approx(1 / 3)
    assert m[(3, "user_coverage")] == pytest.approx(1 / 3)


@pytest.mark.parametrize("counts, expected", [
    ([3, 3, 3, 3], 0.0),           # everyone equally exposed
    ([0, 0, 0, 4], 0.75),          # one of four users holds everything: (n - 1) / n
    ([0, 0, 0, 0], 0.0),           # nothing to share
    ([1, 2, 3, 4], 0.25),          # 2*(1+4+9+16)/(4*10) - 5/4
])
def test_gini(counts, expected):
    assert gini(np.array(counts)) == pytest.approx(expected)


def truth_of(by_product: list[list[int]], n_users: int, unknown: tuple[int, ...] = ()):
    """Truth pairs: by_product[p] = the candidate users who engaged with product p; `unknown`: products
    of truth pairs by users the candidates do not know."""
    products = [p for p, users in enumerate(by_product) for _ in users] + list(unknown)
    positions = [u for users in by_product for u in users] + [-1] * len(unknown)
    return make_truth(np.array(products, dtype=np.int64), np.array(positions, dtype=np.int64), len(by_product),
                      n_users, np.zeros(0, np.int64), np.zeros(0, np.int64))


def keys(pairs: list[tuple[int, int]], n_users: int) -> np.ndarray:
    return np.sort(np.array([p * n_users + u for p, u in pairs], dtype=np.int64))


# Worked by hand over the T truth pairs, y = hit (minus the other's), R = sum(y) / T; per grouping,
# V = G / (G - 1) * sum of squared cluster sums of (y - R) / T^2; SE = sqrt(V_P + V_U - V_I), or of
# max(V_P, V_U) where that is not positive.
@pytest.mark.parametrize("by_product, n_users, unknown, hits, against, expected", [
    # One pair per user: V_U = V_I, so the product-clustered error sqrt(P / (P - 1) * sum((h - R t)^2)) / T.
    ([[0, 1], [2, 3]], 4, (), [(0, 0)], [], 0.25),                          # R 1/4, residuals +-1/2
    ([[0, 1], [2, 3], [4, 5]], 6, (), [(0, 0), (0, 1), (2, 4)], [], math.sqrt(3) / 6),  # residuals 1, -1, 0
    ([[0], [1], [2]], 3, (), [(0, 0), (1, 1), (2, 2)], [], 0.0),             # every pair hit: nothing moves
    ([[0, 1], [2, 3], [4, 5]], 6, (), [], [(0, 0)], 1 / 6),  # paired difference: R -1/6, -2/3, 1/3, 1/3
    # User 0 engaged with both products and is the hit in both audiences. Products: residuals 1 - 1/2 * 2
    # = 0 each, V_P 0 (the one-way error said nothing could move). Users (t 2, 1, 1; hits 2, 0, 0):
    # residuals 1, -1/2, -1/2, V_U 3/2 * 3/2 / 16 = 9/64; pairs +-1/2, V_I 4/3 / 16 = 1/12: V 11/192.
    ([[0, 1], [0, 2]], 3, (), [(0, 0), (1, 0)], [], math.sqrt(11 / 192)),
    # The same two hits by two users (narrower): user residuals 0, -1/2, 1/2, V_U 3/2 * 1/2 / 16 = 3/64,
    # below V_I: V_P + V_U - V_I < 0, so max(V_P, V_U): sqrt(3) / 8.
    ([[0, 1], [0, 2]], 3, (), [(0, 0), (1, 2)], [], math.sqrt(3) / 8),
    # Both groupings matter: pairs (0,0) (0,1) (1,0) (1,2) (2,2), hits (0,0) (0,1) (1,0), R 3/5. Products
    # (hits 2, 1, 0; t 2, 2, 1): .8, -.2, -.6, 3/2 * 1.04 = 1.56. Users (hits 2, 1, 0; t 2, 1, 2): .8, .4,
    # -1.2, 3/2 * 2.24 = 3.36. Pairs: .4 x 3, -.6 x 2, 5/4 * 1.2 = 1.5. SE sqrt(1.56 + 3.36 - 1.5) / 5.
    ([[0, 1], [0, 2], [2]], 3, (), [(0, 0), (0, 1), (1, 0)], [], math.sqrt(3.42) / 5),
    # An unknown user's pair in product 1 (T 5, R 1/5): products .6, -.6, 2 * .72 = 1.44; users .6, -.2,
    # -.2 and the unknown -.2, 4/3 * .48 = .64; pairs .8, -.2 x 4, 5/4 * .8 = 1: SE sqrt(1.08) / 5.
    ([[0, 1], [0, 2]], 3, (1,), [(0, 0)], [], math.sqrt(1.08) / 5),
    # A paired difference that one user carries: y (1,0) = +1, (1,2) = -1, R 0. Products 0, 0; users 1, 0,
    # -1: V_U 3/2 * 2 / 16 = 3/16; pairs 4/3 * 2 / 16 = 1/6: SE sqrt(1/48).
    ([[0, 1], [0, 2]], 3, (), [(0, 0), (1, 0)], [(0, 0), (1, 2)], math.sqrt(1 / 48)),
    ([[0, 1, 2]], 3, (), [(0, 0)], [], math.nan),   # one product: no spread to measure
    ([[], []], 3, (), [], [], math.nan),            # no truth
])
def test_recall_standard_error(by_product, n_users, unknown, hits, against, expected):
    got = recall_standard_error(truth_of(by_product, n_users, unknown), keys(hits, n_users), keys(against, n_users))
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize("difference, se, word", [
    (0.03, 0.01, "higher"), (-0.03, 0.01, "lower"),
    (0.0195, 0.01, "within noise"), (0.0197, 0.01, "higher"),  # the 95% bound is 1.95996 standard errors
    (-0.0195, 0.01, "within noise"), (0.0, 0.0, "within noise"), (0.5, math.nan, "within noise"),
])
def test_a_difference_is_beyond_chance_outside_its_95_percent_interval(difference, se, word):
    assert versus(difference, se) == word
