"""The few read-only queries the API needs, without pandas.

store.queries (and store.schema, through sqlite_utils) import pandas, which costs each API worker
~75 MiB of RSS and ~0.3 s of startup for nothing a request uses; the rules themselves (where the
database is, which run is current, the score scale) come from store.names, shared with store.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from store.errors import NoDatabaseError, RunNotFoundError
from store.names import CURRENT_RUN_SQL


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise NoDatabaseError(f"no database at {path}; build one with `python -m pipeline demo`")
    con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 5000")
    return con


def current_run_id(con: sqlite3.Connection) -> int | None:
    row = con.execute(CURRENT_RUN_SQL).fetchone()
    return None if row is None else int(row[0])


def data_version(con: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: a cheap 'has anything changed?' probe."""
    return int(con.execute("PRAGMA data_version").fetchone()[0])


def run(con: sqlite3.Connection, run_id: int) -> dict:
    cursor = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
    row = cursor.fetchone()
    if row is None:
        raise RunNotFoundError(f"run {run_id} does not exist; `python -m pipeline runs` lists the runs")
    found = dict(zip([c[0] for c in cursor.description], row))
    for key in ("params", "summary"):
        found[key] = json.loads(found[key]) if found.get(key) else {}
    return found


def fallback(con: sqlite3.Connection, run_id: int) -> tuple[list[int], list[float]]:
    rows = con.execute("SELECT customer_id, score FROM fallback_audience WHERE run_id = ? ORDER BY rank",
                       [run_id]).fetchall()
    return [int(r[0]) for r in rows], [float(r[1]) for r in rows]


def stats(con: sqlite3.Connection, run_id: int) -> dict[str, float]:
    return dict(con.execute("SELECT name, value FROM stats WHERE run_id = ? ORDER BY name", [run_id]).fetchall())


def data_quality(con: sqlite3.Connection, run_id: int) -> dict[str, int]:
    return dict(con.execute('SELECT "check", rows FROM data_quality WHERE run_id = ? ORDER BY position',
                            [run_id]).fetchall())


def evaluation(con: sqlite3.Connection, run_id: int) -> list[dict]:
    cursor = con.execute("SELECT strategy, cap, k, metric, value FROM evaluation WHERE run_id = ? "
                         "ORDER BY strategy, cap IS NOT NULL, cap, k, metric", [run_id])
    return [dict(zip(("strategy", "cap", "k", "metric", "value"), row)) for row in cursor]
