"""The propensity model on markets built so the answer is obvious, its honesty, and its calibration."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import RunParams
from pipeline.data.features import user_features
from pipeline.evaluation.calibration import calibration_bins, gain_curve, users_for_share
from pipeline.strategies import audiences, propensity

START = pd.Timestamp("2023-01-01")


def frame(rows) -> pd.DataFrame:
    """(customer, product, event, day) rows -> clean-shaped events, sorted by customer as clean() does."""
    events = pd.DataFrame(rows, columns=["customer_id", "product_id", "event", "day"])
    events["event_date"] = START + pd.to_timedelta(events.pop("day"), unit="h").dt.round("h") * 24
    events["event"] = events["event"].astype("category")
    return events.sort_values(["customer_id", "event_date"], kind="stable").reset_index(drop=True)


def funnel_market() -> pd.DataFrame:
    """80 products. Each: 6 earlier buyers (days 5-60); 4 users cart it on days 78-86, and 2 of those buy
    it on days 92-98. The lesson: a recent cart without a purchase comes back for the product."""
    rows = []
    for p in range(80):
        product = 1000 + p
        base = 10_000 + p * 100
        rows += [(base + j, product, "purchased", 5 + (p + 7 * j) % 56) for j in range(6)]
        rows += [(base + 50 + j, product, "cart", 78 + (p + j) % 9) for j in range(4)]
        rows += [(base + 50 + j, product, "purchased", 92 + (p + j) % 7) for j in range(2)]
        rows += [(base + 50 + j, 5000 + p, "search_keyword", 40 + j) for j in range(4)]  # some history
    return frame(rows)


def ranked(events, products, catalogue=None, **params) -> dict[int, list[int]]:
    p = RunParams(**{"depth": 10, "horizon_days": 10.0, **params})
    users = user_features(events, p)
    out = {}
    for block in audiences("propensity", events, users, p, np.asarray(products, dtype=np.int64), catalogue):
        for i, product in enumerate(block.product_ids.tolist()):
            out[product] = block.customer_ids[i, :block.sizes[i]].tolist()
    return out


def test_users_who_carted_and_did_not_buy_come_first_under_purchased():
    events = funnel_market()
    # Product 1003's carters are 10350-10353; 10350 and 10351 bought it, so 10352 and 10353 are the
    # carted-not-bought users (the buyers are excluded under `purchased`).
    audience = ranked(events, [1003], exclude="purchased")[1003]
    assert set(audience[:2]) == {10352, 10353}
    assert not {10300, 10350, 10351} & set(audience)


def loyal_market() -> tuple[pd.DataFrame, pd.DataFrame]:
    """4 categories x 12 products, 15 users loyal to each category: each touches 3 of its products
    before day 85 and buys another one of them on days 90-98."""
    rows, catalogue = loyal_rows()
    return frame(rows), catalogue


def loyal_rows() -> tuple[list, pd.DataFrame]:
    rows, catalogue = [], []
    for c in range(4):
        products = [100 * (c + 1) + i for i in range(12)]
        catalogue += [(p, f"cat{c}") for p in products]
        for u in range(15):
            user = 1000 * (c + 1) + u
            rows += [(user, products[(u + k) % 12], "cart", 10 + 20 * k + u) for k in range(3)]
            rows += [(user, products[(u + 5) % 12], "purchased", 90 + u % 9)]
    catalogue.append((999, "cat2"))  # a new product: in the catalogue, never in the events
    return rows, pd.DataFrame(catalogue, columns=["product_id", "category"])


def test_a_category_loyal_user_ranks_high_for_a_new_product_of_that_category():
    events, catalogue = loyal_market()
    audience = ranked(events, [999], catalogue=catalogue, depth=15)[999]
    assert sum(3000 <= u < 3015 for u in audience[:10]) >= 8


def two_communities_market() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One category, two communities of 200 users: users 0-199 buy products 1000-1039, users 200-399 buy
    2000-2039 (4 each on days 0-85, half of them one more on days 89-99, after the inner cut). Category
    share says nothing (everyone is all in the one category); only the products' neighbours tell apart."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(400):
        home = 1000 if user < 200 else 2000
        rows += [(user, home + int(p), "purchased", float(rng.uniform(0, 85))) for p in rng.choice(40, 4, replace=False)]
        if rng.random() < 0.5:
            rows.append((user, home + int(rng.integers(40)), "purchased", float(rng.uniform(89, 99))))
    catalogue = pd.DataFrame({"product_id": [*range(1000, 1040), *range(2000, 2040)], "category": "A"})
    return frame(rows), catalogue


def test_two_products_of_one_category_with_different_neighbours_get_different_audiences():
    # The learned ranker (82 engaged pairs after the inner cut) fills each product's top ten with its own
    # community; the two top-20 lists share 2 users on this seed (Jaccard 2/38), under the bound of 0.1.
    events, catalogue = two_communities_market()
    audiences_ = ranked(events, [1000, 2000], catalogue=catalogue, depth=20)
    first, second = audiences_[1000], audiences_[2000]
    assert all(u < 200 for u in first[:10]) and all(u >= 200 for u in second[:10])
    assert len(set(first) & set(second)) / len(set(first) | set(second)) < 0.1


def test_the_ranker_learns_only_from_events_before_the_inner_cut(monkeypatch):
    events = funnel_market()
    seen = []
    real = propensity.build_signals
    monkeypatch.setattr(propensity, "build_signals",
                        lambda ev, *a, **k: seen.append(ev["event_date"].max()) or real(ev, *a, **k))
    monkeypatch.setattr(propensity, "fit_ranker",
                        lambda features, labels, *a, **k: seen.append((len(features), int(labels.sum()))))
    propensity.train(events, None, RunParams(horizon_days=10.0, exclude="purchased"))
    cut = events["event_date"].max() - pd.Timedelta(days=10)  # day 98 - 10 = day 88
    assert seen[0] < cut  # the features: only events before the cut
    rows, positives = seen[1]
    # The labels: the 160 carters who bought after the cut (2 per product), among all candidates.
    assert positives == 160 and rows > positives


def test_every_inner_product_trains_and_the_sampled_negatives_are_reweighted(monkeypatch):
    events = funnel_market()
    params = RunParams(horizon_days=10.0, exclude="purchased")
    frames = []
    monkeypatch.setattr(propensity, "fit_ranker",
                        lambda features, labels, groups, seed, weights, names: frames.append((labels, groups, weights)))
    propensity.train(events, None, params)
    labels, groups, weights = frames[0]
    negatives = int((~labels).sum())  # all of them: 80 products' candidates, far under TRAIN_NEGATIVES
    assert np.unique(groups).size == 80 and (weights == 1).all()
    monkeypatch.setattr(propensity, "TRAIN_NEGATIVES", negatives // 4)
    propensity.train(events, None, params)
    labels, groups, weights = frames[1]
    # Every product and all 160 positives stay (weight 1); about a quarter of the negatives, each weighing
    # negatives / (negatives // 4), so the weighted frame still counts every candidate.
    assert np.unique(groups).size == 80 and labels.sum() == 160 and (weights[labels] == 1).all()
    assert 0.2 < (~labels).sum() / negatives < 0.3
    assert weights[~labels] == pytest.approx(np.full((~labels).sum(), negatives / (negatives // 4)))


def test_calibration_bins_compare_expected_and_observed_per_decile():
    scores = np.repeat([0.5, 0.1], 10)   # two deciles' worth of entries each... ten bins of two
    hits = np.array([1, 0] * 5 + [0] * 9 + [1])
    table = calibration_bins(scores, hits)
    assert table["entries"].tolist() == [2] * 10
    assert table["expected"].sum() == pytest.approx(6.0) and table["observed"].sum() == 6


def test_the_gain_curve_says_how_many_users_reach_a_share():
    curve = gain_curve(np.array([1, 0, 1, 0, 0, 1]), truth_size=4)  # 3 of the 4 engagements captured
    assert curve.tolist() == [0.25, 0.25, 0.5, 0.5, 0.5, 0.75]
    assert users_for_share(curve, 0.5) == 3 and users_for_share(curve, 0.9) is None


def test_each_category_gets_the_audience_of_a_new_product_of_that_category():
    from pipeline.strategies import fitted
    from pipeline.strategies.categories import catalogue_products, category_audiences
    events, catalogue = loyal_market()
    params = RunParams(depth=10, horizon_days=10.0)
    model = fitted("propensity", events, user_features(events, params), params, catalogue)
    table = category_audiences(model, catalogue, depth=10)
    assert sorted(table["category"].unique()) == ["cat0", "cat1", "cat2", "cat3"]
    for c in range(4):
        top = table[table["category"] == f"cat{c}"].sort_values("rank")["customer_id"].head(10)
        assert sum(1000 * (c + 1) <= u < 1000 * (c + 1) + 15 for u in top) >= 8, c
    assert len(catalogue_products(catalogue)) == 49 and 999 in set(catalogue_products(catalogue)["product_id"])


@pytest.mark.parametrize("shallow, deep", [(3, 20), (10, 20), (1, 5)])
def test_a_deeper_category_pool_holds_the_shallower_one_as_its_best_ranks(shallow, deep):
    # Groups of products that skip few users take only the best ranks of their category's deeper pool:
    # that must be exactly the pool they would have been given on their own.
    from pipeline.strategies.propensity_data import build_signals, category_pools
    rows, catalogue = loyal_rows()
    # User 9000 comes back every few days but spreads over all four categories: first among the returning
    # users, far down each category's attached users, so in both lists of every category's pool.
    events = frame(rows + [(9000, 100 * (c + 1) + d % 12, "view", d) for d in range(1, 98, 3) for c in range(4)])
    params = RunParams()
    sig = build_signals(events, user_features(events, params), catalogue, params)
    codes = len(sig.categories)
    first_back = sig.users["customer_id"].to_numpy()[np.lexsort((sig.eng_rank, -sig.comeback))[0]]

    def pools(need, limit=None):
        users, starts, _, rank = category_pools(sig, codes, np.full(codes + 1, need))
        owner = np.repeat(np.arange(codes + 1), np.diff(starts))
        keep = rank < (limit if limit is not None else need)
        return sorted(zip(owner[keep].tolist(), users[keep].tolist()))

    assert codes == 4 and first_back == 9000 and len(pools(shallow)) >= shallow * (codes + 1)
    assert pools(deep, limit=shallow) == pools(shallow)
    assert len(pools(deep)) > len(pools(shallow))


def test_why_this_user_records_the_cart_the_neighbours_and_the_category():
    """The facts the run stores for an audience entry (pipeline.strategies.why.Explainer), in words."""
    from pipeline.strategies import exclusions_for, fitted
    from pipeline.strategies.why import explainer
    from reports.words import why_phrases
    from store.reasons import NEIGHBOUR, OWN
    events, catalogue = loyal_market()
    params = RunParams(horizon_days=10.0, exclude="none", depth=15)
    users = user_features(events, params)
    model = fitted("propensity", events, users, params, catalogue)
    products = np.array([300], dtype=np.int64)
    [block] = model.rank(products, exclusions_for(events, users, "none", products), params.depth)
    facts = explainer(model).records(block.product_ids, block.positions, block.sizes)[0]
    entry = facts[block.customer_ids[0].tolist().index(3000)]
    # User 3000 carted products 300, 301, 302 (days 10, 30, 50); data ends day 98: the cart is 88 days old.
    assert entry["sources"] & OWN and entry["sources"] & NEIGHBOUR  # 301 and 302 are 300's neighbours
    words = why_phrases(entry, "cat2", 0)
    assert words[:2] == ["carted this product 88 days ago", "buys what this product's buyers buy"]
    # All their activity is in cat2; the share is shrunk towards "no preference" by a prior, so below 100%.
    share = int(entry["share"])
    assert 50 < share < 100 and f"{share}% of their activity is in cat2" in words


def test_the_model_figures_draw_the_calibration_and_the_gain():
    from reports.model_figures import calibration_figure, gain_figure
    table = calibration_bins(np.linspace(0.9, 0.0, 20), np.array([1, 0] * 10))
    fig = calibration_figure(table)
    assert [t.name for t in fig.data] == ["expected (sum of probabilities), whiskers: chance range",
                                          "observed on the holdout"]
    assert list(fig.data[1].y) == table["observed"].tolist()
    assert len(fig.data[0].error_y.array) == len(table)  # whiskers: the chance range (values: test_reports)
    gain = gain_figure(np.array([0.5, 0.3, 0.2]))
    assert list(gain.data[0].y) == pytest.approx([0.5, 0.8, 1.0]) and "1.00 expected" in gain.layout.title.text


def test_pair_features_count_the_products_of_each_pairs_category():
    from pipeline.strategies.propensity_data import FEATURES, build_signals, pair_features, product_info
    # Category A has products 1, 2 and 3 in the events, B only product 4; product 5 is listed in A but
    # never seen (still A's, which counts the 3 seen); product 6 is in no category.
    events = frame([(1, 1, "cart", 0), (1, 2, "cart", 1), (2, 3, "purchased", 2), (2, 4, "wishlist", 3),
                    (3, 6, "cart", 4)])
    catalogue = pd.DataFrame({"product_id": [1, 2, 3, 4, 5], "category": ["A", "A", "A", "B", "A"]})
    params = RunParams()
    sig = build_signals(events, user_features(events, params), catalogue, params)
    info = product_info(sig, np.array([1, 4, 5, 6]), catalogue)
    out = pair_features(sig, info, np.arange(4), np.zeros(4, dtype=np.int64), np.zeros(4), np.zeros(4))
    assert out[:, FEATURES.index("category_products")].tolist() == [3.0, 1.0, 3.0, 0.0]
    # a shared list describes its product by the group: the same count
    shared = pair_features(sig, info, None, np.zeros(4, dtype=np.int64), np.zeros(4), np.zeros(4),
                           group=info.group)
    assert shared[:, FEATURES.index("category_products")].tolist() == [3.0, 1.0, 3.0, 0.0]


def test_pair_features_read_each_pairs_own_events_and_its_users_activity():
    from pipeline.strategies.propensity_data import FEATURES, build_signals, pair_features, product_info
    # User 1 bought product 1 (day 0), carted it again (day 10) and carted product 2 (day 2); user 2 only
    # wishlisted product 3; user 4 carted product 2 on the last day (30).
    events = frame([(1, 1, "purchased", 0), (1, 1, "cart", 10), (1, 2, "cart", 2), (2, 3, "wishlist", 20),
                    (4, 2, "cart", 30)])
    params = RunParams()
    sig = build_signals(events, user_features(events, params), None, params)
    info = product_info(sig, np.array([1, 2]), None)
    product, user = np.array([0, 1, 1, 1]), np.array([0, 0, 1, 2])  # users 1, 1, 2, 4 (rows by customer id)
    out = pair_features(sig, info, product, user, np.zeros(4), np.zeros(4))
    column = {name: out[:, FEATURES.index(name)].tolist() for name in FEATURES}
    assert column["own_weight"] == [5.0, 3.0, 0.0, 3.0]       # the pair's strongest event; none: 0
    assert column["own_age_days"] == [20.0, 28.0, -1.0, 0.0]  # days since its last event; none: -1
    assert column["own_bought"] == [1.0, 0.0, 0.0, 0.0]
    assert column["interactions"] == [3.0, 3.0, 1.0, 1.0]


@pytest.mark.parametrize("listed, expected", [
    (True, {6: 0.5, 7: 0.4}),                   # with a catalogue: the best TASTE_WIDTH (2) of taste x comeback
    (False, {5: 0.9, 6: 0.5, 7: 0.4, 8: 0.1}),  # without one, taste is the main personal source: all of them
])
def test_taste_candidates_are_the_strongest_tastes_among_likely_returners(monkeypatch, listed, expected):
    from dataclasses import replace

    from pipeline.strategies import propensity_data
    from pipeline.strategies.propensity_data import TASTE, build_signals, product_info, tied_candidates
    from pipeline.strategies.ranking import exclusions_for
    monkeypatch.setattr(propensity_data, "TASTE_WIDTH", 2)
    # Users 1 and 2 bought product 1 (so its factors count); users 5-8 carted product 2. The factors and
    # chances of coming back are set by hand: taste x comeback is 0.09, 0.40, 0.20 and 0.09 for users 5-8.
    events = frame([(1, 1, "purchased", 1), (2, 1, "purchased", 2)] + [(u, 2, "cart", 3) for u in (5, 6, 7, 8)])
    catalogue = pd.DataFrame({"product_id": [1, 2], "category": ["A", "B"]}) if listed else None
    params = RunParams(exclude="none")
    users = user_features(events, params)
    sig = replace(build_signals(events, users, catalogue, params),
                  pool=np.arange(2, 6), comeback=np.array([0.3, 0.3, 0.1, 0.8, 0.5, 0.9]),
                  user_factors=np.array([[0.9, 0], [0.5, 0], [0.4, 0], [0.1, 0]], np.float32),
                  item_factors=np.array([[1, 0], [0, 1]], np.float32))  # items 1 and 2
    products = np.array([1])
    pairs, _, taste = tied_candidates(sig, products, product_info(sig, products, catalogue),
                                      exclusions_for(events, users, "none", products), 100)
    mine = (pairs.scores.astype(int) & TASTE) > 0
    ids = users["customer_id"].to_numpy()
    found = dict(zip(ids[pairs.rows[mine]].tolist(), taste[mine].tolist()))
    assert found == pytest.approx(expected)  # the feature is the taste itself, not taste x comeback
