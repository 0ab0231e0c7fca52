"""The shared array helpers: answers worked by hand, and numpy's own lexsort as the reference."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.arrays import best_first, packed_keys, run_starts, search


def test_best_first_by_group_then_score_then_tie():
    # group 0: rows 1 and 3 score 0.2 each, the lower tie (row 3's 2) first; group 1: row 2 (0.9), then
    # rows 0 and 4 (0.5 each), row 4's tie 0 before row 0's 3
    groups, scores, ties = np.array([1, 0, 1, 0, 1]), np.array([0.5, 0.2, 0.9, 0.2, 0.5]), np.array([3, 7, 1, 2, 0])
    assert best_first(groups, scores, ties).tolist() == [3, 1, 2, 4, 0]


def test_best_first_puts_a_missing_score_where_lexsort_does():
    groups, scores, ties = np.zeros(3, int), np.array([0.5, np.nan, 0.9]), np.array([0, 1, 2])
    assert best_first(groups, scores, ties).tolist() == np.lexsort((ties, -scores, groups)).tolist() == [2, 0, 1]


def test_best_first_keeps_equal_rows_in_array_order():
    assert best_first(np.zeros(3, int), np.ones(3), np.full(3, 5)).tolist() == [0, 1, 2]


@pytest.mark.parametrize("n, groups, distinct, ties", [
    (0, 5, 3, 5),
    (1, 5, 3, 5),
    (2000, 40, 7, 30),            # many equal scores: the tie decides
    (2000, 2000, 10**6, 4 * 10**6),
    (500, 2**40, 100, 2**30),     # more than 63 bits: numpy's lexsort itself
])
def test_best_first_is_the_three_key_lexsort(n, groups, distinct, ties):
    rng = np.random.default_rng(n)
    g, t = rng.integers(0, groups, n), rng.integers(0, ties, n)
    s = rng.integers(0, distinct, n) / distinct
    assert np.array_equal(best_first(g, s, t), np.lexsort((t, -s, g)))


def test_packed_keys_shift_each_column_past_the_next_ones_bits():
    # second column up to 3: two bits, so (1, 2) -> 1 << 2 | 2 = 6 and (0, 3) -> 3
    assert packed_keys(np.array([1, 0]), np.array([2, 3])).tolist() == [6, 3]
    assert packed_keys(np.array([1, -1]), np.array([2, 3])) is None      # negative: no order-keeping packing
    assert packed_keys(np.array([2**40]), np.array([2**30])) is None     # 41 + 31 bits do not fit


@pytest.mark.parametrize("sorted_from", [10**9, 1])  # probes as given; probes sorted first
def test_search_finds_each_keys_leftmost_place(monkeypatch, sorted_from):
    from pipeline import arrays
    monkeypatch.setattr(arrays, "SORTED_PROBES_FROM", sorted_from)
    # [1, 3, 3, 7]: 8 goes past the end (4), 3 before the first 3 (1), 0 first (0), 4 after both 3s (3)
    keys = np.tile(np.array([[8, 3], [0, 4]]), (300, 1))  # 1,200 probes: enough to be sorted first
    assert search(np.array([1, 3, 3, 7]), keys).tolist() == np.tile(np.array([[4, 1], [0, 3]]), (300, 1)).tolist()


@pytest.mark.parametrize("values, starts", [
    ([4, 4, 7, 9, 9, 9], [0, 2, 3]),
    ([5], [0]),
    ([], []),
])
def test_run_starts_marks_where_each_run_of_equal_values_begins(values, starts):
    assert run_starts(np.array(values, dtype=np.int64)).tolist() == starts
