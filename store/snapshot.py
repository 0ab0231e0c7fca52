"""A published run's serving snapshot: the arrays the API serves, as .npy files every worker memory-maps.

Written when a run is published (store.writer.publish), beside the database in
``<db>.snapshots/run-<id>/``: built in a temporary folder and renamed into place, so a reader finds the
whole snapshot or none. Workers map the files read-only, so the OS page cache holds one copy for all of
them and a worker starts in milliseconds whatever the run's size.

SQLite stays the source of truth. ``manifest.json`` names the run (id and creation time: a database
rebuilt from scratch starts its run ids again), each array's dtype, shape and file size, and a SHA-256
of every small file and of both ends of every large one. A snapshot that is missing, truncated, from
another run or otherwise does not match is rebuilt from SQLite (and logged), never served.

Arrays (P products, L distinct lists, W = depth, U users, C catalogue products, K categories):
  product_ids (P,) int64 sorted; sizes (P,) int32; lists (P,) int32 -> row of entries;
  entries (L, W, 2) int32|int64 (customer_id, score in units of 1e-9), identical lists stored once;
  fallback (F, 2) int64; user_ids (U,) int64 sorted; users (U,) records of USER_DTYPE;
  catalogue_ids (C,) int64 sorted; catalogue_categories (C,) int32 -> category index;
  category_sizes (K,) int32; category_entries (K, Wc, 2) int64.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from store import read
from store.format import scores_units
from store.packing import decode_digits, decode_signed

log = logging.getLogger("store.snapshot")

FORMAT = 1
SMALL_BYTES = 1 << 20   # files up to this size are hashed whole when loaded
EDGE_BYTES = 1 << 16    # larger files: their first and last 64 KiB are hashed (truncation, another file)
FETCH_ROWS = 2048       # audience rows fetched from SQLite at a time
FETCH_CATALOGUE = 100_000  # catalogue rows fetched at a time (bounded memory for millions of products)
MAX_SEEN = 4096         # distinct lists remembered for sharing (~8 MB of keys at depth 100)

USER_COLUMNS = ("customer_id", "total_interactions", "unique_products", "avg_event_score",
                "interaction_frequency", "recency_days", "engagement_score", "days_active",
                "engagement_rank", "audience_count")
USER_DTYPE = np.dtype([("customer_id", "i8"), ("total_interactions", "i4"), ("unique_products", "i4"),
                       ("avg_event_score", "f8"), ("interaction_frequency", "f8"), ("recency_days", "i4"),
                       ("engagement_score", "f8"), ("days_active", "i4"), ("engagement_rank", "i4"),
                       ("audience_count", "i4")])


class SnapshotInvalid(Exception):
    """The snapshot on disk cannot be served as this run's; the message says why."""


@dataclass(frozen=True)
class Snapshot:
    run_id: int
    created_at: str          # the run's runs.created_at: tells a rebuilt database's run 1 from the old one
    arrays: dict[str, np.ndarray]
    categories: list[str] = field(default_factory=list)
    path: Path | None = None  # None: built in memory and not (yet) on disk


def folder(db: os.PathLike) -> Path:
    return Path(f"{db}.snapshots")


def run_folder(db: os.PathLike, run_id: int) -> Path:
    return folder(db) / f"run-{run_id}"


# --- building from SQLite -------------------------------------------------------------------------------


def build(con: sqlite3.Connection, run_id: int) -> Snapshot:
    """Everything the API serves for one run, read from SQLite in one read transaction."""
    con.execute("BEGIN")  # one snapshot of the database: the parts below agree even if a writer commits
    try:
        run = read.run(con, run_id)
        product_ids, sizes, lists, entries = _audiences(con, run_id)
        ids, scores = read.fallback(con, run_id)
        fallback = np.stack([ids, scores_units(scores)], axis=1)
        users = _users(con, run_id)
        categories, catalogue = _categories(con, run_id)
    finally:
        con.execute("COMMIT")
    arrays = {"product_ids": product_ids, "sizes": sizes, "lists": lists, "entries": entries,
              "fallback": fallback.reshape(-1, 2), "user_ids": np.ascontiguousarray(users["customer_id"]),
              "users": users, **catalogue}
    return Snapshot(run_id, str(run["created_at"]), arrays, categories)


def _audiences(con: sqlite3.Connection, run_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(product_ids, sizes, lists, entries) of a run. Identical lists (strategies ranking from one shared
    order: 112 distinct lists for 195K products on the demo run) are decoded and stored once; the rest a
    batch at a time, so decoding never holds a whole run as digit matrices (8 s and 2 GB at 500K rows)."""
    count = con.execute("SELECT count(*) FROM audience_lists WHERE run_id = ?", [run_id]).fetchone()[0]
    first = con.execute("SELECT id_width, score_width, length(customer_ids) FROM audience_lists "
                        "WHERE run_id = ? LIMIT 1", [run_id]).fetchone()
    id_width, score_width, id_bytes = tuple(first) if first else (1, 1, 0)
    width = id_bytes // id_width
    product_ids = np.empty(count, dtype=np.int64)
    sizes = np.empty(count, dtype=np.int32)
    lists = np.empty(count, dtype=np.int32)
    entries = np.empty((count, width, 2), dtype=np.int32 if id_width <= 9 else np.int64)
    seen: dict[tuple[bytes, bytes], int] = {}
    cursor = con.cursor()
    cursor.row_factory = None
    cursor.execute("SELECT product_id, size, customer_ids, scores FROM audience_lists WHERE run_id = ? "
                   "ORDER BY product_id", [run_id])
    start = stored = 0
    for rows in iter(lambda: cursor.fetchmany(FETCH_ROWS), []):
        stop = start + len(rows)
        product_ids[start:stop], sizes[start:stop] = zip(*((r[0], r[1]) for r in rows))
        new: list[tuple] = []
        for i, r in enumerate(rows, start):  # one dict lookup per product: exact, by the stored bytes
            index = seen.get((r[2], r[3]))
            if index is None:
                index = stored + len(new)
                new.append(r)
                if len(seen) < MAX_SEEN:
                    seen[(r[2], r[3])] = index
            lists[i] = index
        if new:
            entries = _decode_into(new, entries, stored, run_id, (id_width, score_width, width))
            stored += len(new)
        start = stop
    return product_ids, sizes, lists, entries[:stored].copy() if stored < count else entries


def _decode_into(rows: list[tuple], entries: np.ndarray, at: int, run_id: int,
                 widths: tuple[int, int, int]) -> np.ndarray:
    """Decode rows' packed lists into entries[at:at + len(rows)]; returns entries (widened to int64
    if a score does not fit int32)."""
    id_width, score_width, width = widths
    id_fields = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint8).reshape(-1, id_width)
    score_fields = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.uint8).reshape(-1, score_width)
    if len(id_fields) != len(rows) * width or len(score_fields) != len(id_fields):
        raise ValueError(f"run {run_id} has audience lists of different lengths; rerun the pipeline")
    scores = decode_signed(score_fields)
    if scores.size and np.abs(scores).max() > np.iinfo(entries.dtype).max:
        entries = entries.astype(np.int64)  # a strategy with large scores: keep them exact
    block = entries[at:at + len(rows)].reshape(-1, 2)
    decode_digits(id_fields, block[:, 0])
    block[:, 1] = scores
    return entries


def _users(con: sqlite3.Connection, run_id: int) -> np.ndarray:
    count = con.execute("SELECT count(*) FROM user_features WHERE run_id = ?", [run_id]).fetchone()[0]
    cursor = con.cursor()
    cursor.row_factory = None
    cursor.execute(f"SELECT {', '.join(USER_COLUMNS)} FROM user_features WHERE run_id = ? ORDER BY customer_id",
                   [run_id])
    return np.fromiter(cursor, dtype=USER_DTYPE, count=count)


def _categories(con: sqlite3.Connection, run_id: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """The catalogue's product -> category map and each category's audience, numbered by SQLite (category
    names sorted, as Python sorts them: SQLite's BINARY order of UTF-8 is code-point order); empty arrays
    for a run without a catalogue or a database older than those tables."""
    tables = [t for t in ("catalogue_products", "category_audiences") if read.has_table(con, t)]
    names_sql = " UNION ".join(f"SELECT category FROM {t} WHERE run_id = :run AND category IS NOT NULL"
                               for t in tables) or "SELECT NULL AS category WHERE 0"
    numbered = (f"WITH names AS ({names_sql}), "
                "idx AS (SELECT category, row_number() OVER (ORDER BY category) - 1 AS i FROM names) ")
    cursor = con.cursor()
    cursor.row_factory = None
    names = [r[0] for r in cursor.execute(numbered + "SELECT category FROM idx ORDER BY i", {"run": run_id})]
    catalogue = np.zeros(0, dtype=[("product_id", "i8"), ("category", "i4")])
    if "catalogue_products" in tables:
        catalogue = _catalogue(cursor, run_id, names, catalogue.dtype)
    ranked = np.zeros(0, dtype=[("category", "i4"), ("rank", "i8"), ("customer_id", "i8"), ("score", "f8")])
    if "category_audiences" in tables:
        ranked = np.fromiter(cursor.execute(
            numbered + "SELECT idx.i, a.rank, a.customer_id, a.score FROM category_audiences AS a "
            "JOIN idx USING (category) WHERE a.run_id = :run AND a.rank >= 1", {"run": run_id}), dtype=ranked.dtype)
    entries = np.zeros((len(names), int(ranked["rank"].max(initial=0)), 2), dtype=np.int64)
    entries[ranked["category"], ranked["rank"] - 1, 0] = ranked["customer_id"]
    entries[ranked["category"], ranked["rank"] - 1, 1] = scores_units(ranked["score"])
    sizes = np.zeros(len(names), dtype=np.int32)
    np.maximum.at(sizes, ranked["category"], ranked["rank"].astype(np.int32))
    return names, {"catalogue_ids": np.ascontiguousarray(catalogue["product_id"]),
                   "catalogue_categories": np.ascontiguousarray(catalogue["category"]),
                   "category_sizes": sizes, "category_entries": entries}


def _catalogue(cursor: sqlite3.Cursor, run_id: int, names: list[str], dtype: np.dtype) -> np.ndarray:
    """(product_id, category index) of the catalogue's products with a category, by product id. Read in
    the primary key's order and numbered here: SQLite joined the 1.95M rows of the 5M demo to the numbered
    names by scanning the catalogue once per category (9.6 s against 1.9 s, a one-off timing)."""
    number = {name: i for i, name in enumerate(names)}
    cursor.execute("SELECT product_id, category FROM catalogue_products WHERE run_id = ? AND category IS NOT NULL "
                   "ORDER BY product_id", [run_id])
    parts = [np.zeros(0, dtype=dtype)]
    for rows in iter(lambda: cursor.fetchmany(FETCH_CATALOGUE), []):  # bounded batches of rows, not a row loop
        part = np.empty(len(rows), dtype=dtype)
        part["product_id"] = [r[0] for r in rows]
        part["category"] = [number[r[1]] for r in rows]
        parts.append(part)
    return np.concatenate(parts)


# --- on disk --------------------------------------------------------------------------------------------


def _digest(path: Path, size: int) -> str:
    """SHA-256 of a small file whole, of a large file's two ends."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= SMALL_BYTES:
            digest.update(fh.read())
        else:
            digest.update(fh.read(EDGE_BYTES))
            fh.seek(size - EDGE_BYTES)
            digest.update(fh.read(EDGE_BYTES))
    return digest.hexdigest()


def save(snap: Snapshot, db: os.PathLike) -> Path:
    """Write the snapshot into a temporary folder and rename it into place (replacing a damaged one)."""
    final = run_folder(db, snap.run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        files = {}
        for name, array in snap.arrays.items():
            path = tmp / f"{name}.npy"
            np.save(path, array, allow_pickle=False)
            size = path.stat().st_size
            files[name] = {"dtype": array.dtype.str if array.dtype.names is None else array.dtype.descr,
                           "shape": list(array.shape), "bytes": size, "sha256": _digest(path, size)}
        manifest = {"format": FORMAT, "run_id": snap.run_id, "created_at": snap.created_at,
                    "categories": snap.categories, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        for path in tmp.iterdir():  # on disk before the rename makes them visible
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # a damaged snapshot: move it aside (workers mapping it keep their pages)
            old = final.parent / f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _map(path: Path, spec: dict) -> np.ndarray:
    size = path.stat().st_size if path.is_file() else -1
    if size != spec["bytes"]:
        raise SnapshotInvalid(f"{path.name} is {size} bytes, the manifest says {spec['bytes']}")
    if _digest(path, size) != spec["sha256"]:
        raise SnapshotInvalid(f"{path.name} does not match its checksum")
    shape = tuple(spec["shape"])
    # np.load refuses to map an empty array; an empty one costs nothing to read.
    array = np.load(path, mmap_mode="r" if np.prod(shape) else None, allow_pickle=False)
    if array.shape != shape:
        raise SnapshotInvalid(f"{path.name} holds shape {array.shape}, the manifest says {shape}")
    return array


def load(db: os.PathLike, run_id: int, created_at: str) -> Snapshot:
    """Map the run's snapshot read-only, after checking it is this run's and whole."""
    where = run_folder(db, run_id)
    try:
        manifest = json.loads((where / "manifest.json").read_text())
    except FileNotFoundError:
        raise SnapshotInvalid(f"there is no snapshot at {where}") from None
    except (OSError, ValueError) as exc:
        raise SnapshotInvalid(f"its manifest cannot be read ({exc})") from None
    if not isinstance(manifest, dict):
        raise SnapshotInvalid("its manifest is not a JSON object")
    if manifest.get("format") != FORMAT or (manifest.get("run_id"), manifest.get("created_at")) != (run_id, created_at):
        raise SnapshotInvalid(f"it belongs to another run (run {manifest.get('run_id')} created "
                              f"{manifest.get('created_at')}, format {manifest.get('format')})")
    try:
        arrays = {name: _map(where / f"{name}.npy", spec) for name, spec in manifest["files"].items()}
    except (OSError, ValueError, KeyError) as exc:
        raise SnapshotInvalid(f"an array cannot be read ({exc})") from None
    return Snapshot(run_id, created_at, arrays, list(manifest.get("categories", [])), where)


class _Lock:
    """One builder per run at a time (API workers starting together, or a publish): an flock that dies
    with its process."""

    def __init__(self, db: os.PathLike, run_id: int):
        self.path = folder(db) / f"run-{run_id}.lock"

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def write(db: os.PathLike, run_id: int) -> Path:
    """Build the run's snapshot from SQLite and put it in place (at publish; a rollback to a run whose
    snapshot is still whole keeps it)."""
    con = read.connect(db)
    try:
        with _Lock(db, run_id):
            try:
                return load(db, run_id, str(read.run(con, run_id)["created_at"])).path
            except SnapshotInvalid:
                return save(build(con, run_id), db)
    finally:
        con.close()


def open_run(db: os.PathLike, con: sqlite3.Connection, run_id: int) -> Snapshot:
    """The API's way in: map the run's snapshot, or rebuild it from SQLite when it is missing or does not
    match (logged). When it cannot be written (a read-only folder, a full disk), serve the build from memory."""
    created_at = str(read.run(con, run_id)["created_at"])
    try:
        return load(db, run_id, created_at)
    except SnapshotInvalid as first:
        reason = first
    snap = None
    try:
        with _Lock(db, run_id):
            try:  # another worker may have rebuilt it while this one waited for the lock
                return load(db, run_id, created_at)
            except SnapshotInvalid:
                pass
            log.warning("snapshot of run %s at %s not served (%s): rebuilding it from %s",
                        run_id, run_folder(db, run_id), reason, db)
            snap = build(con, run_id)
            save(snap, db)
            return load(db, run_id, created_at)
    except OSError as exc:
        log.warning("snapshot of run %s cannot be written (%s): serving it from memory", run_id, exc)
        return snap if snap is not None else build(con, run_id)


def remove(db: os.PathLike, run_ids: list[int]) -> None:
    """Delete pruned runs' snapshots (a worker still mapping one keeps its pages until it lets go)."""
    for run_id in run_ids:
        shutil.rmtree(run_folder(db, run_id), ignore_errors=True)
        run_folder(db, run_id).with_suffix(".lock").unlink(missing_ok=True)
