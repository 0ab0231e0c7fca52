"""Audience overlap: the row Jaccard, random same-category pairs, and the figure `pipeline bench` prints."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.cli.bench import same_category_jaccard
from pipeline.evaluation.overlap import jaccard, same_category_pairs
from tests.conftest import API_EVENTS, write_events


@pytest.mark.parametrize("a, a_size, b, b_size, k, expected", [
    ([1, 2, 3], 3, [2, 3, 4], 3, 3, 2 / 4),    # {2, 3} shared of {1, 2, 3, 4}
    ([1, 2, 3], 3, [3, 2, 1], 3, 3, 1.0),      # order does not matter
    ([1, 2, 3], 3, [2, 3, 4], 3, 1, 0.0),      # top-1: {1} against {2}
    ([1, 2, 9], 2, [1, 9, 0], 2, 3, 1 / 3),    # beyond a row's size nothing counts: {1, 2} against {1, 9}
    ([0, 0, 0], 0, [0, 0, 0], 0, 3, 1.0),      # two empty lists are identical
])
def test_jaccard_of_two_rows(a, a_size, b, b_size, k, expected):
    got = jaccard(np.array([a]), np.array([a_size]), np.array([b]), np.array([b_size]), k)
    assert got.tolist() == [pytest.approx(expected)]


def test_same_category_pairs_join_two_different_products_of_one_category():
    # codes: products 0 and 1 share category 0, products 2 and 4 share 1; 3 has none, 5 is alone in 2
    codes = np.array([0, 0, 1, -1, 1, 2])
    first, second = same_category_pairs(codes, pairs=400, seed=3)
    assert first.size == second.size == 400
    assert {tuple(sorted(p)) for p in zip(first.tolist(), second.tolist())} == {(0, 1), (2, 4)}
    assert set(first.tolist()) == {0, 1, 2, 4}  # every product of a shared category is drawn


def test_no_shared_category_gives_no_pairs():
    assert [x.size for x in same_category_pairs(np.array([0, 1, -1, -1]), pairs=10, seed=0)] == [0, 0]


def test_bench_reads_the_mean_over_same_category_pairs_from_the_run(tmp_path):
    # The API's small example ranked by engagement, excluding whoever touched the product: product 10 ->
    # users [3, 4, 5], product 11 -> [4, 5], product 12 -> [2, 3]. With 10 and 11 in one category and 12
    # alone in another, every pair is (10, 11): Jaccard {3, 4, 5} vs {4, 5} = 2/3.
    from pipeline.config import RunParams
    from pipeline.run import execute
    events = write_events(tmp_path / "e.csv", [(c, p, e, f"2023-01-05T{t}:00") for c, p, e, t in API_EVENTS])
    catalogue = tmp_path / "products.csv"
    catalogue.write_text("product_id,category\n10,Shoes\n11,Shoes\n12,Books\n")
    db = tmp_path / "a.db"
    run = execute(events, db=db, params=RunParams(depth=5, holdout=0, strategy="engagement"),
                  products_path=catalogue)
    mean, pairs = same_category_jaccard(db, run.run_id, seed=0, pairs=50)
    assert pairs == 50 and mean == pytest.approx(2 / 3)
