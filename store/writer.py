"""The single writer: every write to the database goes through here, one run at a time.

SQLite 3.40.1 has a known WAL bug when two connections write at once, so one writer is a
correctness rule: a run holds an exclusive ``flock`` on ``<db>.lock`` for its whole life, and the
lock dies with the process, so a killed run never blocks the next one.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlite_utils

from store import snapshot
from store.errors import RunInProgressError, RunNotFoundError
from store.names import CURRENT_RUN_SQL, db_path, utc_now
from store.schema import BULK_TABLES, ensure_schema

log = logging.getLogger("store.writer")
PAGE_SIZE = 16384


def connect(path: str | os.PathLike | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) the database for writing, in WAL mode with the schema in place."""
    path = db_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    db = sqlite_utils.Database(path)
    if new:
        # A packed audience row is ~2 KB: with 4 KB pages two rows stop fitting once ids reach 7 digits
        # and the file doubles (8.3 GB at 5M rows); 16 KB pages hold eight. Only settable before WAL.
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        db.execute("VACUUM")
    db.execute("PRAGMA busy_timeout = 10000")
    db.enable_wal()
    # WAL with synchronous=NORMAL never corrupts the file; it only fsyncs at checkpoints, not per commit.
    db.execute("PRAGMA synchronous = NORMAL")
    ensure_schema(db)
    return db


def data_folder(db: sqlite_utils.Database) -> Path:
    """The folder of the database file: where the app keeps exports, uploads and logs."""
    return Path(db.execute("PRAGMA database_list").fetchone()[2]).resolve().parent


class RunLock:
    """Exclusive, process-lifetime lock that makes the pipeline the only writer."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(f"{db_path(path)}.lock")
        self._fh = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise RunInProgressError(
                f"another run is in progress ({holder}); wait for it to finish, then try again") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()} since {utc_now()}")
        self._fh.flush()
        return self

    def describe(self, text: str) -> None:
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(text)
        self._fh.flush()

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def fail_stale_runs(db: sqlite_utils.Database) -> None:
    """Runs left 'running' by a killed process: only called while holding the lock, so none is alive."""
    with db.conn:
        db.execute("UPDATE runs SET status = 'failed', finished_at = ?, "
                   "error = coalesce(error, 'interrupted: the process ended before the run finished') "
                   "WHERE status = 'running'", [utc_now()])


def start_run(db: sqlite_utils.Database, params: dict, source: str) -> int:
    with db.conn:
        cur = db.execute(
            "INSERT INTO runs (created_at, status, stage, progress, params, source, pid) "
            "VALUES (?, 'running', 'starting', 0, ?, ?, ?)",
            [utc_now(), json.dumps(params, sort_keys=True), source, os.getpid()])
    return int(cur.lastrowid)


def set_params(db: sqlite_utils.Database, run_id: int, params: dict) -> None:
    with db.conn:
        db.execute("UPDATE runs SET params = ? WHERE run_id = ?", [json.dumps(params, sort_keys=True), run_id])


def set_stage(db: sqlite_utils.Database, run_id: int, stage: str, progress: float) -> None:
    with db.conn:
        db.execute("UPDATE runs SET stage = ?, progress = ? WHERE run_id = ?", [stage, progress, run_id])


def finish_run(db: sqlite_utils.Database, run_id: int, summary: dict) -> None:
    with db.conn:
        db.execute("UPDATE runs SET status = 'succeeded', stage = 'done', progress = 1, finished_at = ?, "
                   "summary = ? WHERE run_id = ?", [utc_now(), json.dumps(summary), run_id])


def set_held(db: sqlite_utils.Database, run_id: int, reasons: list[str]) -> None:
    """The publish gates a succeeded run failed (NULL: none); such a run is not published automatically."""
    with db.conn:
        db.execute("UPDATE runs SET held = ? WHERE run_id = ?", [json.dumps(reasons) if reasons else None, run_id])


def fail_run(db: sqlite_utils.Database, run_id: int, error: str) -> None:
    with db.conn:
        db.execute("UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?",
                   [utc_now(), error, run_id])


def publish(db: sqlite_utils.Database, run_id: int) -> str:
    """Make a succeeded run current. One UPDATE: readers see the old run or the new one, never a mix."""
    row = db.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise RunNotFoundError(f"run {run_id} does not exist; `python -m pipeline runs` lists the runs")
    if row[0] != "succeeded":
        raise RunNotFoundError(f"run {run_id} is {row[0]}, only a succeeded run can be published")
    if db.execute("SELECT 1 FROM audience_lists WHERE run_id = ? LIMIT 1", [run_id]).fetchone() is None:
        raise RunNotFoundError(f"run {run_id}'s audiences were pruned (only the last runs keep them); "
                               "publish a newer run or rerun the pipeline")
    _write_snapshot(db, run_id)
    # Strictly later than every earlier publication, so "latest published_at" is never a tie.
    last = db.execute("SELECT max(published_at) FROM runs").fetchone()[0]
    now = datetime.now(UTC)
    if last and datetime.fromisoformat(last) >= now:
        now = datetime.fromisoformat(last) + timedelta(microseconds=1)
    stamp = now.isoformat(timespec="microseconds")
    with db.conn:
        db.execute("UPDATE runs SET published_at = ? WHERE run_id = ?", [stamp, run_id])
    return stamp


def db_file(db: sqlite_utils.Database) -> Path:
    """The file behind a writer connection."""
    return Path(next(row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"))


def _write_snapshot(db: sqlite_utils.Database, run_id: int) -> None:
    """The run's serving snapshot, in place before the run is published, so an API worker maps it at once.
    Not fatal: SQLite is the source of truth and the API rebuilds a missing snapshot from it."""
    try:
        snapshot.write(db_file(db), run_id)
    except OSError as exc:
        log.warning("run %s: serving snapshot not written (%s); the API will rebuild it from the database",
                    run_id, exc)


def prune_runs(db: sqlite_utils.Database, keep: int) -> list[int]:
    """Delete the bulk tables of all but the newest `keep` succeeded runs (the published one is kept)."""
    keep_ids = [r[0] for r in db.execute(
        "SELECT run_id FROM runs WHERE status = 'succeeded' ORDER BY run_id DESC LIMIT ?", [keep])]
    current = db.execute(CURRENT_RUN_SQL).fetchone()
    if current:
        keep_ids.append(current[0])
    marks = ",".join("?" * len(keep_ids)) or "NULL"
    old = [r[0] for r in db.execute(
        f"SELECT DISTINCT run_id FROM audience_lists WHERE run_id NOT IN ({marks})", keep_ids)]
    old += [r[0] for r in db.execute(
        f"SELECT DISTINCT run_id FROM user_features WHERE run_id NOT IN ({marks})", keep_ids)]
    old = sorted(set(old))
    with db.conn:
        for table in BULK_TABLES:
            db.execute(f"DELETE FROM {table} WHERE run_id NOT IN ({marks})", keep_ids)
    snapshot.remove(db_file(db), old)
    return old


VACUUM_SHARE = 0.10  # rewrite the file when at least this share of it is free pages


def free_bytes(db: sqlite_utils.Database) -> tuple[int, int]:
    """(free bytes inside the file, file bytes): pages left by deleted rows that only VACUUM returns."""
    page = db.execute("PRAGMA page_size").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0] * page
    return free, db.execute("PRAGMA page_count").fetchone()[0] * page


def vacuum_if_worthwhile(db: sqlite_utils.Database) -> int:
    """VACUUM when free pages are at least VACUUM_SHARE of the file; returns the bytes it gave back.

    VACUUM copies the whole database, so it needs about its size of free disk, and waits for readers."""
    free, total = free_bytes(db)
    if not total or free < VACUUM_SHARE * total:
        return 0
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    return total - free_bytes(db)[1]


def delete_run_rows(db: sqlite_utils.Database, run_id: int) -> None:
    """A failed run's partial rows: keep what explains it (runs, data_quality, stats), drop the bulk."""
    with db.conn:
        for table in BULK_TABLES + ("fallback_audience", "evaluation", "calibration", "gain"):
            db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])


def write_rows(db: sqlite_utils.Database, table: str, rows: Iterable[Sequence], columns: Sequence[str]) -> None:
    """Bulk insert; plain executemany because sqlite-utils' insert_all is ~3x slower on large tables."""
    cols = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    with db.conn:
        db.conn.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)


def write_frame(db: sqlite_utils.Database, table: str, run_id: int, frame: pd.DataFrame) -> None:
    """Write a DataFrame under run_id; numpy scalars become plain Python values column by column."""
    frame = frame.copy()
    frame.insert(0, "run_id", run_id)
    columns = [frame[c].astype(object).where(frame[c].notna(), None).tolist()
               if frame[c].dtype == object or str(frame[c].dtype).startswith(("datetime", "str"))
               else frame[c].tolist() for c in frame.columns]
    write_rows(db, table, zip(*columns), list(frame.columns))


def write_audience_lists(db: sqlite_utils.Database, run_id: int, product_ids: np.ndarray, sizes: np.ndarray,
                         id_blobs: np.ndarray, score_blobs: np.ndarray, id_width: int, score_width: int) -> None:
    n = len(product_ids)
    rows = zip([run_id] * n, product_ids.tolist(), sizes.tolist(), [id_width] * n, [score_width] * n,
               id_blobs.tolist(), score_blobs.tolist())
    write_rows(db, "audience_lists", rows,
               ["run_id", "product_id", "size", "id_width", "score_width", "customer_ids", "scores"])


def write_reasons(db: sqlite_utils.Database, run_id: int, product_ids: np.ndarray, sizes: np.ndarray,
                  blobs: list[bytes]) -> None:
    """One packed row of "why this user" facts per product (store/reasons.py)."""
    n = len(product_ids)
    write_rows(db, "audience_reasons", zip([run_id] * n, product_ids.tolist(), sizes.tolist(), blobs),
               ["run_id", "product_id", "size", "reasons"])


def add_stress_run(db: sqlite_utils.Database, row: dict) -> int:
    with db.conn:
        return int(db["stress_runs"].insert(row).last_pk)
