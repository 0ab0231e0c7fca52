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
