"""Churn and sparsity diagnostics: the `stats` of DESIGN.md and the small tables the charts draw."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import KNOWN_EVENTS

TOP_PRODUCTS = 50


def split_instant(events: pd.DataFrame, holdout: float) -> pd.Timestamp:
    """Early is before this instant, late at or after it: the (1 - holdout) quantile of event_date."""
    return events["event_date"].quantile(1 - holdout)


def stats(events: pd.DataFrame, users: pd.DataFrame, products: pd.DataFrame, holdout: float) -> dict[str, float]:
    """DESIGN.md's statistics. Who is early or late follows from each user's and product's first and last
    event (early: first before the split; late: last at or after it), so no pass over the events is
    hashed again: that was 9 of 36 s of this stage at 5M rows."""
    split = np.datetime64(split_instant(events, holdout).to_datetime64())
    user_first, user_last = users["first_event"].to_numpy(), users["last_event"].to_numpy()
    item_first, item_last = products["first_seen"].to_numpy(), products["last_seen"].to_numpy()
    periods = {"early_period_users": int((user_first < split).sum()),
               "late_period_users": int((user_last >= split).sum()),
               "returning_users": int(((user_first < split) & (user_last >= split)).sum()),
               "early_period_products": int((item_first < split).sum()),
               "late_period_products": int((item_last >= split).sum()),
               "new_products_in_test": int((item_first >= split).sum())}
    return summary_stats(len(events), periods, activity_histogram(users), events["event"].value_counts())


def summary_stats(n_rows: int, periods: dict[str, int], histogram: pd.DataFrame, event_counts: pd.Series
                  ) -> dict[str, float]:
    """The statistics from small summaries both engines compute: the period counts of stats(), users per
    interaction count (activity_histogram) and rows per event."""
    values, counts = histogram["interactions"].to_numpy(), histogram["users"].to_numpy()
    n_users, n_products = int(counts.sum()), periods["early_period_products"] + periods["new_products_in_test"]
    early_users, late_products = periods["early_period_users"], periods["late_period_products"]
    ends = np.cumsum(counts)
    middle = values[np.searchsorted(ends, [(n_users - 1) // 2, n_users // 2], side="right")]
    out = {
        "total_interactions": n_rows,
        "unique_users": n_users,
        "unique_products": n_products,
        "sparsity": 1 - n_rows / (n_users * n_products),
        **{k: periods[k] for k in ("early_period_users", "late_period_users", "returning_users")},
        "retention_rate_pct": 100 * periods["returning_users"] / early_users if early_users else 0.0,
        "median_interactions_per_user": float(middle.mean()),
        "mean_interactions_per_user": float(int((values * counts).sum()) / n_users),
        "one_time_users_pct": 100 * float(counts[values == 1].sum() / n_users),
        "low_activity_users_pct": 100 * float(counts[(values >= 2) & (values <= 5)].sum() / n_users),
        "power_users_pct": 100 * float(counts[values > 5].sum() / n_users),
        **{k: periods[k] for k in ("early_period_products", "late_period_products", "new_products_in_test")},
        "new_products_pct": 100 * periods["new_products_in_test"] / late_products if late_products else 0.0,
    }
    shares = event_counts[event_counts > 0] / event_counts.sum()
    for event in sorted(set(KNOWN_EVENTS) | set(shares.index)):
        out[f"event_pct_{event}"] = 100 * float(shares.get(event, 0.0))
    return {k: float(v) for k, v in out.items()}


def _month_index(dates: pd.Series) -> np.ndarray:
    """Months since year 0 (UTC), so month differences are plain integer subtraction."""
    return (dates.dt.year * 12 + dates.dt.month - 1).to_numpy()


def _month_label(index: pd.Series | np.ndarray) -> pd.Series:
    index = pd.Series(index)
    return (index // 12).astype(str) + "-" + (index % 12 + 1).astype(str).str.zfill(2)


def cohort_retention(events: pd.DataFrame) -> pd.DataFrame:
    """Cohort month (first activity) x months since -> share of the cohort active that month."""
    frame = pd.DataFrame({"c": events["customer_id"].to_numpy(),
                          "m": _month_index(events["event_date"])}).drop_duplicates()
    frame["cohort"] = frame.groupby("c")["m"].transform("min")
    frame["since"] = frame["m"] - frame["cohort"]
    return cohort_frame(frame.groupby(["cohort", "since"]).size().rename("active_users").reset_index())


def cohort_frame(active: pd.DataFrame) -> pd.DataFrame:
    """The cohort table from distinct active users per (cohort month index, months since)."""
    sizes = active[active["since"] == 0].set_index("cohort")["active_users"]
    active["cohort_users"] = active["cohort"].map(sizes)
    return pd.DataFrame({"cohort_month": _month_label(active["cohort"]), "months_since": active["since"],
                         "cohort_users": active["cohort_users"], "active_users": active["active_users"],
                         "share": active["active_users"] / active["cohort_users"]})


def daily_events(events: pd.DataFrame) -> pd.DataFrame:
    day = events["event_date"].to_numpy().astype("datetime64[D]")
    counts = pd.DataFrame({"day": day, "event": events["event"]}).groupby(["day", "event"], observed=True).size()
    counts = counts.rename("interactions").reset_index()
    return pd.DataFrame({"day": np.datetime_as_string(counts["day"].to_numpy(), unit="D"),
                         "event": counts["event"].astype(str), "interactions": counts["interactions"]})


def activity_histogram(users: pd.DataFrame) -> pd.DataFrame:
    counts = users["total_interactions"].value_counts().sort_index()
    return pd.DataFrame({"interactions": counts.index, "users": counts.to_numpy()})


def product_table(events: pd.DataFrame, catalogue: pd.DataFrame | None) -> pd.DataFrame:
    """One row per product seen in the run: category, interactions, distinct users, first and last seen
    (naive UTC datetimes; iso_utc() formats them for the database)."""
    table = events.groupby("product_id", sort=True).agg(
        interactions=("customer_id", "size"), users=("customer_id", "nunique"),
        first_seen=("event_date", "min"), last_seen=("event_date", "max")).reset_index()
    if catalogue is not None:
        table = table.merge(catalogue[["product_id", "category"]], on="product_id", how="left")
    else:
        table["category"] = None
    table["category"] = table["category"].fillna("unknown")
    return table[["product_id", "category", "interactions", "users", "first_seen", "last_seen"]]


def iso_utc(values: pd.Series) -> np.ndarray:
    """ISO 8601 in UTC to the second ("...Z"): numpy's own suffix, 4x faster than appending one to every
    string (1.95M products' two columns took ~3 s of the 5M bench that way)."""
    return np.datetime_as_string(values.to_numpy(), unit="s", timezone="UTC")


def product_months(events: pd.DataFrame) -> pd.DataFrame:
    """Products active each month: new (first seen that month) or continuing from earlier months."""
    frame = pd.DataFrame({"p": events["product_id"].to_numpy(),
                          "m": _month_index(events["event_date"])}).drop_duplicates()
    frame["new"] = frame["m"] == frame.groupby("p")["m"].transform("min")
    return months_frame(frame.groupby("m")["new"].agg(new_products="sum", active="size").reset_index())


def months_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The product months table from (month index m, new_products, active products)."""
    return pd.DataFrame({"month": _month_label(table["m"]), "new_products": table["new_products"],
                         "continuing_products": table["active"] - table["new_products"]})


def top_products(products: pd.DataFrame) -> pd.DataFrame:
    top = products.sort_values(["interactions", "product_id"], ascending=[False, True]).head(TOP_PRODUCTS)
    return pd.DataFrame({"rank": np.arange(1, len(top) + 1), "product_id": top["product_id"].to_numpy(),
                         "interactions": top["interactions"].to_numpy(), "users": top["users"].to_numpy(),
                         "category": top["category"].to_numpy()})
