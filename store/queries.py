"""Read-only queries shared by the app, the API, the reports and the export command.

Readers open the database with ``mode=ro``: they can never write, whatever a bug asks.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from store.errors import NoDatabaseError, NoPublishedRunError, RunNotFoundError
from store.packing import digits_to_int, unpack_ids, unpack_scores
from store.names import CURRENT_RUN_SQL, db_path, strategy_label

CHART_TABLES = ("cohort_retention", "daily_events", "activity_histogram", "product_months", "top_products")


def connect(path: str | os.PathLike | None = None) -> sqlite3.Connection:
    path = db_path(path)
    if not path.is_file():
        raise NoDatabaseError(f"no database at {path}; build one with `python -m pipeline demo`")
    con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 5000")
    con.row_factory = sqlite3.Row
    return con


def current_run_id(con: sqlite3.Connection) -> int | None:
    row = con.execute(CURRENT_RUN_SQL).fetchone()
    return None if row is None else int(row[0])


def require_current_run(con: sqlite3.Connection) -> int:
    run_id = current_run_id(con)
    if run_id is None:
        raise NoPublishedRunError("no published run yet; build one with `python -m pipeline demo`")
    return run_id


def data_version(con: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: a cheap 'has anything changed?' probe."""
    return int(con.execute("PRAGMA data_version").fetchone()[0])


def _run_dict(row: sqlite3.Row) -> dict:
    run = dict(row)
    for key in ("params", "summary"):
        run[key] = json.loads(run[key]) if run.get(key) else {}
    return run


def runs(con: sqlite3.Connection) -> list[dict]:
    return [_run_dict(r) for r in con.execute("SELECT * FROM runs ORDER BY run_id DESC")]


def run(con: sqlite3.Connection, run_id: int) -> dict:
    row = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise RunNotFoundError(f"run {run_id} does not exist; `python -m pipeline runs` lists the runs")
    return _run_dict(row)


def has_audiences(con: sqlite3.Connection, run_id: int) -> bool:
    return con.execute("SELECT 1 FROM audience_lists WHERE run_id = ? LIMIT 1", [run_id]).fetchone() is not None


def stats(con: sqlite3.Connection, run_id: int) -> dict[str, float]:
    return {r[0]: r[1] for r in con.execute("SELECT name, value FROM stats WHERE run_id = ?", [run_id])}


def data_quality(con: sqlite3.Connection, run_id: int) -> pd.DataFrame:
    return pd.read_sql_query('SELECT "check", rows FROM data_quality WHERE run_id = ? ORDER BY position',
                             con, params=[run_id])


def evaluation(con: sqlite3.Connection, run_id: int) -> pd.DataFrame:
    """strategy (base name), cap (NaN when uncapped), label (how people see the pair), k, metric, value."""
    table = pd.read_sql_query("SELECT strategy, cap, k, metric, value FROM evaluation WHERE run_id = ? "
                              "ORDER BY strategy, cap IS NOT NULL, cap, k, metric", con, params=[run_id])
    table.insert(2, "label", [strategy_label(s, c) for s, c in zip(table["strategy"], table["cap"])])
    return table


def chart_table(con: sqlite3.Connection, name: str, run_id: int) -> pd.DataFrame:
    if name not in CHART_TABLES:
        raise ValueError(f"unknown chart table {name!r}")
    return pd.read_sql_query(f"SELECT * FROM {name} WHERE run_id = ?", con, params=[run_id]).drop(
        columns="run_id")


def audience(con: sqlite3.Connection, run_id: int, product_id: int, n: int | None = None) -> pd.DataFrame:
    """One product's audience, rank order; empty when the run has not seen the product."""
    return pd.read_sql_query(
        "SELECT rank, customer_id, score FROM audiences WHERE run_id = ? AND product_id = ? "
        "AND rank <= ? ORDER BY rank", con, params=[run_id, product_id, n or 1_000_000])


def fallback(con: sqlite3.Connection, run_id: int, n: int | None = None) -> pd.DataFrame:
    return pd.read_sql_query("SELECT rank, customer_id, score FROM fallback_audience WHERE run_id = ? "
                             "AND rank <= ? ORDER BY rank", con, params=[run_id, n or 1_000_000])


def user(con: sqlite3.Connection, run_id: int, customer_id: int) -> dict | None:
    row = con.execute("SELECT * FROM user_features WHERE run_id = ? AND customer_id = ?",
                      [run_id, customer_id]).fetchone()
    return None if row is None else dict(row)


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


@dataclass(frozen=True)
class AudienceMatrix:
    """A batch of a run's audiences as dense arrays: row i is product_ids[i], valid up to sizes[i]."""
    product_ids: np.ndarray  # (P,) int64, sorted
    sizes: np.ndarray        # (P,) int32
    customer_ids: np.ndarray  # (P, D) int64
    scores: np.ndarray       # (P, D) float64


def _decode_rows(rows: list[tuple]) -> AudienceMatrix:
    """Rows of (product_id, size, id_width, score_width, ids, scores), one width per run."""
    product_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sizes = np.fromiter((r[1] for r in rows), dtype=np.int32, count=len(rows))
    if not rows:
        return AudienceMatrix(product_ids, sizes, np.zeros((0, 0), np.int64), np.zeros((0, 0)))
    id_w, score_w = rows[0][2], rows[0][3]
    ids_blob = b"".join(r[4] for r in rows)
    score_blob = b"".join(r[5] for r in rows)
    depth = len(rows[0][4]) // id_w
    ids = unpack_ids(ids_blob, id_w, depth * len(rows)).reshape(len(rows), depth)
    scores = unpack_scores(score_blob, score_w, depth * len(rows)).reshape(len(rows), depth)
    return AudienceMatrix(product_ids, sizes, ids, scores)


def iter_audience_frames(con: sqlite3.Connection, run_id: int, product_ids: Iterable[int] | None = None,
                         n: int | None = None, chunk: int = 5000) -> Iterator[pd.DataFrame]:
    """Audiences as (product_id, rank, customer_id, score) frames, a chunk of products at a time,
    so exporting all 200K audiences never holds them all in memory."""
    sql = ("SELECT product_id, size, id_width, score_width, customer_ids, scores FROM audience_lists "
           "WHERE run_id = ?")
    if product_ids is None:
        cursor = con.execute(sql + " ORDER BY product_id", [run_id])
        batches = iter(lambda: cursor.fetchmany(chunk), [])
    else:
        wanted = list(dict.fromkeys(int(p) for p in product_ids))
        batches = (con.execute(sql + f" AND product_id IN ({','.join('?' * len(part))}) ORDER BY product_id",
                               [run_id, *part]).fetchall()
                   for part in (wanted[i:i + 900] for i in range(0, len(wanted), 900)))
    for rows in batches:
        if rows:
            yield _matrix_frame(_decode_rows(rows), n)


def _matrix_frame(m: AudienceMatrix, n: int | None) -> pd.DataFrame:
    depth = m.customer_ids.shape[1]
    ranks = np.tile(np.arange(1, depth + 1), len(m.product_ids))
    keep = ranks <= np.repeat(np.minimum(m.sizes, n or depth), depth)
    return pd.DataFrame({
        "product_id": np.repeat(m.product_ids, depth)[keep],
        "rank": ranks[keep],
        "customer_id": m.customer_ids.ravel()[keep],
        "score": m.scores.ravel()[keep],
    })


# --- Added for the analyst workbench (app/) and the reports --------------------------------------------


def product(con: sqlite3.Connection, run_id: int, product_id: int) -> dict | None:
    """One product's row of the run (category, interactions, users, first/last seen), or None."""
    row = con.execute("SELECT product_id, category, interactions, users, first_seen, last_seen FROM products "
                      "WHERE run_id = ? AND product_id = ?", [run_id, product_id]).fetchone()
    return None if row is None else dict(row)


def product_ids(con: sqlite3.Connection, run_id: int) -> np.ndarray:
    """Every product that has an audience in the run, sorted (int64)."""
    rows = con.execute("SELECT product_id FROM audience_lists WHERE run_id = ? ORDER BY product_id",
                       [run_id]).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


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
        m = _decode_rows(con.execute(
            "SELECT product_id, size, id_width, score_width, customer_ids, scores FROM audience_lists "
            f"WHERE run_id = ? AND product_id IN ({','.join('?' * len(part))})", [run_id, *part]).fetchall())
        hit = m.customer_ids == customer_id
        rank = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)
        frames.append(pd.DataFrame({"product_id": m.product_ids, "rank": rank, "size": m.sizes})[rank > 0])
    return pd.concat(frames) if frames else pd.DataFrame(columns=["product_id", "rank", "size"])
