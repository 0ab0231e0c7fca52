"""Audiences on the four-user example: engagement order is 1 (0.8), 3 (0.625), 4 (0.505), 2 (0.113).
Who interacted: P1 <- users 1 (purchased, cart), 3; P2 <- 1 (cart), 4; P3 <- 2, 3."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import RunParams
from pipeline.data.clean import clean
from pipeline.data.features import user_features
from pipeline.data.ingest import read_events
from pipeline.strategies.ranking import engagement_audiences, fallback_audience, skip_excluded
from tests.conftest import FOUR_USERS, write_events


def audiences(path, **params) -> dict[int, list[int]]:
    p = RunParams(**params)
    events = clean(read_events(path), p).events
    users = user_features(events, p)
    products = np.sort(events.product_id.unique())
    out = {}
    for block in engagement_audiences(events, users, p, products):
        for i, product in enumerate(block.product_ids.tolist()):
            out[product] = block.customer_ids[i, :block.sizes[i]].tolist()
    return out


@pytest.fixture
def path(tmp_path):
    return write_events(tmp_path / "e.csv", FOUR_USERS)


@pytest.mark.parametrize("exclude, expected", [
    ("all", {1: [4, 2], 2: [3, 2], 3: [1, 4]}),
    ("purchased", {1: [3, 4, 2], 2: [1, 3, 4, 2], 3: [1, 3, 4, 2]}),   # user 1 carted P2: stays in
    ("none", {1: [1, 3, 4, 2], 2: [1, 3, 4, 2], 3: [1, 3, 4, 2]}),
])
def test_exclusion_rules(path, exclude, expected):
    assert audiences(path, exclude=exclude, depth=10) == expected


@pytest.mark.parametrize("depth, expected", [(1, {1: [4], 2: [3], 3: [1]}), (2, {1: [4, 2], 2: [3, 2], 3: [1, 4]})])
def test_depth_is_respected(path, depth, expected):
    assert audiences(path, depth=depth) == expected


def test_nobody_excluded_appears_on_random_data():
    """Against a brute-force reference: the first `depth` allowed positions of a shared order."""
    rng = np.random.default_rng(7)
    n_products, n_users, depth = 300, 400, 25
    block = np.sort(rng.integers(0, n_products, 3000))
    positions = rng.integers(0, 60, 3000)   # crowd the top of the order so exclusions matter
    pairs = np.unique(np.stack([block, positions]), axis=1)
    got, sizes = skip_excluded(pairs[1], pairs[0], n_products, depth, n_users)
    for p in range(0, n_products, 7):   # checking a sample by brute force
        banned = set(pairs[1][pairs[0] == p].tolist())
        want = [x for x in range(n_users) if x not in banned][:depth]
        assert got[p, :sizes[p]].tolist() == want


def test_ties_follow_later_last_event_then_smaller_id(tmp_path):
    path = write_events(tmp_path / "e.csv", [(12, 102, "cart", "2023-01-01T09:00:00"),
                                             (10, 100, "cart", "2023-01-01T08:00:00"),
                                             (11, 101, "cart", "2023-01-01T09:00:00")])
    assert audiences(path, depth=5) == {100: [11, 12], 101: [12, 10], 102: [11, 10]}


def test_fallback_is_the_global_list(path):
    p = RunParams(depth=3)
    users = user_features(clean(read_events(path), p).events, p)
    fallback = fallback_audience(users, 3)
    assert fallback.customer_id.tolist() == [1, 3, 4]
    assert fallback["rank"].tolist() == [1, 2, 3]
    assert fallback.score.tolist() == pytest.approx([0.8, 0.625, users.set_index("customer_id").loc[4].engagement_score])


def test_same_input_gives_identical_audiences(path):
    assert audiences(path, depth=3) == audiences(path, depth=3)


def test_ranking_a_subset_of_products_ignores_the_others_exclusions():
    from pipeline.strategies.ranking import rank_by_shared_order
    # users (ids 10..40) in the shared order: rows 3, 2, 1, 0, i.e. ids 40, 30, 20, 10
    order, ids, scores = np.array([3, 2, 1, 0]), np.array([10, 20, 30, 40]), np.array([0.4, 0.3, 0.2, 0.1])
    # product 5 excludes positions 0 and 1 of the order, product 7 excludes position 0; only 5 and 9 are ranked
    blocks = list(rank_by_shared_order(np.array([5, 9]), np.array([5, 5, 7]), np.array([0, 1, 0]), order, ids,
                                       scores, 2))
    assert blocks[0].customer_ids.tolist() == [[20, 10], [40, 30]]
    assert blocks[0].positions.tolist() == [[1, 0], [3, 2]]


@pytest.mark.parametrize("index, rows, scores", [
    ([0, 0, 1], [1, 3, 2], [0.5, 0.9, 0.7]),                    # one per pair, in (product, user) order
    ([1, 0, 0, 0], [2, 3, 1, 3], [0.7, 0.2, 0.5, 0.9]),         # shuffled, user 3 twice for product 0
    ([0, 0, 1, 0], [3, 3, 2, 1], [0.9, 0.2, 0.7, 0.5]),         # the repeat's best first
    ([0, 1, 0], [3, 2, 1], [0.9, 0.7, 0.5]),                    # shuffled, one per pair (as `als` hands them)
])
def test_assemble_keeps_each_pairs_best_score_skips_the_excluded_and_fills(index, rows, scores):
    from pipeline.strategies.ranking import Candidates, Exclusions, assemble
    ids = np.array([10, 20, 30, 40, 50])
    excluded = Exclusions(np.array([0]), np.array([1]), np.array([0 * 5 + 1]), 5)  # product 0 excludes user 1
    candidates = Candidates(np.array(index), np.array(rows), np.array(scores))
    [block] = assemble(np.array([100, 200]), excluded, 3, ids, np.arange(5), candidates, filler=np.arange(5))
    # product 100: user 3 at its best 0.9, then the filler's first users but the excluded 1 and the placed 3
    assert block.customer_ids.tolist() == [[40, 10, 30], [30, 10, 20]]
    assert block.scores.tolist() == [[0.9, 0.0, 0.0], [0.7, 0.0, 0.0]]


def test_assemble_fills_from_the_filler_only_where_the_shared_lists_leave_room():
    from pipeline.strategies.ranking import Candidates, Exclusions, SharedLists, assemble
    ids = np.array([10, 20, 30, 40, 50])
    excluded = Exclusions(np.array([1]), np.array([3]), np.array([1 * 5 + 3]), 5)  # product 200 excludes user 3
    candidates = Candidates(np.array([0, 1]), np.array([4, 2]), np.array([0.8, 0.6]))
    # list 0: users 3, 4, 1 (product 100); list 1: user 3 (product 200); list 2: user 4 at score 0 (product 300)
    shared = SharedLists(np.array([3, 4, 1, 3, 4]), np.array([0, 3, 4, 5]), np.array([0.5, 0.4, 0.3, 0.2, 0.0]),
                         np.array([0, 1, 2]))
    [block] = assemble(np.array([100, 200, 300]), excluded, 3, ids, np.arange(5), candidates, shared,
                       filler=np.arange(5))
    # 100: its own 4, then its list but the placed 4: full, no filler.
    # 200: its own 2; its list holds only the excluded 3; the filler's 0 and 1 (not 3, not the placed 2).
    # 300: its list's 4 scores 0, as the filler's users do: the tie goes to the better tie rank (0, 1, 2).
    assert block.customer_ids.tolist() == [[50, 40, 20], [30, 10, 20], [10, 20, 30]]
    assert block.scores.tolist() == [[0.8, 0.5, 0.3], [0.6, 0.0, 0.0], [0.0, 0.0, 0.0]]


@pytest.mark.parametrize("n, size, bounds", [
    (5, 2, [(0, 2), (2, 4), (4, 5)]),
    (4, 2, [(0, 2), (2, 4)]),
    (3, 40, [(0, 3)]),
    (0, 8, []),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_product_blocks_cover_every_product_once_in_order(monkeypatch, threads, n, size, bounds):
    from pipeline.strategies import ranking
    monkeypatch.setattr(ranking, "BLOCK_THREADS", threads)  # the blocks do not depend on the threads
    assert list(ranking.product_blocks(n, lambda start, stop: (start, stop), size)) == bounds


def test_product_blocks_build_no_more_than_two_ahead_and_raise_a_blocks_error(monkeypatch):
    import threading
    import time

    from pipeline.strategies import ranking
    monkeypatch.setattr(ranking, "BLOCK_THREADS", 2)
    started, release = [], threading.Event()

    def build(start, stop):
        started.append(start)
        if start == 2:
            release.wait(5)  # held while the test looks at what else has started
        if start == 4:
            raise ValueError("block 4")
        return start

    blocks = ranking.product_blocks(8, build, 2)
    assert next(blocks) == 0
    time.sleep(0.1)  # a free worker would have taken block 4 by now, had it been handed out
    assert set(started) <= {0, 2}
    release.set()
    assert next(blocks) == 2
    with pytest.raises(ValueError, match="block 4"):
        next(blocks)
