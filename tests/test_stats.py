"""Stats on a six-event dataset with known answers.

Events at days 1..6 (00:00): the 0.8 quantile of six instants is the 5th (position 0.8 * 5 = 4),
so early = days 1-4, late = days 5-6.
"""
from __future__ import annotations

import pytest

from pipeline.config import RunParams
from pipeline.data.clean import clean
from pipeline.data.diagnostics import cohort_retention, iso_utc, product_months, product_table, stats
from pipeline.data.features import user_features
from pipeline.data.ingest import read_events
from tests.conftest import write_events

ROWS = [(1, 1, "cart", "2023-01-01"), (2, 1, "purchased", "2023-01-02"), (1, 2, "cart", "2023-01-03"),
        (3, 2, "wishlist", "2023-01-04"), (1, 3, "cart", "2023-02-05"), (4, 1, "purchased", "2023-02-06")]
EXPECTED = {
    "total_interactions": 6, "unique_users": 4, "unique_products": 3, "sparsity": 1 - 6 / 12,
    "early_period_users": 3, "late_period_users": 2, "returning_users": 1, "retention_rate_pct": 100 / 3,
    "median_interactions_per_user": 1, "mean_interactions_per_user": 1.5, "one_time_users_pct": 75,
    "low_activity_users_pct": 25, "power_users_pct": 0, "early_period_products": 2,
    "late_period_products": 2, "new_products_in_test": 1, "new_products_pct": 50,
    "event_pct_cart": 50, "event_pct_purchased": 100 / 3, "event_pct_wishlist": 100 / 6,
    "event_pct_rating": 0, "event_pct_search_keyword": 0,
}


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    return clean(read_events(write_events(tmp_path_factory.mktemp("s") / "e.csv", ROWS)), RunParams()).events


@pytest.mark.parametrize("name", EXPECTED)
def test_stat(events, name):
    got = stats(events, user_features(events, RunParams()), product_table(events, None), holdout=0.2)
    assert got[name] == pytest.approx(EXPECTED[name])


def test_cohort_retention(events):
    table = cohort_retention(events).set_index(["cohort_month", "months_since"])
    # January cohort: users 1, 2, 3; user 1 comes back in February. February cohort: user 4.
    assert table.loc[("2023-01", 0), "cohort_users"] == 3
    assert table.loc[("2023-01", 1), "share"] == pytest.approx(1 / 3)
    assert table.loc[("2023-02", 0), "share"] == 1.0


def test_product_months(events):
    table = product_months(events).set_index("month")
    assert table.loc["2023-01"].tolist() == [2, 0]   # P1, P2 new
    assert table.loc["2023-02"].tolist() == [1, 1]   # P3 new, P1 continuing


def test_iso_utc_writes_naive_utc_instants_to_the_second_with_a_z():
    import pandas as pd
    instants = pd.Series(pd.to_datetime(["2024-03-01 12:00:05.75", "1999-12-31 23:59:59.00"]))
    assert iso_utc(instants).tolist() == ["2024-03-01T12:00:05Z", "1999-12-31T23:59:59Z"]
