"""Each strategy on data built so the right answer is obvious."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pipeline.config import RunParams
from pipeline.data.clean import clean
from pipeline.data.features import user_features
from pipeline.data.ingest import read_events
from pipeline.strategies import STRATEGIES, als, audiences, get_strategy
from pipeline.strategies.affinity import CATEGORY_PRIOR, category_shares
from pipeline.strategies.baselines import activity_scores
from store.errors import InputError
from tests.conftest import COMMUNITIES, FOUR_USERS, day, write_events


def load(tmp_path, rows):
    events = clean(read_events(write_events(tmp_path / "e.csv", rows)), RunParams()).events
    return events, user_features(events, RunParams())


def rank(name, events, users, products, catalogue=None, **params) -> dict[int, list[int]]:
    p = RunParams(**{"depth": 20, **params})
    out = {}
    for block in audiences(name, events, users, p, np.asarray(products, dtype=np.int64), catalogue):
        for i, product in enumerate(block.product_ids.tolist()):
            out[product] = block.customer_ids[i, :block.sizes[i]].tolist()
    return out


@pytest.fixture
def communities(tmp_path):
    return load(tmp_path, COMMUNITIES)


def test_engagement_would_pick_the_other_community(communities):
    events, users = communities
    assert set(rank("engagement", events, users, [12])[12][:3]) == {5, 6, 7}


@pytest.mark.parametrize("name", ["affinity", "als", "itemknn"])
def test_product_neighbours_bring_their_own_community_first(communities, name, monkeypatch):
    monkeypatch.setattr(als, "FACTORS", 2)  # two communities, two tastes (full rank would only copy the data)
    events, users = communities
    audiences = rank(name, events, users, [12, 22])
    assert set(audiences[12][:3]) == {1, 2, 3}
    assert set(audiences[22][:3]) == {5, 6, 7}
    assert 4 not in audiences[12] and 8 not in audiences[22]  # they already took the product
    assert len(audiences[12]) == 7  # then everyone else: audiences stay full


def test_propensity_with_nothing_to_learn_from_still_ranks_by_the_ties(communities, monkeypatch):
    # Too few events for a single engaged pair after the inner cut, so the ranker's prior scores. Every
    # user is all in the one category; only the products' neighbours tell the two communities apart.
    monkeypatch.setattr(als, "FACTORS", 2)
    events, users = communities
    catalogue = pd.DataFrame({"product_id": [10, 11, 12, 20, 21, 22], "category": "A"})
    audiences = rank("propensity", events, users, [12, 22], catalogue)
    assert set(audiences[12][:3]) == {1, 2, 3}
    assert set(audiences[22][:3]) == {5, 6, 7}


# User 9 carted 30 and never bought it; users 1 and 2 bought it; users 5-7 are busy elsewhere.
CARTED = (
    [(1, 30, "purchased", day(2)), (2, 30, "purchased", day(3)), (9, 30, "cart", day(4)),
     (9, 31, "cart", day(4, 11))]
    + [(u, 40 + i, "purchased", day(5 + i)) for u in (5, 6, 7) for i in range(4)]
)


def test_a_user_who_carted_the_product_comes_first_when_the_rule_lets_them_in(tmp_path):
    events, users = load(tmp_path, CARTED)
    assert rank("affinity", events, users, [30], exclude="purchased")[30][0] == 9
    assert 9 not in rank("affinity", events, users, [30], exclude="all")[30]
    assert rank("engagement", events, users, [30], exclude="purchased")[30][0] != 9


# User 10 only ever touches Garden products (41, 42); user 11 is the only one who touched 40 (Garden);
# users 5-7 are busy in Toys. With a catalogue, 40's audience opens with the Garden customer.
LOYAL = (
    [(10, 41, "cart", day(3)), (10, 42, "purchased", day(9)), (11, 40, "purchased", day(4))]
    + [(u, 50 + i, "purchased", day(5 + i)) for u in (5, 6, 7) for i in range(4)]
)
CATALOGUE = pd.DataFrame({"product_id": [40, 41, 42, 50, 51, 52, 53],
                          "category": ["Garden"] * 3 + ["Toys"] * 4})


def test_a_category_loyal_user_comes_first_with_a_catalogue(tmp_path):
    events, users = load(tmp_path, LOYAL)
    assert rank("affinity", events, users, [40], catalogue=CATALOGUE)[40][0] == 10
    assert rank("affinity", events, users, [40])[40][0] != 10  # nothing else ties them without it


# FOUR_USERS' engagement scores (worked in test_features.py): user 1 0.8, user 3 0.625, user 4 ~0.505,
# user 2 ~0.113. Product 1: users 1 (purchased) and 3; product 2: users 1 and 4 (carts); product 3: 2 and 3.
@pytest.mark.parametrize("exclude, expected", [
    ("all", {1: [4, 2], 2: [3, 2], 3: [1, 4]}),
    ("purchased", {1: [3, 4, 2], 2: [1, 3, 4, 2], 3: [1, 3, 4, 2]}),
    ("none", {1: [1, 3, 4, 2], 2: [1, 3, 4, 2], 3: [1, 3, 4, 2]}),
])
def test_engagement_is_the_engagement_order_minus_the_excluded(tmp_path, exclude, expected):
    events, users = load(tmp_path, FOUR_USERS)
    assert rank("engagement", events, users, [1, 2, 3], exclude=exclude) == expected


def test_engagement_on_a_subset_of_products_ignores_the_other_products_exclusions(tmp_path):
    events, users = load(tmp_path, FOUR_USERS)
    # Product 2 alone: users 1 and 4 touched it; the exclusions of products 1 and 3 must not leak in.
    assert rank("engagement", events, users, [2]) == {2: [3, 2]}


ACTIVITY = (  # latest event 2023-03-01: 30 days back is 2023-01-30
    [(1, 1, "cart", f"2023-02-{d:02d}T10:00:00") for d in (20, 25)] + [(1, 1, "cart", "2023-03-01T10:00:00")]
    + [(2, 2, "cart", f"2023-02-{d:02d}T10:00:00") for d in (1, 5, 10, 15, 25)]
    + [(3, 3, "cart", "2023-02-28T09:00:00"), (3, 3, "cart", "2023-02-28T10:00:00")]
    + [(4, 4, "cart", "2022-12-31T10:00:00"), (4, 4, "cart", "2023-01-01T10:00:00")]
)


def test_activity_is_the_prototype_score(tmp_path):
    # user 1: 3 recent / (0 days + 1) = 3; user 2: 5 / (4 + 1) = 1; user 3: 2 / (1 + 1) = 1 (seen later
    # than user 2, so first on the tie); user 4: nothing in the last 30 days = 0.
    events, users = load(tmp_path, ACTIVITY)
    assert activity_scores(events, users).tolist() == [3.0, 1.0, 1.0, 0.0]
    assert rank("activity", events, users, [999]) == {999: [1, 3, 2, 4]}


def test_random_is_reproducible_allowed_only_and_changes_with_the_seed(communities):
    events, users = communities
    first = rank("random", events, users, [12, 22], seed=1)
    assert first == rank("random", events, users, [12, 22], seed=1)
    assert sorted(first[12]) == [1, 2, 3, 5, 6, 7, 8] and sorted(first[22]) == [1, 2, 3, 4, 5, 6, 7]
    assert any(rank("random", events, users, [12], seed=s)[12] != first[12] for s in range(2, 6))


def test_random_is_uniform_over_the_allowed_users():
    n_users = 5000  # above the exact path: the hashed draws
    events = pd.DataFrame({"customer_id": np.arange(1, n_users + 1, dtype=np.int64),
                           "product_id": np.where(np.arange(n_users) < 100, 7, 8).astype(np.int64),
                           "event": pd.Categorical(["cart"] * n_users),
                           "event_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(n_users), "min")})
    users = user_features(events, RunParams())
    counts = np.zeros(n_users + 1)
    for block in audiences("random", events, users, RunParams(depth=50), np.arange(1000, 1400)):
        assert np.all(block.sizes == 50)
        for row in block.customer_ids:
            assert len(set(row.tolist())) == 50
        np.add.at(counts, block.customer_ids.ravel(), 1)
    # 400 products x 50 = 20,000 picks over 5,000 users: 4 each on average; halves differ by noise only.
    assert abs(counts[1:2501].sum() - counts[2501:].sum()) < 0.05 * counts.sum()
    excluded = audiences("random", events, users, RunParams(depth=50), np.array([7]))
    assert not set(next(excluded).customer_ids[0].tolist()) & set(range(1, 101))


def test_unknown_strategy_names_are_refused():  # their descriptions are checked in test_reports
    with pytest.raises(InputError, match="unknown strategy"):
        get_strategy("collaborative")


def test_als_scores_a_product_for_every_user_with_the_same_factors():
    # Transposed use: user_factors @ item_factor. Users [2,0], [0,1], [1,2]; product A = [1,0] scores them
    # 2, 0, 1 (user 1's zero is no score); product B = [0,1] scores 0, 1, 2.
    users = np.array([[2, 0], [0, 1], [1, 2]], dtype=np.float32)
    products = np.array([[1, 0], [0, 1]], dtype=np.float32)
    found = als.top_users(products, users, pool=np.array([10, 11, 12]), width=np.array([2, 2]))
    got = sorted(zip(found.index.tolist(), found.rows.tolist(), found.scores.tolist()))
    assert got == [(0, 10, 2.0), (0, 12, 1.0), (1, 11, 1.0), (1, 12, 2.0)]


def test_als_asks_top_k_for_enough_users_to_replace_the_excluded_ones_in_its_pool():
    # Six users, the pool is users 0-3; product 50's vector scores them 4, 3, 2, 1. User 0 (in the pool)
    # and user 5 (outside it, so never among the top-k) are excluded. With depth 2 the audience is users 1
    # and 2: top-k must be asked for 3 (2 + the one excluded pool user), not 2 (then only user 1 is left).
    from pipeline.strategies.ranking import Exclusions
    model = als.ALS()
    model.items, model.item_factors = np.array([50]), np.array([[1.0]], np.float32)
    model.pool, model.user_factors = np.arange(4), np.array([[4], [3], [2], [1]], np.float32)
    model.ids, model.eng_rank = np.arange(100, 106), np.arange(6)
    index, rows = np.array([0, 0]), np.array([0, 5])
    block = next(model.rank(np.array([50]), Exclusions(index, rows, index * 6 + rows, 6), depth=2))
    assert block.customer_ids[0].tolist() == [101, 102] and block.scores[0].tolist() == [3.0, 2.0]


@pytest.mark.parametrize("chunk", [1, 50_000])
def test_als_ranks_products_in_chunks_with_each_chunks_own_exclusions(chunk, monkeypatch):
    # Pool users 0-3 with factors [4,1], [3,2], [2,3], [1,4]: product 50 = [1,0] scores them 4, 3, 2, 1,
    # product 60 = [0,1] scores them 1, 2, 3, 4. Excluded: user 0 for 50, user 3 for 60. One product per
    # chunk, 60's exclusion must be re-indexed to its chunk: 50 -> users 1, 2; 60 -> users 2, 1.
    from pipeline.strategies.ranking import Exclusions
    monkeypatch.setattr(als, "RANK_CHUNK", chunk)
    model = als.ALS()
    model.items, model.item_factors = np.array([50, 60]), np.eye(2, dtype=np.float32)
    model.pool = np.arange(4)
    model.user_factors = np.array([[4, 1], [3, 2], [2, 3], [1, 4]], np.float32)
    model.ids, model.eng_rank = np.arange(100, 106), np.arange(6)
    index, rows = np.array([0, 1]), np.array([0, 3])
    blocks = list(model.rank(np.array([50, 60]), Exclusions(index, rows, index * 6 + rows, 6), depth=2))
    got = {int(p): (b.customer_ids[i].tolist(), b.scores[i].tolist()) for b in blocks for i, p in enumerate(b.product_ids)}
    assert got == {50: ([101, 102], [3.0, 2.0]), 60: ([102, 101], [3.0, 2.0])}


def test_itemknn_scores_users_through_the_products_neighbours():
    import scipy.sparse as sp

    from pipeline.strategies.itemknn import neighbour_scores
    # Users 0, 1, 2 touched items 0, 1, 2 (weights 1, 2, 1). Item 2's neighbours: item 0 (0.5), item 1 (0.2).
    matrix = sp.csr_matrix(np.diag([1.0, 2.0, 1.0]))
    similarity = sp.csc_matrix(np.array([[0, 0, 0.5], [0, 0, 0.2], [0, 0, 0]]))
    found = neighbour_scores(matrix, similarity, np.array([100, 101, 102]), np.array([102, 999]))
    got = sorted(zip(found.index.tolist(), found.rows.tolist(), found.scores.tolist()))
    assert got == [(0, 0, 0.5), (0, 1, 0.4)]  # user 1: weight 2 x 0.2; product 999 is unknown


def test_merging_puts_empty_cells_last_and_breaks_ties_in_engagement_order():
    from pipeline.strategies.lists import merge_disjoint
    eng_rank = np.array([3, 0, 2, 1])  # engagement order: users 1, 3, 2, 0
    positions = [np.array([[0, 1]]), np.array([[2, 3]])]  # user 1's cell is empty, though most engaged
    scores = [np.array([[0.5, -np.inf]]), np.array([[0.0, 0.0]])]
    users, out_scores, sizes = merge_disjoint(positions, scores, eng_rank, n_users=4, depth=4)
    assert users[0, :sizes[0]].tolist() == [0, 3, 2] and out_scores[0, :3].tolist() == [0.5, 0.0, 0.0]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_product_the_events_never_mention_gets_a_full_audience(communities, name):
    events, users = communities
    audiences = rank(name, events, users, [12, 999])
    assert sorted(audiences[999]) == list(range(1, 9)) and len(audiences[12]) == 7


def test_the_als_scoring_pool_is_bounded_broadest_histories_first():
    unique = np.array([1, 3, 2, 5, 2])
    eng_rank = np.array([0, 4, 1, 3, 2])        # among the 2-product users, 2 ranks above 4
    assert als.scoring_pool(unique, eng_rank, limit=2).tolist() == [1, 3]
    assert als.scoring_pool(unique, eng_rank, limit=3).tolist() == [1, 2, 3]
    assert als.scoring_pool(unique, eng_rank, limit=9).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("item, confidence, expected", [
    # items y0 = (1, 0), y1 = (0, 2): M = Y'Y + 0.01 I = diag(1.01, 4.01); the user solves
    # (M + (c - 1) y y') x = c y
    (0, 3.0, [3 / 3.01, 0.0]),   # diag(1.01 + 2, 4.01) x = (3, 0)
    (1, 2.0, [0.0, 4 / 8.01]),   # diag(1.01, 4.01 + 4) x = (0, 4)
    (1, 1.0, [0.0, 2 / 4.01]),   # c = 1: no extra weight, M x = (0, 2)
])
def test_a_one_product_users_factors_solve_the_als_normal_equations(item, confidence, expected):
    assert als.REGULARIZATION == 0.01
    items = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    users = np.full((2, 2), -1.0, np.float32)
    als._one_product_users(items, np.array([item]), np.array([confidence], np.float32), users, np.array([1]))
    assert users[1].tolist() == pytest.approx(expected, rel=1e-6)
    assert users[0].tolist() == [-1.0, -1.0]  # only the rows asked for are set


def test_the_als_fit_reaches_implicits_training_loss(monkeypatch):
    # The same loop as implicit's fit but one-product users solved exactly (in parts of 1,000 here): on a
    # random market with as many one-product users as the demo, the fit ends at implicit's training loss
    # (to 0.1%).
    monkeypatch.setattr(als, "ONE_PRODUCT_ROWS", 1000)
    from implicit.cpu import _als
    from implicit.cpu.als import AlternatingLeastSquares
    rng = np.random.default_rng(0)
    n_users, n_items = 3000, 400
    per_user = np.where(rng.random(n_users) < 0.9, 1, rng.integers(2, 8, n_users))
    rows = np.repeat(np.arange(n_users), per_user)
    matrix = sp.csr_matrix((rng.random(rows.size).astype(np.float32) * 3 + 0.5,
                            (rows, rng.integers(0, n_items, rows.size))), shape=(n_users, n_items))
    _, users, items = als._fit(matrix, 7)
    model = AlternatingLeastSquares(factors=als.FACTORS, regularization=als.REGULARIZATION,
                                    iterations=als.ITERATIONS, num_threads=1, random_state=7)
    model.fit(matrix, show_progress=False)
    ours = _als.calculate_loss(matrix, users, items, als.REGULARIZATION, num_threads=1)
    theirs = _als.calculate_loss(matrix, model.user_factors, model.item_factors, als.REGULARIZATION, num_threads=1)
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_the_same_matrix_is_factorized_once(monkeypatch):
    import scipy.sparse as sp
    calls = []
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: calls.append(seed) or (np.arange(2), np.ones((2, 1)),
                                                                                  np.ones((2, 1))))
    als._fits.clear()
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    als.fit_factors(matrix, 0)
    als.fit_factors(matrix.copy(), 0)     # same content: the cached factors
    als.fit_factors(matrix * 2, 0)        # other confidences: a new fit
    assert calls == [0, 0]
    als._fits.clear()


def test_a_fit_keeps_only_the_factors_of_the_users_asked_for(monkeypatch):
    import scipy.sparse as sp
    calls = []
    # users 0 and 2 have products (factors 10 and 30), user 1 none
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: calls.append(seed) or (
        np.array([0, 2]), np.array([[10.0], [30.0]], np.float32), np.ones((2, 1), np.float32)))
    als._fits.clear()
    matrix = sp.csr_matrix(np.array([[1, 0], [0, 0], [0, 1]], dtype=np.float32))
    users, _ = als.fit_factors(matrix, 0, rows=np.array([1, 2]))
    assert users.tolist() == [[0.0], [30.0]]                    # user 1 has no taste
    [(kept_users, _)] = [future.result() for future in als._fits.values()]
    assert kept_users.shape == (2, 1)                            # two rows kept, not the fit's three users
    assert als.fit_factors(matrix, 0, rows=np.array([0]))[0].tolist() == [[10.0]] and len(calls) == 2
    als.fit_factors(matrix, 0, rows=np.array([1, 2]))            # asked for before: no new fit
    assert len(calls) == 2
    als._fits.clear()


def test_a_prefetched_matrix_is_fitted_once_on_the_background_thread(monkeypatch):
    import threading

    import scipy.sparse as sp
    threads = []
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: threads.append(threading.current_thread().name) or (
        np.arange(2), np.full((2, 1), 3.0), np.ones((2, 1))))
    als._fits.clear()
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    als.prefetch(matrix, 0)
    users, items = als.fit_factors(matrix.copy(), 0)  # waits for the background fit, does not fit again
    assert len(threads) == 1 and threads[0].startswith("als-prefetch")
    assert users.tolist() == [[3.0], [3.0]] and items.tolist() == [[1.0], [1.0]]
    als._fits.clear()


def test_a_run_starts_its_strategys_fit_on_every_event_before_ranking(tmp_path, monkeypatch):
    from pipeline.config import RunParams
    from pipeline.run import execute
    from tests.conftest import COMMUNITIES, write_events
    shapes = []
    monkeypatch.setattr(als, "prefetch", lambda matrix, seed, rows: shapes.append(matrix.shape))
    execute(write_events(tmp_path / "e.csv", COMMUNITIES), db=tmp_path / "a.db",
            params=RunParams(strategy="als", holdout=0, depth=3))
    assert shapes == [(8, 6)]  # 8 users x 6 products: every event, the matrix the published fit factorizes


def test_a_failed_fit_is_not_kept_and_the_next_ask_fits_again(monkeypatch):
    import scipy.sparse as sp
    calls = []

    def fit(matrix, seed):
        calls.append(seed)
        if len(calls) < 3:
            raise MemoryError("no room")
        return np.arange(2), np.ones((2, 1)), np.ones((2, 1))
    monkeypatch.setattr(als, "_fit", fit)
    als._fits.clear()
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    with pytest.raises(MemoryError):
        als.fit_factors(matrix, 0)                          # here: the error is the caller's
    assert not als._fits
    assert isinstance(als.prefetch(matrix, 0).exception(), MemoryError)  # waits for the background fit
    assert not als._fits
    users, _ = als.fit_factors(matrix, 0)
    assert calls == [0, 0, 0] and users.tolist() == [[1.0], [1.0]]
    als._fits.clear()


def test_forgetting_the_fits_makes_the_next_fit_of_the_same_matrix_a_new_one(monkeypatch):
    import scipy.sparse as sp

    from pipeline.strategies import forget_fits, propensity_data
    calls = []
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: calls.append(seed) or (np.arange(2), np.ones((2, 1)),
                                                                                  np.ones((2, 1))))
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    als.fit_factors(matrix, 0)
    propensity_data._served[b"key"] = "signals"
    forget_fits()  # what a run does after the evaluation when its strategy does not reuse them
    assert propensity_data._served == {}
    als.fit_factors(matrix, 0)
    assert calls == [0, 0]
    forget_fits()


# users x 8 items: items 1 and 2 are touched by exactly the same users (a tie among item 0's neighbours),
# item 3 shares one user with item 0, item 4 nobody's; items 5-7 are there so that BM25's idf stays positive.
KNN_MATRIX = [[1, 1, 1, 0, 0, 0, 0, 0],
              [1, 1, 1, 0, 0, 0, 0, 0],
              [1, 0, 0, 1, 0, 0, 0, 0],
              [0, 0, 0, 0, 2, 0, 0, 0],
              [0, 0, 0, 0, 0, 1, 1, 1]]


def similarity(k: int, block: int, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """(ours, implicit's BM25Recommender) with K = k, ours in blocks of `block` products."""
    import scipy.sparse as sp
    from implicit.nearest_neighbours import BM25Recommender

    from pipeline.strategies import itemknn
    matrix = sp.csr_matrix(np.array(KNN_MATRIX, dtype=np.float32))
    monkeypatch.setattr(itemknn, "NEIGHBOURS", k)
    monkeypatch.setattr(itemknn, "BLOCK_PRODUCTS", block)  # 1: one item per block
    reference = BM25Recommender(K=k, num_threads=1)
    reference.fit(matrix, show_progress=False)
    return itemknn.fit_similarity(matrix).toarray(), reference.similarity.toarray()


@pytest.mark.parametrize("k", [1, 2, 3, 100])
@pytest.mark.parametrize("block", [1, 10_000])
def test_itemknn_similarity_is_implicits_bm25_computed_in_blocks(k, block, monkeypatch):
    ours, reference = similarity(k, block, monkeypatch)
    assert np.allclose(ours, reference, rtol=0, atol=1e-12)
    assert (ours > 0).sum(axis=1).max() == min(k, 4)  # item 0 is tied to items 0-3


def test_itemknn_keeps_the_larger_item_of_a_tie_at_the_cut_as_implicit_does(monkeypatch):
    full, _ = similarity(100, 10_000, monkeypatch)
    tie = full[0, 1]
    assert tie == full[0, 2] > 0
    k = int((full[0] > tie).sum()) + 1  # the cut falls between items 1 and 2
    ours, reference = similarity(k, 1, monkeypatch)
    assert ours[0, 2] == tie and ours[0, 1] == 0
    assert np.allclose(ours, reference, rtol=0, atol=1e-12)


def test_category_codes_follow_first_appearance_of_each_name_as_text():
    # items 1 ("Shoes") and 2 (the number 5), products 3 (the text "5": the same name) and 4 (not listed)
    catalogue = pd.DataFrame({"product_id": [1, 2, 3], "category": ["Shoes", 5, "5"]})
    matrix = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]]))  # user 0 on item 1, user 1 on item 2
    shares, product_codes, names = category_shares(matrix, np.array([1, 2]), np.array([3, 4]), catalogue)
    assert product_codes.tolist() == [1, -1]
    assert names.tolist() == ["Shoes", "5", "unknown"]
    assert shares.shape == (2, 3)
    assert shares.toarray()[:, :2].round(6).tolist() == [[round(1 / (1 + CATEGORY_PRIOR), 6), 0.0],
                                                       [0.0, round(2 / (2 + CATEGORY_PRIOR), 6)]]


def test_neighbour_ties_are_each_users_share_of_a_products_neighbours_times_similarity():
    from pipeline.strategies.affinity import neighbour_ties
    # users x items 10, 20, 30: user 0 split evenly over 10 and 20, user 1 a quarter on 10 and three
    # quarters on 30, user 2 all on 20, user 3 nothing. Items' users: 10 by 2, 20 by 2, 30 by 1.
    matrix = sp.csr_matrix(np.array([[2.0, 2.0, 0.0], [1.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    ties = neighbour_ties(matrix, np.array([10, 20, 30]), np.array([10, 30, 99])).toarray()
    # 10's neighbours: 20 (user 0 shared, 1 / sqrt(2 x 2) = 0.5) and 30 (user 1, 1 / sqrt(1 x 2));
    # 30's: 10 (user 1, 1 / sqrt(2 x 1)); 99 is unknown: no neighbours.
    r = 1 / np.sqrt(2)
    expected = [[0.5 * 0.5, 0.5 * r, 0], [0.75 * r, 0.25 * r, 0], [1.0 * 0.5, 0, 0], [0, 0, 0]]
    np.testing.assert_allclose(ties, expected, rtol=1e-12)
