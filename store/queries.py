"""The app's and the reports' reads: thin pandas adapters over store.read (the read core the API uses
directly), plus the few queries only the workbench needs (charts, comparisons, user lookups).

Readers open the database with ``mode=ro``: they can never write, whatever a bug asks.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from store import read
from store.names import CURRENT_RUN_SQL, SCORE_SCALE, strategy_label  # noqa: F401 - CURRENT_RUN_SQL: readers of queries use it
from store.packing import digits_to_int

CHART_TABLES = ("cohort_retention", "daily_events", "activity_histogram", "product_months", "top_products")

# The read core's answers that need no DataFrame, under the names the app and reports already use.
connect = read.connect
current_run_id = read.current_run_id
require_current_run = read.require_current_run
data_version = read.data_version
runs = read.runs
run = read.run
previous_succeeded = read.previous_succeeded
has_audiences = read.has_audiences
stats = read.stats
user = read.user
product_ids = read.product_ids
held_reasons = read.held_reasons


def data_quality(con: sqlite3.Connection, run_id: int) -> pd.DataFrame:
    return pd.DataFrame(read.data_quality(con, run_id), columns=["check", "rows"])


def evaluation(con: sqlite3.Connection, run_id: int) -> pd.DataFrame:
    """strategy (base name), cap (NaN when uncapped), label (how people see the pair), k, metric, value."""
    table = pd.DataFrame(read.evaluation(con, run_id), columns=list(read.EVALUATION_COLUMNS))
    table["cap"] = table["cap"].astype("float64")
    table.insert(2, "label", [strategy_label(s, c) for s, c in zip(table["strategy"], table["cap"])])
    return table


def chart_table(con: sqlite3.Connection, name: str, run_id: int) -> pd.DataFrame:
    if name not in CHART_TABLES:
        raise ValueError(f"unknown chart table {name!r}")
    return pd.read_sql_query(f"SELECT * FROM {name} WHERE run_id = ?", con, params=[run_id]).drop(
        columns="run_id")


def _ranked(ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"rank": np.arange(1, len(ids) + 1, dtype=np.int64), "customer_id": ids, "score": scores})


def audience(con: sqlite3.Connection, run_id: int, product_id: int, n: int | None = None) -> pd.DataFrame:
    """One product's audience (rank, customer_id, score), rank order; empty when the run has not seen it."""
    return _ranked(*read.audience(con, run_id, product_id, n))


def fallback(con: sqlite3.Connection, run_id: int, n: int | None = None) -> pd.DataFrame:
    return _ranked(*read.fallback(con, run_id, n))


def user_features(con: sqlite3.Connection, run_id: int, customer_ids: Iterable[int]) -> pd.DataFrame:
    ids = [int(c) for c in customer_ids]
    if not ids:
        return pd.DataFrame()
    marks = ",".join("?" * len(ids))
    return pd.read_sql_query(f"SELECT * FROM user_features WHERE run_id = ? AND customer_id IN ({marks})",
                             con, params=[run_id, *ids])


def products(con: sqlite3.Connection, run_id: int) -> pd.DataFrame:
    return pd.read_sql_query("SELECT product_id, category, interactions, users, first_seen, last_seen "
                             "FROM products WHERE run_id = ?", con, params=[run_id])


def latest_stress_run(con: sqlite3.Connection) -> dict | None:
    row = con.execute("SELECT * FROM stress_runs ORDER BY stress_id DESC LIMIT 1").fetchone()
    return None if row is None else dict(row)


def iter_audience_frames(con: sqlite3.Connection, run_id: int, product_ids: Iterable[int] | None = None,
                         n: int | None = None, chunk: int = 5000) -> Iterator[pd.DataFrame]:
    """Audiences as (product_id, rank, customer_id, score) frames, a chunk of products at a time."""
    for m in read.iter_audiences(con, run_id, product_ids, chunk):
        yield _matrix_frame(m, n)


def _matrix_frame(m: read.AudienceMatrix, n: int | None) -> pd.DataFrame:
    depth = m.customer_ids.shape[1]
    ranks = np.tile(np.arange(1, depth + 1), len(m.product_ids))
    keep = ranks <= np.repeat(np.minimum(m.sizes, n or depth), depth)
    return pd.DataFrame({
        "product_id": np.repeat(m.product_ids, depth)[keep],
        "rank": ranks[keep],
        "customer_id": m.customer_ids.ravel()[keep],
        "score": m.units.ravel()[keep] / SCORE_SCALE,
    })


# --- Added for the analyst workbench (app/) and the reports --------------------------------------------


def product(con: sqlite3.Connection, run_id: int, product_id: int) -> dict | None:
    """One product's row of the run (category, interactions, users, first/last seen), or None."""
    row = con.execute("SELECT product_id, category, interactions, users, first_seen, last_seen FROM products "
                      "WHERE run_id = ? AND product_id = ?", [run_id, product_id]).fetchone()
    return None if row is None else dict(row)


def engagement_scores(con: sqlite3.Connection, run_id: int) -> pd.DataFrame:
    """customer_id, engagement_score of every user of the run.

    Read by rowid range: through an index on run_id SQLite would visit the table in
    random order (1.4 s for 433K users instead of 0.5 s); a run's rows are written contiguously.
    """
    lo, hi = con.execute("SELECT min(rowid), max(rowid) FROM user_features WHERE run_id = ?", [run_id]).fetchone()
    cursor = con.cursor()
    cursor.row_factory = None  # plain tuples: sqlite3.Row objects cost ~0.5 s more here
    rows = [] if lo is None else cursor.execute(
        "SELECT customer_id, engagement_score FROM user_features WHERE rowid BETWEEN ? AND ? AND +run_id = ?",
        [lo, hi, run_id]).fetchall()
    return pd.DataFrame(rows, columns=["customer_id", "engagement_score"])


def audience_id_block(con: sqlite3.Connection, run_id: int, first_product: int, last_product: int,
                      k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-k customer ids of the products in [first_product, last_product]: (product_ids, sizes, ids).

    Only the first k fields of each packed list are read and decoded (run comparisons need ids, not scores).
    ids is (P, min(k, depth)); row i is valid up to min(sizes[i], k).
    """
    cursor = con.cursor()
    cursor.row_factory = None
    rows = cursor.execute("SELECT product_id, size, id_width, substr(customer_ids, 1, ? * id_width) "
                       "FROM audience_lists WHERE run_id = ? AND product_id BETWEEN ? AND ? ORDER BY product_id",
                       [k, run_id, first_product, last_product]).fetchall()
    products = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sizes = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    if not rows:
        return products, sizes, np.zeros((0, 0), dtype=np.int64)
    width = rows[0][2]
    fields = len(rows[0][3]) // width
    digits = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.uint8).reshape(len(rows), fields, width)
    ids = digits_to_int(digits)
    return products, sizes, ids


def user_audiences(con: sqlite3.Connection, run_id: int, customer_id: int) -> pd.DataFrame:
    """(product_id, rank) of every audience of the run that holds the customer, by rank then product.

    SQLite's instr() finds the zero-padded id in each packed list without expanding the `audiences` view;
    a hit that does not start on a field boundary (digits spanning two ids) is re-checked by decoding.
    """
    empty = pd.DataFrame({"product_id": pd.Series(dtype="int64"), "rank": pd.Series(dtype="int64")})
    head = con.execute("SELECT id_width FROM audience_lists WHERE run_id = ? LIMIT 1", [run_id]).fetchone()
    if head is None or not 0 < customer_id < 10 ** head[0]:
        return empty
    width = head[0]
    needle = str(customer_id).zfill(width).encode()
    hits = pd.DataFrame(con.execute(
        "SELECT product_id, size, instr(customer_ids, ?) - 1 AS at FROM audience_lists "
        "WHERE run_id = ? AND instr(customer_ids, ?) > 0", [needle, run_id, needle]).fetchall(),
        columns=["product_id", "size", "at"]).astype("int64")
    aligned = hits["at"] % width == 0
    found = pd.DataFrame({"product_id": hits["product_id"][aligned], "rank": hits["at"][aligned] // width + 1,
                          "size": hits["size"][aligned]})
    found = pd.concat([found, _aligned_ranks(con, run_id, hits["product_id"][~aligned].tolist(), customer_id)])
    found = found[found["rank"] <= found["size"]].astype("int64")
    return found[["product_id", "rank"]].sort_values(["rank", "product_id"], ignore_index=True)


def _aligned_ranks(con: sqlite3.Connection, run_id: int, products: list[int], customer_id: int) -> pd.DataFrame:
    """The customer's rank in each of these products' lists, by decoding them (rank 0: not there)."""
    frames = []
    for part in (products[i:i + 900] for i in range(0, len(products), 900)):
        m = read.decode_rows(con.execute(
            f"SELECT {read.PACKED_COLUMNS} FROM audience_lists WHERE run_id = ? "
            f"AND product_id IN ({','.join('?' * len(part))})", [run_id, *part]).fetchall())
        hit = m.customer_ids == customer_id
        rank = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)
        frames.append(pd.DataFrame({"product_id": m.product_ids, "rank": rank, "size": m.sizes})[rank > 0])
    return pd.concat(frames) if frames else pd.DataFrame(columns=["product_id", "rank", "size"])


# --- The propensity model's tables (store.read), as the app and the report use them --------------------

has_reasons = read.has_reasons
reasons = read.reasons
categories = read.categories


def calibration(con: sqlite3.Connection, run_id: int) -> pd.DataFrame:
    return pd.DataFrame(read.calibration(con, run_id), columns=list(read.CALIBRATION_COLUMNS))


def gain(con: sqlite3.Connection, run_id: int, strategy: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(read.gain(con, run_id, strategy), columns=list(read.GAIN_COLUMNS))


def category_audience(con: sqlite3.Connection, run_id: int, category: str, n: int | None = None) -> pd.DataFrame:
    """A category's audience (rank, customer_id, score), rank order; empty when the run has none."""
    return _ranked(*read.category_audience(con, run_id, category, n))
