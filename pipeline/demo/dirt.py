"""The dirt of a real export, each kind in small amounts scaled with the rows: exact duplicates, bad ids,
bad dates, ids with stray spaces and two bot customers. Every kind is something cleaning must count."""
from __future__ import annotations

import numpy as np

from pipeline.demo.market import DAY_US, EVENTS, PERIOD_DAYS, Catalogue, period_start_us

# Exact duplicate rows: the reference had ~1,521 in 500,400 rows (500,400 - 498,879 clean).
DUPLICATE_RATE = 0.00304
# Rows with a null, empty, non-numeric or non-positive customer_id / product_id (extra rows).
BAD_ID_RATE = 0.0006
# Rows whose event_date does not parse (extra rows).
BAD_DATE_RATE = 0.0004
# Events in mixed case / with stray spaces: valid after strip + lowercase.
# Valid ids with a stray space, as spreadsheets leave them.
PADDED_ID_RATE = 0.0002
# Two bot customers, each with this many rows on one UTC day: above the 1000/day bot limit.
BOT_ROWS = (1200, 1500)
# What unparseable dates look like: text, impossible dates, a non-ISO format, nulls.
BAD_DATE_VALUES = ("not a date", "2023-13-45", "2022-02-30 12:00:00", "31/12/2022 10:00", "N/A", "")
# Timestamp styles, shares: "2022-10-05 14:03:11", "2022-10-05T14:03:11.123456", "2022-10-05T14:03:11Z",


def dirt_count(rows: int, rate: float) -> int:
    # At least one of each kind once the export is big enough to carry dirt at all, so small demo files
    # still exercise every cleaning step.
    count = int(round(rows * rate))
    return max(count, 1) if rows >= 1000 else count

# --- dirt ---------------------------------------------------------------------------------------------

def bot_rows(rng: np.random.Generator, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer_id, time_us, catalogue index, event code) of the bots' rows, each bot on one UTC day."""
    n = sum(BOT_ROWS)
    ids = 900_000_000 + rng.choice(1_000_000, size=len(BOT_ROWS), replace=False)
    day = rng.integers(0, PERIOD_DAYS, size=len(BOT_ROWS))
    bot = np.repeat(np.arange(len(BOT_ROWS)), BOT_ROWS)
    time_us = period_start_us() + day[bot] * DAY_US + rng.integers(0, DAY_US, size=n)
    product = rng.integers(0, catalogue.category.size, size=n)
    # Bots crawl: add to cart and search far more than people do.
    event = rng.choice(len(EVENTS), size=n, p=(0.6, 0.05, 0.05, 0.3, 0.0))
    return ids[bot], time_us, product, event


def corrupt_ids(rng: np.random.Generator, customer: np.ndarray,
                 product: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One id per row made empty, non-numeric or non-positive (pandas reads the empty ones as null)."""
    n = customer.size
    kind = rng.integers(0, 6, size=n)
    empty, zero = np.full(n, b""), np.full(n, b"0")
    customer = np.where(kind == 0, empty, customer)
    product = np.where(kind == 1, empty, product)
    customer = np.where(kind == 2, np.strings.add(b"C", customer), customer)
    product = np.where(kind == 3, np.strings.add(product, b"x"), product)
    customer = np.where(kind == 4, zero, customer)
    product = np.where(kind == 5, np.strings.add(b"-", product), product)
    return customer, product


def pad_ids(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """A few valid ids get a stray leading or trailing space (valid once stripped)."""
    draw = rng.random(ids.size)
    padded = draw < PADDED_ID_RATE
    lead = draw < PADDED_ID_RATE / 2
    return np.where(padded, np.where(lead, np.strings.add(b" ", ids), np.strings.add(ids, b" ")), ids)


# --- the export ---------------------------------------------------------------------------------------
