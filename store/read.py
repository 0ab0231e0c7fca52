"""The read core: every read-only query, without pandas (the API workers use it directly; store.queries
wraps it in DataFrames for the app and the reports).

Readers open the database with ``mode=ro``: they can never write, whatever a bug asks.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from store.errors import DatabaseDamagedError, NoDatabaseError, NoPublishedRunError, RunNotFoundError
from store.names import CURRENT_RUN_SQL, SCORE_SCALE, db_path
from store.packing import decode_signed, digits_to_int

PACKED_COLUMNS = "product_id, size, id_width, score_width, customer_ids, scores"
IN_CHUNK = 900  # ids per `IN (...)`: below SQLite's default limit of 999 variables
MAX_RANK = 1_000_000  # "every rank" in a `rank <= ?` bound


def damaged(path: os.PathLike, exc: Exception) -> DatabaseDamagedError:
    """The one message for a database file SQLite cannot read: what is wrong and the two ways out."""
    return DatabaseDamagedError(
        f"database {path} is not a usable workbench database ({exc}); if it is the right file it is "
        f"damaged: move it aside (mv {path} {path}.broken) and rebuild with `python -m pipeline demo "
        f"--db {path}` or rerun your last `run`, or restore it from a backup")


def connect(path: str | os.PathLike | None = None) -> sqlite3.Connection:
    """A read-only connection; one line saying what to do when there is no database or it is damaged."""
    path = db_path(path)
    if not path.is_file():
        raise NoDatabaseError(f"no database at {path}; build one with `python -m pipeline demo`")
    con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False)
    try:
        con.execute("PRAGMA busy_timeout = 5000")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a damaged header fails here, not later
    except sqlite3.DatabaseError as exc:
        con.close()
        if isinstance(exc, sqlite3.OperationalError):  # locked, busy, I/O: not a damaged file
            raise
        raise damaged(path, exc) from None
    con.row_factory = sqlite3.Row
    return con


def has_table(con: sqlite3.Connection, name: str) -> bool:
    """Tables added after a database was made (e.g. the catalogue's) are absent from older files."""
    return con.execute("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                       [name]).fetchone() is not None


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
    run["held"] = json.loads(run["held"]) if run.get("held") else []  # absent in a not yet migrated database
    return run


def held_reasons(con: sqlite3.Connection, run_id: int) -> list[str]:
    """The publish gates the run failed ([] when none, or when it was never held); see pipeline/gates.py."""
    return run(con, run_id)["held"]


def runs(con: sqlite3.Connection) -> list[dict]:
    """Every run, newest first."""
    return [_run_dict(r) for r in con.execute("SELECT * FROM runs ORDER BY run_id DESC")]


def run(con: sqlite3.Connection, run_id: int) -> dict:
    row = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise RunNotFoundError(f"run {run_id} does not exist; `python -m pipeline runs` lists the runs")
    return _run_dict(row)


def previous_succeeded(all_runs: list[dict], run_id: int) -> dict | None:
    """The latest succeeded run before this one: the baseline of "change since the previous run"."""
    earlier = [r for r in all_runs if r["status"] == "succeeded" and r["run_id"] < run_id]
    return max(earlier, key=lambda r: r["run_id"]) if earlier else None


def has_audiences(con: sqlite3.Connection, run_id: int) -> bool:
    return con.execute("SELECT 1 FROM audience_lists WHERE run_id = ? LIMIT 1", [run_id]).fetchone() is not None


def stats(con: sqlite3.Connection, run_id: int) -> dict[str, float]:
    return {r[0]: r[1] for r in con.execute("SELECT name, value FROM stats WHERE run_id = ? ORDER BY name", [run_id])}


def data_quality(con: sqlite3.Connection, run_id: int) -> list[tuple[str, int]]:
    """(check, rows) in the order the cleaning applies them."""
    return [(r[0], r[1]) for r in con.execute(
        'SELECT "check", rows FROM data_quality WHERE run_id = ? ORDER BY position', [run_id])]


EVALUATION_COLUMNS = ("strategy", "cap", "k", "metric", "value")


def evaluation(con: sqlite3.Connection, run_id: int) -> list[dict]:
    """strategy (base name), cap (None when uncapped), k, metric, value; uncapped rows before capped."""
    return [dict(zip(EVALUATION_COLUMNS, r)) for r in con.execute(
        "SELECT strategy, cap, k, metric, value FROM evaluation WHERE run_id = ? "
        "ORDER BY strategy, cap IS NOT NULL, cap, k, metric", [run_id])]


def fallback(con: sqlite3.Connection, run_id: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(customer_ids, scores) of the audience served for products the run has not seen, rank order."""
    rows = con.execute("SELECT customer_id, score FROM fallback_audience WHERE run_id = ? AND rank <= ? "
                       "ORDER BY rank", [run_id, n or 1_000_000]).fetchall()
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float64))


def user(con: sqlite3.Connection, run_id: int, customer_id: int) -> dict | None:
    row = con.execute("SELECT * FROM user_features WHERE run_id = ? AND customer_id = ?",
                      [run_id, customer_id]).fetchone()
    return None if row is None else dict(row)


def product_ids(con: sqlite3.Connection, run_id: int) -> np.ndarray:
    """Every product that has an audience in the run, sorted (int64)."""
    rows = con.execute("SELECT product_id FROM audience_lists WHERE run_id = ? ORDER BY product_id",
                       [run_id]).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


@dataclass(frozen=True)
class AudienceMatrix:
    """A batch of a run's audiences as dense arrays: row i is product_ids[i], valid up to sizes[i]."""
    product_ids: np.ndarray   # (P,) int64, sorted
    sizes: np.ndarray         # (P,) int32
    customer_ids: np.ndarray  # (P, D) int64
    units: np.ndarray         # (P, D) int64 scores in stored units of 1e-9


def decode_rows(rows: list) -> AudienceMatrix:
    """Rows of (product_id, size, id_width, score_width, ids, scores), one width per run."""
    product_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sizes = np.fromiter((r[1] for r in rows), dtype=np.int32, count=len(rows))
    if not rows:
        return AudienceMatrix(product_ids, sizes, np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64))
    id_w, score_w = rows[0][2], rows[0][3]
    depth = len(rows[0][4]) // id_w
    ids = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.uint8).reshape(len(rows), depth, id_w)
    scores = np.frombuffer(b"".join(r[5] for r in rows), dtype=np.uint8).reshape(-1, score_w)
    return AudienceMatrix(product_ids, sizes, digits_to_int(ids),
                          decode_signed(scores).reshape(len(rows), depth))


def audience(con: sqlite3.Connection, run_id: int, product_id: int, n: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """One product's audience (customer_ids, scores), rank order; empty when the run has not seen it."""
    rows = con.execute(f"SELECT {PACKED_COLUMNS} FROM audience_lists WHERE run_id = ? AND product_id = ?",
                       [run_id, product_id]).fetchall()
    m = decode_rows(rows)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    k = min(int(m.sizes[0]), n or m.customer_ids.shape[1])
    return m.customer_ids[0, :k], m.units[0, :k] / SCORE_SCALE


def iter_audiences(con: sqlite3.Connection, run_id: int, product_ids: Iterable[int] | None = None,
                   chunk: int = 5000) -> Iterator[AudienceMatrix]:
    """A run's audiences a chunk of products at a time (all of them, or these ids, unknown ones skipped),
    so exporting 200K audiences never holds them all in memory."""
    sql = f"SELECT {PACKED_COLUMNS} FROM audience_lists WHERE run_id = ?"
    cursor = con.cursor()
    cursor.row_factory = None  # plain tuples: sqlite3.Row objects cost far more per row
    if product_ids is None:
        cursor.execute(sql + " ORDER BY product_id", [run_id])
        batches = iter(lambda: cursor.fetchmany(chunk), [])
    else:
        wanted = list(dict.fromkeys(int(p) for p in product_ids))
        batches = (cursor.execute(sql + f" AND product_id IN ({','.join('?' * len(part))}) ORDER BY product_id",
                                  [run_id, *part]).fetchall()
                   for part in (wanted[i:i + IN_CHUNK] for i in range(0, len(wanted), IN_CHUNK)))
    for rows in batches:
        if rows:
            yield decode_rows(rows)



# --- The propensity model's tables: calibration, gain, "why this user", category audiences --------------
# Each is absent from databases written before it existed (has_table) and empty for runs without it.

CALIBRATION_COLUMNS = ("decile", "entries", "expected", "observed", "min_score", "max_score",
                       "observed_over_expected")
GAIN_COLUMNS = ("strategy", "n", "hits", "share_of_truth", "share_of_list")


def calibration(con: sqlite3.Connection, run_id: int) -> list[dict]:
    """Per score decile (1 = highest) of the propensity scores on the outer holdout; [] when not stored."""
    if not has_table(con, "calibration"):
        return []
    return [dict(zip(CALIBRATION_COLUMNS, r)) for r in con.execute(
        f"SELECT {', '.join(CALIBRATION_COLUMNS)} FROM calibration WHERE run_id = ? ORDER BY decile", [run_id])]


def gain(con: sqlite3.Connection, run_id: int, strategy: str | None = None) -> list[dict]:
    """The holdout gain curve of every strategy (or one), by strategy then n; [] when not stored."""
    if not has_table(con, "gain"):
        return []
    sql = f"SELECT {', '.join(GAIN_COLUMNS)} FROM gain WHERE run_id = ?"
    args: list = [run_id]
    if strategy is not None:
        sql, args = sql + " AND strategy = ?", [run_id, strategy]
    return [dict(zip(GAIN_COLUMNS, r)) for r in con.execute(sql + " ORDER BY strategy, n", args)]


def reasons(con: sqlite3.Connection, run_id: int, product_id: int, n: int | None = None) -> np.ndarray:
    """The packed "why this user" records of a product's audience, rank order (store/reasons.py); empty
    when the run stored none (a strategy other than propensity, or an older run)."""
    from store.reasons import unpack
    if not has_table(con, "audience_reasons"):
        return unpack(None)
    row = con.execute("SELECT reasons FROM audience_reasons WHERE run_id = ? AND product_id = ?",
                      [run_id, product_id]).fetchone()
    return unpack(row[0] if row else None)[:n]


def has_reasons(con: sqlite3.Connection, run_id: int) -> bool:
    return has_table(con, "audience_reasons") and con.execute(
        "SELECT 1 FROM audience_reasons WHERE run_id = ? LIMIT 1", [run_id]).fetchone() is not None


def categories(con: sqlite3.Connection, run_id: int) -> list[str]:
    """The categories that have an audience in the run (a catalogue was given), sorted; [] otherwise."""
    if not has_table(con, "category_audiences"):
        return []
    return [r[0] for r in con.execute("SELECT DISTINCT category FROM category_audiences WHERE run_id = ? "
                                      "ORDER BY category", [run_id])]


def category_audience(con: sqlite3.Connection, run_id: int, category: str, n: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A category's audience (customer_ids, scores), rank order; empty when the run has none for it."""
    if not has_table(con, "category_audiences"):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    rows = con.execute("SELECT customer_id, score FROM category_audiences WHERE run_id = ? AND category = ? "
                       "AND rank <= ? ORDER BY rank", [run_id, category, n or MAX_RANK]).fetchall()
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float64))
