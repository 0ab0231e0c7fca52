"""The independent market simulator (pipeline/demo/markets.py) and the real-sample loader (real.py):
each preset does what it promises, the files have the generator's format, the same seed gives the same bytes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.demo import markets, real
from pipeline.demo.markets import PRESETS, Market, main, simulate, write_market
from store.errors import InputError

ROWS = 20_000
KNOWN_EVENTS = {"purchased", "cart", "rating", "wishlist", "search_keyword"}


@pytest.fixture(scope="module")
def simulated() -> dict[str, tuple[pd.DataFrame, pd.DataFrame | None]]:
    return {name: simulate(ROWS, 3, settings) for name, settings in PRESETS.items()}


def _returning_share(events: pd.DataFrame) -> float:
    """Users seen on two or more calendar days, of all users."""
    days = events.assign(day=events["event_date"].str[:10]).groupby("customer_id")["day"].nunique()
    return float((days > 1).mean())


def _rebought_share(events: pd.DataFrame) -> float:
    """(user, product) pairs touched on two or more calendar days, of all pairs."""
    days = events.assign(day=events["event_date"].str[:10]).groupby(["customer_id", "product_id"])["day"].nunique()
    return float((days > 1).mean())


def test_the_default_market_is_high_churn(simulated):
    events, _ = simulated["market"]
    per_user = events.groupby("customer_id").size()
    assert (per_user == 1).mean() > 0.7  # most users come once, as in the reference marketplace
    assert _returning_share(events) < 0.15


def test_the_repeat_preset_brings_users_back_and_makes_them_rebuy(simulated):
    base, repeat = simulated["market"][0], simulated["repeat"][0]
    assert _returning_share(repeat) > 2 * _returning_share(base)
    assert _rebought_share(repeat) > 3 * _rebought_share(base)


@pytest.mark.parametrize("n_categories", [1, 4, 7])
def test_the_catalogue_has_exactly_the_categories_asked_for(n_categories):
    _, catalogue = simulate(3_000, 1, Market(n_categories=n_categories))
    assert catalogue["category"].nunique() == n_categories


def test_few_categories_preset_has_four(simulated):
    assert simulated["few-categories"][1]["category"].nunique() == 4


def test_no_catalogue_writes_no_products_file_and_removes_a_stale_one(tmp_path):
    (tmp_path / "products.csv").write_text("product_id,category\n1,Old\n")
    info = write_market(tmp_path, 2_000, 1, "no-catalogue")
    assert info["products_path"] is None and not (tmp_path / "products.csv").exists()
    assert (tmp_path / "interactions.csv").is_file()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_files_have_the_generators_format(preset, simulated):
    events, catalogue = simulated[preset]
    assert list(events.columns) == ["customer_id", "product_id", "event", "event_date"]
    assert set(events["event"]) <= KNOWN_EVENTS
    assert (events["customer_id"] > 0).all() and (events["product_id"] > 0).all()
    dates = pd.to_datetime(events["event_date"], format="%Y-%m-%dT%H:%M:%S")
    assert dates.is_monotonic_increasing  # file order is time order, as in an export
    assert (dates < pd.Timestamp("2024-01-01") + pd.Timedelta(days=180)).all()
    if catalogue is not None:
        assert set(events["product_id"]) <= set(catalogue["product_id"])  # every product is catalogued
        assert catalogue["product_id"].is_unique


@pytest.mark.parametrize("preset", list(PRESETS))
def test_size_is_whole_users_up_to_the_rows_asked(preset, simulated):
    events, _ = simulated[preset]
    assert 0.95 * ROWS <= len(events) <= ROWS


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_market(tmp_path / name, 3_000, seed, "market")
    read = {n: (tmp_path / n / "interactions.csv").read_bytes() + (tmp_path / n / "products.csv").read_bytes()
            for n in "abc"}
    assert read["a"] == read["b"]
    assert read["a"] != read["c"]


@pytest.mark.parametrize("source, expected", [
    ([0, 1, 2, 3], [10, 20, 30, 40]),   # no repeats: every event keeps its own product
    ([0, 0, 1, 2], [10, 10, 10, 10]),   # a chain of repeats ends at the first event's product
    ([0, 1, 0, 1], [10, 20, 10, 20]),
])
def test_a_repeat_takes_the_original_product(source, expected):
    product = np.array([10, 20, 30, 40])
    assert markets._resolve_repeats(product, np.array(source)).tolist() == expected


def test_group_cumsum_restarts_at_each_group():
    group, position = markets._group_offsets(np.array([2, 1, 3]))
    assert group.tolist() == [0, 0, 1, 2, 2, 2] and position.tolist() == [0, 1, 0, 0, 1, 2]
    values = np.array([1.0, 2.0, 5.0, 1.0, 1.0, 1.0])
    assert markets._group_cumsum(values, group, position).tolist() == [1, 3, 5, 1, 2, 3]


@pytest.mark.parametrize("argv", [["--categories", "0"], ["--repeat-rate", "1.5"], ["--returning-share", "-1"]])
def test_bad_settings_exit_2_with_one_line(argv, tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--rows", "500", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


# --- the real sample ------------------------------------------------------------------------------------

ORDERS = pd.DataFrame({
    "order_id": [100, 100, 101, 200],
    "user_id": [1, 1, 1, 2],
    "order_number": [1, 1, 2, 1],
    "order_hour_of_day": [10, 10, 8, 15],
    "days_since_prior_order": [np.nan, np.nan, 3.0, np.nan],
    "product_id": [7, 8, 7, 9],
    "add_to_cart_order": [1.0, 2.0, 1.0, 1.0],
})


def test_orders_become_purchases_laid_back_from_one_end_day():
    events = real.orders_to_events(ORDERS)
    # User 1's last order (#2) is on the end day at 08:00; order #1 was 3 days earlier at 10:00, its two
    # products a second apart in basket order. User 2's only order is on the end day at 15:00.
    assert events.values.tolist() == [
        [1, 7, "purchased", "2024-06-27T10:00:00"],
        [1, 8, "purchased", "2024-06-27T10:00:01"],
        [1, 7, "purchased", "2024-06-30T08:00:00"],
        [2, 9, "purchased", "2024-06-30T15:00:00"],
    ]


def test_orders_without_needed_columns_are_refused():
    with pytest.raises(InputError, match="days_since_prior_order"):
        real.orders_to_events(ORDERS.drop(columns="days_since_prior_order"))


def test_a_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(real.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install"):
        real.sample_path()


def test_the_shipped_sample_loads_as_whole_users(tmp_path):
    info = real.write_real(tmp_path, rows=5_000)
    events = pd.read_csv(tmp_path / "interactions.csv")
    orders = pd.read_csv(real.sample_path(), usecols=["user_id"])
    kept = events["customer_id"].unique()
    assert info["rows"] == len(events) <= 5_000
    assert (events["event"] == "purchased").all()
    # whole users: each kept user has all of their order lines
    assert len(events) == orders["user_id"].isin(kept).sum()
