"""The serving cache: one published run's snapshot (store.snapshot), memory-mapped, plus the few small
tables /metrics shows. Requests only index these arrays.

Workers map the snapshot's files read-only, so the OS page cache holds one copy for every worker and a
start costs milliseconds whatever the run's size; the /recommend answers each worker keeps (Answers) are
its own, within a fixed budget.
"""
from __future__ import annotations

import sqlite3
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from store import read, snapshot
from store.snapshot import USER_COLUMNS, Snapshot

ANSWER_BUDGET = 40 * 2**20  # bytes of whole /recommend answers kept per run and worker: ~40K answers
ANSWER_OVERHEAD = 220  # bytes an answer costs beyond its body and key text: objects, dict slot (tracemalloc)


class UserTable:
    """The run's user features: ids sorted, and their records in the same order."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray):
        self.ids, self.rows = ids, rows

    def find(self, customer_id: int) -> dict | None:
        i = int(np.searchsorted(self.ids, customer_id))
        if i == len(self.ids) or self.ids[i] != customer_id:
            return None
        record = self.rows[i]
        return {name: record[name].item() for name in USER_COLUMNS}

    def __len__(self) -> int:
        return len(self.ids)


class Answers:
    """Whole /recommend bodies by the request's raw (path, query string), so a request seen before is
    one dict lookup: the slicing and wrapping of a list cost about a quarter of a request's CPU (stress
    bench). Only the bytes are kept: in a loaded server every object a request touches is cold in the
    CPU cache (perf), so the ASGI messages are built fresh (hot) rather than kept per answer (cold). A
    run's answers never change, so nothing goes stale; when the budget is spent the dict starts over,
    so it follows whatever is being asked for now."""

    def __init__(self, budget: int):
        self.budget = self.left = budget
        self.bodies: dict[tuple[str, bytes], bytes] = {}

    def add(self, key: tuple[str, bytes], body: bytes) -> bytes:
        """The body, kept when it fits the budget."""
        # a copy of exact size: orjson's output keeps the whole buffer it grew (~4 KiB per answer)
        body = bytes(memoryview(body))
        size = len(body) + len(key[0]) + len(key[1]) + ANSWER_OVERHEAD
        if size > self.budget:
            return body
        if size > self.left:
            self.bodies.clear()
            self.left = self.budget
        self.bodies[key] = body
        self.left -= size
        return body


@dataclass(frozen=True, eq=False)
class AudienceCache:
    """Product product_ids[i] has the list entries[lists[i]], valid up to sizes[i]: entries[j, r] is
    (customer_id, score) at rank r + 1, scores in stored units of 1e-9. Ids and scores sit side by side
    so one slice gives a whole answer's numbers in JSON order. Products the run has not seen but the
    catalogue has get their category's list (category_entries), else the fallback."""

    run_id: int
    depth: int
    loaded_at: str
    snapshot: Snapshot = field(repr=False)
    run: dict = field(repr=False)
    stats: dict[str, float] = field(repr=False)
    data_quality: dict[str, int] = field(repr=False)
    evaluation: list[dict] = field(repr=False)
    calibration: list[dict] = field(repr=False, default_factory=list)  # propensity deciles on the holdout
    gain: list[dict] = field(repr=False, default_factory=list)         # every strategy's holdout gain curve
    # memoryviews index and slice to plain ints several times faster than numpy scalars do
    _products: memoryview = field(init=False, repr=False)
    _sizes: memoryview = field(init=False, repr=False)
    _lists: memoryview = field(init=False, repr=False)
    _flat: memoryview = field(init=False, repr=False)
    answers: Answers = field(init=False, repr=False)

    def __post_init__(self) -> None:
        a = self.snapshot.arrays
        for name, value in (("_products", memoryview(a["product_ids"])), ("_sizes", memoryview(a["sizes"])),
                            ("_lists", memoryview(a["lists"])), ("_flat", memoryview(a["entries"]).cast("B").cast(
                                a["entries"].dtype.char)),
                            ("answers", Answers(ANSWER_BUDGET))):
            object.__setattr__(self, name, value)

    @property
    def product_ids(self) -> np.ndarray:
        return self.snapshot.arrays["product_ids"]

    @property
    def sizes(self) -> np.ndarray:
        return self.snapshot.arrays["sizes"]

    @property
    def entries(self) -> np.ndarray:
        return self.snapshot.arrays["entries"]

    @property
    def users(self) -> UserTable:
        return UserTable(self.snapshot.arrays["user_ids"], self.snapshot.arrays["users"])

    @property
    def fallback_size(self) -> int:
        return len(self.snapshot.arrays["fallback"])

    def row(self, product_id: int) -> int:
        """The product's row, or -1 when the run has not seen it."""
        i = bisect_left(self._products, product_id)
        return i if i < len(self._products) and self._products[i] == product_id else -1

    def count(self, row: int, n: int) -> int:
        """How many of the first n of a row exist: n, or the list's size when fewer users are eligible."""
        return min(n, self._sizes[row])

    def list_index(self, row: int) -> int:
        return self._lists[row]

    def list_pairs(self, index: int, k: int) -> list[int]:
        """The first k (id, score units) of list `index`, flat."""
        start = index * self.entries.shape[1] * 2
        return self._flat[start:start + 2 * k].tolist()

    def category(self, product_id: int) -> str | None:
        """The catalogue category of a product the run has not ranked, when its category has an audience."""
        a = self.snapshot.arrays
        ids = a["catalogue_ids"]
        i = int(np.searchsorted(ids, product_id))
        if i == len(ids) or ids[i] != product_id:
            return None
        index = int(a["catalogue_categories"][i])
        return self.snapshot.categories[index] if a["category_sizes"][index] > 0 else None

    def cold_pairs(self, category: str | None, n: int) -> list[int]:
        """The first n (id, score units) of the category's audience, or of the fallback when category is None."""
        a = self.snapshot.arrays
        if category is None:
            return a["fallback"][:n].reshape(-1).tolist()
        index = self.snapshot.categories.index(category)
        k = min(n, int(a["category_sizes"][index]))
        return a["category_entries"][index, :k].reshape(-1).tolist()

    def pairs(self, product_id: int, n: int) -> tuple[list[int], str | None, bool]:
        """(flat id/score pairs, category, cold_start) of whatever the API serves for this product."""
        row = self.row(product_id)
        if row >= 0:
            return self.list_pairs(self._lists[row], self.count(row, n)), None, False
        category = self.category(product_id)
        return self.cold_pairs(category, n), category, True


def build_cache(db: str, con: sqlite3.Connection, run_id: int) -> AudienceCache:
    """Everything the API serves for one run: its snapshot mapped (rebuilt from SQLite when missing or
    damaged), and the small tables read from SQLite."""
    snap = snapshot.open_run(db, con, run_id)
    run = read.run(con, run_id)
    return AudienceCache(
        run_id=run_id, depth=int(run["params"].get("depth") or snap.arrays["entries"].shape[1]),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"), snapshot=snap, run=run,
        stats=read.stats(con, run_id), data_quality=dict(read.data_quality(con, run_id)),
        evaluation=read.evaluation(con, run_id), calibration=read.calibration(con, run_id),
        gain=read.gain(con, run_id))
