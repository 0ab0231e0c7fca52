"""The serving cache: one published run held in memory as a few flat numpy arrays.

Requests only index these arrays. The audiences are read straight from the packed ``audience_lists``
rows, not by decoding a whole run into int64 digit matrices at once (measured: about 8 s and a 2 GB
peak on the 500K demo run). Here:

* identical lists are decoded and stored once: strategies that rank from one shared order
  (engagement: 112 distinct lists for 195K products on the demo run) cost almost nothing, and
  per-product strategies pay only a dict lookup per product on top of the decoding;
* the rest is decoded a batch at a time, small enough to stay in the CPU cache;
* customer ids and scores are int32 when they fit (scores in units of 1e-9, exactly as stored).
"""
from __future__ import annotations

import sqlite3
import threading
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from api import store_read
from store.names import SCORE_SCALE

FETCH_ROWS = 2048      # products fetched from SQLite at a time
DECODE_FIELDS = 32768  # fields decoded per pass: small enough to stay in the CPU cache
MAX_SEEN = 4096        # distinct lists remembered for sharing (~8 MB of keys at depth 100)
RENDER_BUDGET = 24 * 2**20  # bytes of pre-rendered JSON items kept per run

USER_COLUMNS = ("customer_id", "total_interactions", "unique_products", "avg_event_score",
                "interaction_frequency", "recency_days", "engagement_score", "days_active",
                "engagement_rank", "audience_count")
USER_DTYPE = np.dtype([("customer_id", "i8"), ("total_interactions", "i4"), ("unique_products", "i4"),
                       ("avg_event_score", "f8"), ("interaction_frequency", "f8"), ("recency_days", "i4"),
                       ("engagement_score", "f8"), ("days_active", "i4"), ("engagement_rank", "i4"),
                       ("audience_count", "i4")])


class UserTable:
    """The run's user features, sorted by customer_id. Loading them takes ~1.5 s on the demo run, so
    at startup it happens in the background and /users waits for it (see wait())."""

    def __init__(self, db: str, run_id: int):
        self.db, self.run_id = db, run_id
        self.rows: np.ndarray | None = None
        self.error: str | None = None
        self._ready = threading.Event()

    def load(self) -> None:
        try:
            con = store_read.connect(self.db)
            try:
                count = con.execute("SELECT count(*) FROM user_features WHERE run_id = ?", [self.run_id]).fetchone()[0]
                cursor = con.execute(f"SELECT {', '.join(USER_COLUMNS)} FROM user_features WHERE run_id = ? "
                                     "ORDER BY customer_id", [self.run_id])
                self.rows = np.fromiter(cursor, dtype=USER_DTYPE, count=count)
            finally:
                con.close()
        except Exception as exc:  # noqa: BLE001 - a background thread: report it on /users, never die silently
            self.error = f"user features of run {self.run_id} could not be read: {exc}"
        finally:
            self._ready.set()

    def wait(self, seconds: float) -> bool:
        return self._ready.wait(seconds)

    def find(self, customer_id: int) -> dict | None:
        ids = self.rows["customer_id"]
        i = int(np.searchsorted(ids, customer_id))
        if i == len(ids) or ids[i] != customer_id:
            return None
        return {name: self.rows[name][i].item() for name in USER_COLUMNS}

    def __len__(self) -> int:
        return 0 if self.rows is None else len(self.rows)


class RenderedLists:
    """Lists already rendered as JSON items, by list index, up to a byte budget: a list shared by
    many products (or a popular product's) is formatted once, not on every request."""

    def __init__(self, budget: int):
        self.budget = budget
        self.full = budget <= 0  # once a list does not fit, misses render only what they need
        self.items: dict[int, tuple[bytes, array]] = {}

    def get(self, index: int) -> tuple[bytes, array] | None:
        return self.items.get(index)

    def add(self, index: int, items: bytes, ends: array) -> None:
        size = len(items) + ends.itemsize * len(ends)
        if size > self.budget:
            self.full = True
        else:
            self.budget -= size
            self.items[index] = (items, ends)


@dataclass(frozen=True, eq=False)
class AudienceCache:
    """Product product_ids[i] has the list entries[lists[i]], valid up to sizes[i]: entries[j, r] is
    (customer_id, score) at rank r + 1, scores in units of 1 / SCORE_SCALE, exactly as stored. Ids
    and scores sit side by side so one slice gives a whole answer's numbers in JSON order."""

    run_id: int
    depth: int
    loaded_at: str
    product_ids: np.ndarray    # (P,) int64, sorted
    sizes: np.ndarray          # (P,) int32
    lists: np.ndarray          # (P,) int32: the product's row of entries
    entries: np.ndarray        # (L, W, 2) int32 (int64 when ids or scores do not fit), L <= P distinct lists
    fallback_ids: list[int]
    fallback_scores: list[float]
    users: UserTable
    run: dict = field(repr=False)
    stats: dict[str, float] = field(repr=False)
    data_quality: dict[str, int] = field(repr=False)
    evaluation: list[dict] = field(repr=False)
    # memoryviews index and slice to plain ints several times faster than numpy scalars do
    _products: memoryview = field(init=False, repr=False)
    _sizes: memoryview = field(init=False, repr=False)
    _lists: memoryview = field(init=False, repr=False)
    _flat: memoryview = field(init=False, repr=False)
    unit_scores: bool = field(init=False)  # every score in [0, 1): printable as 0.<9 digits>
    rendered: RenderedLists = field(init=False, repr=False)

    def __post_init__(self) -> None:
        scores = self.entries[..., 1]
        unit = bool(scores.size == 0 or (scores.min() >= 0 and scores.max() < SCORE_SCALE))
        for name, value in (("_products", memoryview(self.product_ids)), ("_sizes", memoryview(self.sizes)),
                            ("_lists", memoryview(self.lists)), ("_flat", memoryview(self.entries.reshape(-1))),
                            ("unit_scores", unit), ("rendered", RenderedLists(RENDER_BUDGET))):
            object.__setattr__(self, name, value)

    def row(self, product_id: int) -> int:
        """The product's row, or -1 when the run has not seen it."""
        i = bisect_left(self._products, product_id)
        return i if i < len(self._products) and self._products[i] == product_id else -1

    def count(self, row: int, n: int) -> int:
        """How many of the first n of a row exist: n, or the list's size when fewer users are eligible."""
        return min(n, self._sizes[row])

    def list_index(self, row: int) -> int:
        return self._lists[row]

    def pairs(self, row: int, n: int) -> list[int]:
        """[id1, score1, id2, score2, ...] of the first n of a row (scores in 1 / SCORE_SCALE)."""
        return self.list_pairs(self._lists[row], self.count(row, n))

    def list_pairs(self, index: int, k: int) -> list[int]:
        """The first k (id, score) of list `index`, flat."""
        start = index * self.entries.shape[1] * 2
        return self._flat[start:start + 2 * k].tolist()

    def audience(self, row: int, n: int) -> tuple[list[int], list[float]]:
        """The first n (customer_ids, scores) of a row, or of the fallback audience when row is -1."""
        if row < 0:
            return self.fallback_ids[:n], self.fallback_scores[:n]
        flat = self.pairs(row, n)
        return flat[::2], [s / SCORE_SCALE for s in flat[1::2]]


def build_cache(db: str, run_id: int, load_users: bool = True) -> AudienceCache:
    """Everything the API serves for one run. With load_users=False the user table is left for the
    caller to load (UserTable.load), e.g. in the background after startup."""
    con = store_read.connect(db)
    try:
        con.execute("BEGIN")  # one snapshot: the counts and rows below agree even if a writer commits
        run = store_read.run(con, run_id)
        product_ids, sizes, lists, entries = read_audiences(con, run_id)
        fallback_ids, fallback_scores = store_read.fallback(con, run_id)
        stats, quality = store_read.stats(con, run_id), store_read.data_quality(con, run_id)
        evaluation = store_read.evaluation(con, run_id)
    finally:
        con.close()
    users = UserTable(db, run_id)
    if load_users:
        users.load()
    return AudienceCache(
        run_id=run_id, depth=int(run["params"].get("depth") or entries.shape[1]),
        loaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        product_ids=product_ids, sizes=sizes, lists=lists, entries=entries, fallback_ids=fallback_ids,
        fallback_scores=fallback_scores, users=users, run=run, stats=stats, data_quality=quality,
        evaluation=evaluation)


def read_audiences(con: sqlite3.Connection, run_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(product_ids, sizes, lists, entries) of a run: see AudienceCache."""
    count = con.execute("SELECT count(*) FROM audience_lists WHERE run_id = ?", [run_id]).fetchone()[0]
    first = con.execute("SELECT id_width, score_width, length(customer_ids) FROM audience_lists "
                        "WHERE run_id = ? LIMIT 1", [run_id]).fetchone()
    id_width, score_width, id_bytes = first if first else (1, 1, 0)
    width = id_bytes // id_width
    product_ids = np.empty(count, dtype=np.int64)
    sizes = np.empty(count, dtype=np.int32)
    lists = np.empty(count, dtype=np.int32)
    # Rows past the distinct lists are never written, so their pages never become resident.
    entries = np.empty((count, width, 2), dtype=np.int32 if id_width <= 9 else np.int64)
    seen: dict[tuple[bytes, bytes], int] = {}
    cursor = con.execute("SELECT product_id, size, customer_ids, scores FROM audience_lists WHERE run_id = ? "
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
            entries = decode_lists(new, entries, stored, run_id, (id_width, score_width, width))
            stored += len(new)
        start = stop
    return product_ids, sizes, lists, entries[:stored].copy() if stored < count else entries


def decode_lists(rows: list[tuple], entries: np.ndarray, at: int, run_id: int,
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


def decode_digits(fields: np.ndarray, out: np.ndarray) -> None:
    """(N, w) ASCII digit fields -> N integers written into out.

    Chunks small enough to stay in the CPU cache, transposed so each digit position is contiguous;
    int32 arithmetic when w <= 9 digits (twice the values per instruction of int64)."""
    width = fields.shape[1]
    dtype = np.int32 if width <= 9 else np.int64
    for lo in range(0, len(fields), DECODE_FIELDS):
        digits = fields[lo:lo + DECODE_FIELDS].T.copy()
        digits -= 48
        acc = digits[0].astype(dtype)
        for position in digits[1:]:
            acc *= 10
            acc += position
        out[lo:lo + DECODE_FIELDS] = acc


def decode_signed(fields: np.ndarray) -> np.ndarray:
    """(N, w) fields of a sign ('+' or '-') and w-1 digits -> N int64."""
    values = np.empty(len(fields), dtype=np.int64)
    decode_digits(fields[:, 1:], values)
    np.negative(values, out=values, where=fields[:, 0] == ord("-"))
    return values
