"""Synthetic marketplace export: the demo data set of the workbench.

``generate`` writes ``interactions.csv`` (``index,customer_id,product_id,event,event_date``) and
``products.csv`` (``product_id,category``) shaped like the reference system's real export, so that the
published statistics in DESIGN.md come out within a few percent after cleaning at the default size, and so
that the recommendation strategies have honest structure to find:

* categories with Zipf-like popularity, and products with skewed popularity and limited lifetimes
  (catalogue turnover: most products seen in the last fifth of the period are new there);
* users with one to three preferred categories; a session stays in one category, which gives the
  co-occurrence structure (the same users touch several products of the same category);
* sessions: interactions within a visit are minutes apart (a few visits later the same day); most repeat
  customers also come back on other days, weeks to months later -- the reference's retention (3.05% of
  early users still active in the last fifth, with ~89% one-time users) cannot be reached otherwise;
* cart -> purchase funnels: a purchase is often the same user's cart of the same product minutes before.

It also carries the dirt of a real export, each in small amounts scaled with ``rows``: exact duplicate
rows placed later in the file, empty / non-numeric / non-positive ids, events in mixed case with stray
spaces and a few unknown ones, unparseable dates, four ISO-8601 timestamp styles mixed in one column,
and two bot customers with more than 1000 interactions on one UTC day.

``rows`` counts the rows of the export proper: the rows that survive cleaning plus the duplicates. Rows
that cleaning drops for other reasons (bad ids, bad dates, bots) come on top, so the clean count at the
default size is the published one (500,400 - 1,521 duplicates = 498,879).

The simulation is in market.py, the dirt in dirt.py, the text and pyarrow's CSV writer in text.py; this
file only puts them together. Everything is vectorized with numpy (the only Python loops run over the days
of the period, digit positions, dirt kinds and million-row write chunks), and every random draw comes from
one ``numpy.random.default_rng(seed)`` in a fixed order, so the same ``rows`` and ``seed`` give
byte-identical files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.demo.dirt import (
    BAD_DATE_RATE,
    BAD_DATE_VALUES,
    BAD_ID_RATE,
    BOT_ROWS,
    DUPLICATE_RATE,
    bot_rows,
    corrupt_ids,
    dirt_count,
    pad_ids,
)
from pipeline.demo.market import CATEGORY_NAMES, DAY_US, N_CATEGORIES, PRODUCTS_PER_ROW, make_catalogue, simulate
from pipeline.demo.text import event_bytes, id_bytes, timestamp_bytes, write_csv


def generate(rows: int = 500_400, seed: int = 42, out_dir: str | Path = "data/demo") -> dict:
    """Write ``interactions.csv`` and ``products.csv`` into out_dir; return a summary of what was written."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    n_duplicates = min(dirt_count(rows, DUPLICATE_RATE), rows // 2)
    n_clean = rows - n_duplicates
    catalogue = make_catalogue(rng, max(int(rows * PRODUCTS_PER_ROW), 4 * N_CATEGORIES))
    sim = simulate(rng, n_clean, catalogue)

    # The clean rows, as text.
    customer = pad_ids(rng, id_bytes(sim.customer_ids[sim.user]))
    product = id_bytes(catalogue.product_id[sim.product])
    event = event_bytes(rng, sim.event)
    stamp = timestamp_bytes(rng, sim.time_us)
    key = sim.time_us  # file order: by time, as exports are

    # Duplicates: exact copies of clean rows, placed later in the file (up to two weeks of rows later).
    src = rng.integers(0, n_clean, size=n_duplicates)
    dup_key = key[src] + 1 + rng.integers(0, 14 * DAY_US, size=n_duplicates)

    # Bad ids and bad dates: otherwise ordinary rows, extra to `rows`.
    n_bad_id = dirt_count(rows, BAD_ID_RATE)
    n_bad_date = dirt_count(rows, BAD_DATE_RATE)
    bad_src = rng.integers(0, n_clean, size=n_bad_id + n_bad_date)
    bad_id_customer, bad_id_product = corrupt_ids(rng, customer[bad_src[:n_bad_id]], product[bad_src[:n_bad_id]])
    bad_dates = np.array(BAD_DATE_VALUES, dtype="S")[rng.integers(0, len(BAD_DATE_VALUES), size=n_bad_date)]

    bot_customer, bot_time, bot_product, bot_event = bot_rows(rng, catalogue)

    parts = {
        "customer_id": (customer, customer[src], bad_id_customer, customer[bad_src[n_bad_id:]],
                        id_bytes(bot_customer)),
        "product_id": (product, product[src], bad_id_product, product[bad_src[n_bad_id:]],
                       id_bytes(catalogue.product_id[bot_product])),
        "event": (event, event[src], event[bad_src], event_bytes(rng, bot_event)),
        "event_date": (stamp, stamp[src], stamp[bad_src[:n_bad_id]], bad_dates, timestamp_bytes(rng, bot_time)),
    }
    order = np.argsort(np.concatenate([key, dup_key, key[bad_src], bot_time]), kind="stable")
    columns = [np.concatenate(part)[order] for part in parts.values()]
    n_written = order.size

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    interactions_path = out / "interactions.csv"
    products_path = out / "products.csv"
    write_csv(interactions_path, {"index": np.arange(n_written), **dict(zip(parts, columns, strict=True))})

    # The catalogue as the export knows it: every product that appears in the interactions.
    touched = np.concatenate([sim.product, bot_product])
    seen = np.flatnonzero(np.bincount(touched, minlength=catalogue.category.size))
    by_id = np.argsort(catalogue.product_id[seen], kind="stable")
    names = np.asarray(CATEGORY_NAMES, dtype="S")[catalogue.category[seen]]
    write_csv(products_path, {"product_id": catalogue.product_id[seen][by_id], "category": names[by_id]})

    return {
        "interactions_path": str(interactions_path),
        "products_path": str(products_path),
        "rows_written": int(n_written),
        "rows": int(rows),
        "seed": int(seed),
        "clean_rows": int(n_clean),
        "duplicates": int(n_duplicates),
        "bad_id_rows": int(n_bad_id),
        "bad_date_rows": int(n_bad_date),
        "bot_rows": int(sum(BOT_ROWS)),
        "users": int(sim.user[-1]) + 1,
        "products": int(seen.size),
        "categories": N_CATEGORIES,
    }
