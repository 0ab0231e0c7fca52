"""Engagement features on the four-user example (tests/conftest.py), worked out by hand.

User 1: 3 rows (purchased P1 01-01 00:00, cart P2 01-03 12:00, cart P1 01-11 00:00)
  -> unique 2, avg (5+3+3)/3, 10 whole days apart -> days_active 11, frequency 3/11, recency 20 days
User 2: wishlist P3 01-21 -> avg 2, days_active 1, frequency 1, recency 10 (latest event is 01-31 06:00)
User 3: rating P1 01-30 00:00, search P3 01-30 23:00 -> 23 h is 0 whole days: days_active 1, frequency 2,
  avg 1.75, recency 0 (7 hours before the latest event)
User 4: cart P2 twice on 01-31 -> unique 1, avg 3, days_active 1, frequency 2, recency 0
"""
from __future__ import annotations

import math

import pytest

from pipeline.config import RunParams
from pipeline.data.clean import clean
from pipeline.data.features import engagement_order, user_features
from pipeline.data.ingest import read_events
from tests.conftest import write_events

AVG = {1: 11 / 3, 2: 2.0, 3: 1.75, 4: 3.0}
FREQ = {1: 3 / 11, 2: 1.0, 3: 2.0, 4: 2.0}
REC = {1: math.exp(-20 / 90), 2: math.exp(-10 / 90), 3: 1.0, 4: 1.0}


def norm(values: dict, user: int) -> float:
    return (values[user] - min(values.values())) / (max(values.values()) - min(values.values()))


EXPECTED = {
    # user: (total, unique, days_active, recency_days, norm_total, norm_unique)
    1: (3, 2, 11, 20, 1.0, 1.0),
    2: (1, 1, 1, 10, 0.0, 0.0),
    3: (2, 2, 1, 0, 0.5, 1.0),
    4: (2, 1, 1, 0, 0.5, 0.0),
}


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    from tests.conftest import FOUR_USERS
    path = write_events(tmp_path_factory.mktemp("f") / "e.csv", FOUR_USERS)
    return user_features(clean(read_events(path), RunParams()).events, RunParams()).set_index("customer_id")


@pytest.mark.parametrize("user", [1, 2, 3, 4])
def test_raw_features(users, user):
    total, unique, days, recency, _, _ = EXPECTED[user]
    row = users.loc[user]
    assert (row.total_interactions, row.unique_products, row.days_active, row.recency_days) == \
        (total, unique, days, recency)
    assert row.avg_event_score == pytest.approx(AVG[user])
    assert row.interaction_frequency == pytest.approx(FREQ[user])


@pytest.mark.parametrize("user", [1, 2, 3, 4])
def test_normalized_components_and_score(users, user):
    _, _, _, _, n_total, n_unique = EXPECTED[user]
    row = users.loc[user]
    n_avg, n_freq, n_rec = norm(AVG, user), norm(FREQ, user), norm(REC, user)
    assert (row.norm_total, row.norm_unique) == (n_total, n_unique)
    assert row.norm_avg_event == pytest.approx(n_avg)
    assert row.norm_frequency == pytest.approx(n_freq)
    assert row.norm_recency == pytest.approx(n_rec)
    expected = 0.35 * n_total + 0.25 * n_unique + 0.20 * n_avg + 0.15 * n_freq + 0.05 * n_rec
    assert row.engagement_score == pytest.approx(expected)


def test_hand_computed_scores(users):
    # 0.35 + 0.25 + 0.20 = 0.8 for user 1; 0.175 + 0.25 + 0.15 + 0.05 = 0.625 for user 3
    assert users.loc[1].engagement_score == pytest.approx(0.8)
    assert users.loc[3].engagement_score == pytest.approx(0.625)


def test_a_constant_column_normalizes_to_half(tmp_path):
    path = write_events(tmp_path / "e.csv", [(1, 1, "cart", "2023-01-01T10:00:00"),
                                             (2, 2, "cart", "2023-01-01T10:00:00")])
    users = user_features(clean(read_events(path), RunParams()).events, RunParams())
    for col in ("norm_total", "norm_unique", "norm_avg_event", "norm_frequency", "norm_recency"):
        assert users[col].tolist() == [0.5, 0.5]
    assert users.engagement_score.tolist() == pytest.approx([0.5, 0.5])


def test_weights_and_decay_are_parameters(tmp_path):
    from tests.conftest import FOUR_USERS
    path = write_events(tmp_path / "e.csv", FOUR_USERS)
    params = RunParams(decay_days=10, component_weights={"total": 0, "unique": 0, "avg_event": 0,
                                                          "frequency": 0, "recency": 1})
    users = user_features(clean(read_events(path), params).events, params).set_index("customer_id")
    rec = {1: math.exp(-2), 2: math.exp(-1), 3: 1.0, 4: 1.0}
    assert users.loc[2].engagement_score == pytest.approx(norm(rec, 2))


def test_order_breaks_ties_by_later_last_event_then_smaller_id(tmp_path):
    # identical features -> all 0.5; 11 and 12 were last seen at 09:00, 10 at 08:00
    path = write_events(tmp_path / "e.csv", [(12, 102, "cart", "2023-01-01T09:00:00"),
                                             (10, 100, "cart", "2023-01-01T08:00:00"),
                                             (11, 101, "cart", "2023-01-01T09:00:00")])
    users = user_features(clean(read_events(path), RunParams()).events, RunParams())
    assert users.customer_id.to_numpy()[engagement_order(users)].tolist() == [11, 12, 10]
    # the table carries the same order as 1-based ranks (customers 10, 11, 12 are rows 0, 1, 2)
    assert users.engagement_rank.tolist() == [3, 1, 2]


def test_a_table_cut_from_a_larger_one_is_ordered_by_its_own_scores(tmp_path):
    # The kept ranks of rows 0 and 2 (3 and 2) are no longer 1..2: the order comes from the scores.
    path = write_events(tmp_path / "e.csv", [(12, 102, "cart", "2023-01-01T09:00:00"),
                                             (10, 100, "cart", "2023-01-01T08:00:00"),
                                             (11, 101, "cart", "2023-01-01T09:00:00")])
    users = user_features(clean(read_events(path), RunParams()).events, RunParams())
    part = users[users.customer_id != 11].reset_index(drop=True)
    assert part.customer_id.to_numpy()[engagement_order(part)].tolist() == [12, 10]
    # A stale rank column that is still a permutation is trusted: the table is its ranking's.
    swapped = users.assign(engagement_rank=[1, 2, 3])
    assert swapped.customer_id.to_numpy()[engagement_order(swapped)].tolist() == [10, 11, 12]


def test_engagement_places_are_each_rows_place_in_the_order(tmp_path):
    from pipeline.data.features import engagement_places
    path = write_events(tmp_path / "e.csv", [(12, 102, "cart", "2023-01-01T09:00:00"),
                                             (10, 100, "cart", "2023-01-01T08:00:00"),
                                             (11, 101, "cart", "2023-01-01T09:00:00")])
    users = user_features(clean(read_events(path), RunParams()).events, RunParams())
    assert engagement_places(users).tolist() == [2, 0, 1]  # customers 10, 11, 12 ranked 3rd, 1st, 2nd
    part = users[users.customer_id != 11].reset_index(drop=True)  # ranks 3 and 2: not 1..2, so sorted again
    assert engagement_places(part).tolist() == [1, 0]
    repeated = users.assign(engagement_rank=[1, 1, 3])  # not a permutation: the scores decide
    assert engagement_places(repeated).tolist() == [2, 0, 1]
    assert engagement_order(repeated).tolist() == [1, 2, 0]
