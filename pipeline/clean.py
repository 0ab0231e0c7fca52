"""Cleaning in the order of DESIGN.md, every dropped row counted in ``data_quality``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import RunParams
from store.errors import InputError

# A UTC offset or Z right after a time of day (a bare date like 2023-01-05 ends in "-05" but has none).
OFFSET_AFTER_TIME = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
CHECKS = ("rows_read", "missing_fields", "bad_dates", "duplicates", "bot_rows", "unknown_events", "rows_clean")


@dataclass
class Cleaned:
    events: pd.DataFrame  # customer_id int64, product_id int64, event category, event_date naive UTC datetime64
    counts: dict[str, int]


def _positive_ids(values: pd.Series) -> pd.Series:
    """Ids as float (NaN where missing, non-integer or non-positive); float64 is exact below 2**53."""
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        values = values.str.strip()
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers.where((numbers > 0) & (numbers % 1 == 0))


def _parse_dates(values: pd.Series) -> pd.Series:
    """Every ISO-8601 style (with or without fractional seconds, 'T' or space, offset or naive) in one
    column; naive timestamps are UTC. A parser that guesses one format would silently drop the rest."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize("UTC")
    text = values.astype(str).str.strip()
    # pandas 2.x (format="ISO8601") gives a naive timestamp the offset of the last offset-carrying one
    # before it, silently shifting it by hours; parsing the two kinds apart avoids that.
    has_offset = text.str.contains(OFFSET_AFTER_TIME, regex=True)
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    parsed[has_offset] = pd.to_datetime(text[has_offset], format="ISO8601", utc=True, errors="coerce")
    naive = pd.to_datetime(text[~has_offset], format="ISO8601", errors="coerce")
    parsed[~has_offset] = naive.dt.tz_localize("UTC") if len(naive) else naive
    return parsed


def _bot_customers(events: pd.DataFrame, limit: int) -> np.ndarray:
    days = events["event_date"].to_numpy().astype("datetime64[D]")
    per_day = pd.DataFrame({"c": events["customer_id"].to_numpy(), "d": days}).groupby(["c", "d"]).size()
    return per_day[per_day > limit].index.get_level_values("c").unique().to_numpy()


def clean(raw: pd.DataFrame, params: RunParams) -> Cleaned:
    counts = {"rows_read": len(raw)}

    customer = _positive_ids(raw["customer_id"])
    product = _positive_ids(raw["product_id"])
    event = raw["event"].astype("string").str.strip().str.lower()
    ok = customer.notna() & product.notna() & event.notna() & (event != "")
    counts["missing_fields"] = int((~ok).sum())

    events = pd.DataFrame({
        "customer_id": customer[ok].astype("int64"),
        "product_id": product[ok].astype("int64"),
        "event": event[ok].astype("category"),
        # Naive UTC from here on: same instants, and numpy handles it without per-row Timestamp objects.
        "event_date": _parse_dates(raw["event_date"][ok]).dt.tz_convert(None),
    })
    parsed = events["event_date"].notna()
    counts["bad_dates"] = int((~parsed).sum())
    events = events[parsed]

    duplicated = events.duplicated(["customer_id", "product_id", "event", "event_date"], keep="first")
    counts["duplicates"] = int(duplicated.sum())
    events = events[~duplicated]

    bots = _bot_customers(events, params.bot_daily_limit)
    is_bot = events["customer_id"].isin(bots)
    counts["bot_rows"] = int(is_bot.sum())
    events = events[~is_bot]

    events["event"] = events["event"].cat.remove_unused_categories()
    counts["unknown_events"] = int((~events["event"].isin(list(params.event_weights))).sum())
    counts["rows_clean"] = len(events)
    if events.empty:
        dropped = ", ".join(f"{k}={counts[k]}" for k in CHECKS[1:5])
        raise InputError(f"no valid row left after cleaning ({dropped}); check the ids, events and dates")
    return Cleaned(events.reset_index(drop=True), counts)


def event_weight(events: pd.DataFrame, params: RunParams) -> np.ndarray:
    """Weight of each row's event; events outside the weight table get the unknown weight."""
    categories = events["event"].cat.categories
    table = np.array([params.event_weights.get(c, params.unknown_event_weight) for c in categories], float)
    return table[events["event"].cat.codes.to_numpy()]
