"""Cleaning: a crafted file that hits every rule once or more, counted in DESIGN.md's order."""
from __future__ import annotations

import pandas as pd
import pytest

from pipeline.config import RunParams
from pipeline.data.clean import CHECKS, DROPPED, bot_customers, clean
from pipeline.data.ingest import read_events
from tests.conftest import write_events

ROWS = [
    # kept
    ("1", "10", "cart", "2023-01-01 10:00:00"),
    ("1", "10", "purchased", "2023-01-01T10:05:00.123456"),
    (" 2 ", "10", " Cart ", "2023-01-02T10:00:00Z"),
    ("4", "12", "wishlist", "2023-02-01T00:00:00.5+01:00"),
    ("4", "12", "view", "2023-02-02"),                       # unknown event: kept, counted
    ("5", "13", "cart", "2023-01-01 10:00:00"),              # naive right after an offset row: still UTC
    # missing_fields
    ("", "10", "cart", "2023-01-02"),
    ("3", "abc", "cart", "2023-01-02"),
    ("0", "10", "cart", "2023-01-02"),
    ("3", "10", "  ", "2023-01-02"),
    ("1.5", "10", "cart", "2023-01-02"),
    # bad_dates
    ("3", "11", "cart", "not a date"),
    ("3", "11", "cart", "2023-13-45"),
    ("3", "11", "cart", "2023-02-30"),                       # a well-formed date that does not exist
    ("3", "11", "cart", ""),
    # future_dates: after the time of the run (2024-01-01T00:00:00Z in this test); the instant itself is kept
    ("3", "11", "cart", "2024-01-01T00:00:01Z"),
    ("3", "11", "cart", "2023-12-31T23:30:00-01:00"),          # 2024-01-01 00:30 UTC
    ("3", "11", "cart", "2024-01-01T00:00:00"),                # kept
    ("3", "11", "cart", "9999-12-31"),                         # beyond what a timestamp holds: still future
    # absurd_dates: before 2000-01-01 UTC; the first instant of 2000 is kept
    ("3", "12", "cart", "1970-01-01T00:00:00Z"),
    ("3", "12", "cart", "2000-01-01T00:30:00+01:00"),          # 1999-12-31 23:30 UTC
    ("3", "12", "cart", "2000-01-01T00:00:00"),                # kept
    ("3", "12", "cart", "0023-05-01T10:00:00Z"),               # before what a timestamp holds: still absurd
    ("3", "12", "cart", "0023-13-01"),                         # no month 13: a bad date, whatever the year
    # duplicates of the first row: same normalized event, same instant in other ISO styles
    ("1", "10", "CART", "2023-01-01T10:00:00+00:00"),
    ("1", "10", "cart ", "2023-01-01T11:00:00.000+01:00"),
    # bot: customer 9 has 4 rows on one UTC day (limit 3 here), and all its rows go, other days too
    ("9", "20", "cart", "2023-01-03T01:00:00"),
    ("9", "21", "cart", "2023-01-03T02:00:00"),
    ("9", "22", "cart", "2023-01-03T03:00:00"),
    ("9", "23", "cart", "2023-01-03T23:59:59"),
    ("9", "24", "cart", "2023-01-05T10:00:00"),
    # customer 8 is at the limit (3 in a day, the 4th is on the next UTC day): not a bot
    ("8", "20", "cart", "2023-01-03T01:00:00"),
    ("8", "21", "cart", "2023-01-03T02:00:00"),
    ("8", "22", "cart", "2023-01-03T22:30:00"),
    ("8", "23", "cart", "2023-01-03T23:30:00-02:00"),        # 2023-01-04 01:30 UTC
]
EXPECTED = {"rows_read": 35, "missing_fields": 5, "bad_dates": 5, "future_dates": 3, "absurd_dates": 3,
            "duplicates": 2, "bot_rows": 5, "unknown_events": 1, "rows_clean": 12}
RUN_TIME = pd.Timestamp("2024-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    path = write_events(tmp_path_factory.mktemp("clean") / "events.csv", ROWS)
    return clean(read_events(path), RunParams(bot_daily_limit=3), now=RUN_TIME)


@pytest.mark.parametrize("check", CHECKS)
def test_each_check_counts_its_rows(cleaned, check):
    assert cleaned.counts[check] == EXPECTED[check]


def test_counts_add_up(cleaned):
    c = cleaned.counts
    assert DROPPED == ("missing_fields", "bad_dates", "future_dates", "absurd_dates", "duplicates", "bot_rows")
    assert c["rows_read"] - sum(c[check] for check in DROPPED) == c["rows_clean"]


def test_no_row_is_kept_without_a_date(cleaned):
    assert cleaned.events["event_date"].notna().all()


def test_the_boundary_instants_are_kept(cleaned):
    kept = cleaned.events.loc[cleaned.events["customer_id"] == 3, "event_date"].sort_values().tolist()
    assert kept == [pd.Timestamp("2000-01-01"), pd.Timestamp("2024-01-01")]


def test_without_a_run_time_the_clock_decides_what_is_in_the_future(tmp_path):
    path = write_events(tmp_path / "e.csv", [(1, 1, "cart", "2023-01-01"), (1, 2, "cart", "2199-01-01")])
    counts = clean(read_events(path), RunParams()).counts
    assert (counts["future_dates"], counts["rows_clean"]) == (1, 1)


def test_mixed_timestamp_styles_all_parse_to_the_right_instant(cleaned):
    events = cleaned.events
    got = dict(zip(zip(events.customer_id, events.product_id, events.event.astype(str)), events.event_date))
    assert got[(1, 10, "purchased")] == pd.Timestamp("2023-01-01 10:05:00.123456")
    assert got[(2, 10, "cart")] == pd.Timestamp("2023-01-02 10:00:00")
    assert got[(4, 12, "wishlist")] == pd.Timestamp("2023-01-31 23:00:00.5")
    assert got[(4, 12, "view")] == pd.Timestamp("2023-02-02")
    # pandas' ISO8601 parser alone would shift this one by the previous row's +01:00
    assert got[(5, 13, "cart")] == pd.Timestamp("2023-01-01 10:00:00")
    assert got[(8, 23, "cart")] == pd.Timestamp("2023-01-04 01:30:00")


def test_events_are_normalized_and_ids_typed(cleaned):
    events = cleaned.events
    assert set(events.event.astype(str)) == {"cart", "purchased", "wishlist", "view"}
    assert events.customer_id.dtype == "int64" and events.product_id.dtype == "int64"
    assert 9 not in set(events.customer_id)


def test_headers_match_case_insensitively_and_extra_columns_are_ignored(tmp_path):
    path = write_events(tmp_path / "e.csv", [(0, "x", 1, 2, "Cart", "2023-01-01")],
                        header="index, Extra ,CUSTOMER_ID, Product_Id ,Event,event_date")
    events = clean(read_events(path), RunParams()).events
    assert list(events.columns) == ["customer_id", "product_id", "event", "event_date"]
    assert events.iloc[0].tolist()[:3] == [1, 2, "cart"]


def test_parquet_input_is_cleaned_like_csv(tmp_path):
    frame = pd.DataFrame({"customer_id": [1, 1, None], "product_id": [5, 5, 6], "event": ["cart", "cart", "cart"],
                          "event_date": pd.to_datetime(["2023-01-01", "2023-01-01", "2023-01-02"])})
    frame.to_parquet(tmp_path / "e.parquet")
    counts = clean(read_events(tmp_path / "e.parquet"), RunParams()).counts
    assert (counts["missing_fields"], counts["duplicates"], counts["rows_clean"]) == (1, 1, 1)


@pytest.mark.parametrize("far, near", [(7, 3), (2**62, -(2**62))])  # ids packed beside the day; numbered first
def test_a_bot_has_more_than_the_limit_on_one_utc_day(far, near):
    import numpy as np
    # limit 2: `far` has 3 events on 2023-01-01 (UTC) -> a bot; `near` has 3 too, but over two days -> not
    events = pd.DataFrame({"customer_id": np.array([far, near, far, near, far, near], dtype=np.int64),
                           "event_date": pd.to_datetime(["2023-01-01 00:00", "2023-01-01 23:59", "2023-01-01 12:00",
                                                         "2023-01-02 00:00", "2023-01-01 23:59", "2023-01-01 01:00"])})
    assert bot_customers(events, 2).tolist() == [far]
    assert bot_customers(events, 3).tolist() == []
    assert bot_customers(events.iloc[:0], 2).tolist() == []
