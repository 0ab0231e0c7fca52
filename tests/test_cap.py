"""The exposure cap: no user in more than K audiences, products served in order of reach, a capped
user's place going to the product's next candidate, then to the most engaged users with room left."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import RunParams
from pipeline.evaluation.cap import apply_cap, reach_priority, stack_blocks
from pipeline.run import execute
from store import queries
from tests.conftest import FOUR_USERS, write_events

NONE = (np.zeros(0, np.int64), np.zeros(0, np.int64))


def cap(candidates, depth, k, reach, fill_order=None, excluded=NONE, sizes=None):
    candidates = np.array(candidates)
    n_users = int(candidates.max()) + 1 if fill_order is None else len(fill_order)
    fill_order = np.arange(n_users) if fill_order is None else np.array(fill_order)
    scores = np.tile(np.linspace(1.0, 0.5, candidates.shape[1]), (len(candidates), 1))
    sizes = np.full(len(candidates), candidates.shape[1]) if sizes is None else np.array(sizes)
    out = apply_cap(candidates, scores, sizes, depth, k, reach_priority(np.array(reach)), fill_order,
                    fill_scores=np.full(n_users, 0.1), excluded=excluded)
    return [row[:size].tolist() for row, size in zip(out.positions, out.sizes)], out


def test_highest_reach_product_first_and_capped_places_go_to_the_next_candidates():
    # Same six candidates everywhere; P1 has the most users, then P0, then P2.
    audiences, _ = cap([[0, 1, 2, 3, 4, 5]] * 3, depth=2, k=1, reach=[5, 10, 1])
    assert audiences == [[2, 3], [0, 1], [4, 5]]


def test_k_at_least_the_number_of_products_is_no_cap():
    rng = np.random.default_rng(3)
    candidates = np.array([rng.permutation(20) for _ in range(4)])
    audiences, _ = cap(candidates, depth=5, k=4, reach=[1, 2, 3, 4])
    assert audiences == candidates[:, :5].tolist()


def test_when_own_candidates_run_out_the_most_engaged_users_with_room_fill_in():
    # Three candidates each, K=1: P1 takes 0 and 1, P0 gets 2, P2 nothing of its own. Spare users in
    # engagement order 5, 4, 3 go to P0 (higher reach) first, then P2.
    audiences, out = cap([[0, 1, 2]] * 3, depth=2, k=1, reach=[5, 10, 1], fill_order=[5, 4, 3, 2, 1, 0])
    assert audiences == [[2, 5], [0, 1], [4, 3]]
    assert np.all(np.diff(out.scores, axis=1) <= 0)  # filler users come after, never above


def test_filler_respects_the_exclusion_rule():
    # P2 may not get user 4: it takes 3, and nobody else has room left.
    audiences, _ = cap([[0, 1, 2]] * 3, depth=2, k=1, reach=[5, 10, 1], fill_order=[5, 4, 3, 2, 1, 0],
                       excluded=(np.array([2]), np.array([4])))
    assert audiences == [[2, 5], [0, 1], [3]]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_no_user_above_k_no_repeats_no_excluded_on_random_lists(k):
    rng = np.random.default_rng(k)
    n_products, n_users, depth = 40, 60, 5
    candidates = np.array([rng.permutation(n_users)[:15] for _ in range(n_products)])
    excluded = (np.repeat(np.arange(n_products), 3), rng.integers(0, n_users, n_products * 3))
    keep = ~np.any(candidates[excluded[0]] == excluded[1][:, None], axis=1)  # candidates are never excluded
    excluded = (excluded[0][keep], excluded[1][keep])
    audiences, _ = cap(candidates, depth, k, rng.integers(1, 100, n_products), fill_order=rng.permutation(n_users),
                       excluded=excluded)
    exposure = np.bincount(np.concatenate([np.array(a, dtype=int) for a in audiences]), minlength=n_users)
    assert exposure.max() <= k
    assert all(len(set(a)) == len(a) for a in audiences)
    banned = set(zip(excluded[0].tolist(), excluded[1].tolist()))
    assert not any((p, u) in banned for p, a in enumerate(audiences) for u in a)
    # Nobody is left short while an allowed user still has room.
    for p, a in enumerate(audiences):
        if len(a) < depth:
            spare = [u for u in range(n_users) if u not in a and (p, u) not in banned and exposure[u] < k]
            assert spare == [], (p, a)


def test_own_candidates_keep_their_order():
    # P0 (more reach) takes 3, 1, 4; P1 loses 1, 3 and 4 to it and keeps its own order for 0 and 2.
    audiences, _ = cap([[3, 1, 4, 0, 2], [1, 3, 0, 4, 2]], depth=3, k=1, reach=[2, 1])
    assert audiences == [[3, 1, 4], [0, 2]]


def test_a_capped_run_keeps_every_user_within_k(tmp_path):
    path = write_events(tmp_path / "e.csv", FOUR_USERS)
    db = tmp_path / "a.db"
    result = execute(path, db=db, params=RunParams(depth=2, strategy="engagement", max_audiences_per_user=1))
    con = queries.connect(db)
    counts = pd.read_sql_query("SELECT customer_id, count(*) AS n FROM audiences WHERE run_id = ? "
                               "GROUP BY customer_id", con, params=[result.run_id])
    assert counts["n"].max() <= 1
    assert queries.user(con, result.run_id, int(counts["customer_id"][0]))["audience_count"] <= 1


def test_stacked_blocks_pad_past_each_size_with_row_0_and_keep_product_order():
    from pipeline.strategies.ranking import AudienceBlock
    ids = np.array([100, 200, 300, 400])
    first = AudienceBlock(np.array([5]), np.array([1], np.int32), np.array([[3, 2]]), np.array([[0.9, 0.1]]), ids)
    second = AudienceBlock(np.array([7, 8]), np.array([2, 0], np.int32), np.array([[1, 2], [3, 3]]),
                           np.array([[0.8, 0.7], [0.0, 0.0]]), ids)
    positions, scores, sizes = stack_blocks([first, second], np.array([5, 7, 8]))
    # product 5 keeps its one user (row 3) then padding; product 8 has none: all padding
    assert positions.tolist() == [[3, 0], [1, 2], [0, 0]]
    assert sizes.tolist() == [1, 2, 0] and scores[1].tolist() == [0.8, 0.7]
    with pytest.raises(RuntimeError):
        stack_blocks([second, first], np.array([5, 7, 8]))
