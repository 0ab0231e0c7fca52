"""The reference points every other strategy is measured against: `random`, `activity`, `engagement`.

They share the machinery of the engagement ranking: one order of users (or one random stream per
product), minus each product's excluded users (given, found once by the shared ranking code).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pandas as pd

from pipeline.arrays import search, sorted_unique
from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import (
    PRODUCT_BLOCK,
    AudienceBlock,
    Exclusions,
    engagement_audiences,
    product_blocks,
    rank_by_shared_order,
)

ACTIVITY_WINDOW_DAYS = 30
# Below this many users the random strategy ranks every user by a per-product hash (exact and cheap);
# above it, it draws hashed positions with replacement and keeps first occurrences (same distribution).
EXACT_RANDOM_USERS = 4096
MIX = np.uint64(0x9E3779B97F4A7C15)


def activity_scores(events: pd.DataFrame, users: pd.DataFrame) -> np.ndarray:
    """The prototype's served score: interactions in the last 30 days / (days since last seen + 1)."""
    dates = events["event_date"].to_numpy()
    recent = dates >= dates.max() - np.timedelta64(ACTIVITY_WINDOW_DAYS, "D")
    rows = np.searchsorted(users["customer_id"].to_numpy(), events["customer_id"].to_numpy()[recent])
    counts = np.bincount(rows, minlength=len(users))
    return counts / (users["recency_days"].to_numpy() + 1.0)


class Engagement(Strategy):
    """Users by engagement score (DESIGN.md), the same list for every product apart from exclusions."""
    name = "engagement"

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        yield from engagement_audiences(self.events, self.users, replace(self.params, depth=depth), products,
                                        exclusions)


class Activity(Strategy):
    """The prototype's served score, one shared order."""
    name = "activity"

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        users = self.users
        scores = activity_scores(self.events, users)
        order = np.lexsort((users["customer_id"].to_numpy(), -users["last_event"].to_numpy().astype("int64"),
                            -scores))
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        yield from rank_by_shared_order(products, products[exclusions.index], position[exclusions.rows],
                                        order, users["customer_id"].to_numpy(), scores[order], depth)


def _hash(seed: int, product_ids: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """splitmix64 of (seed, product, draw number): a reproducible random stream per product that does
    not depend on which other products are ranked with it or on the depth asked for."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) * MIX) ^ (product_ids.astype(np.uint64)[:, None] * np.uint64(0xBF58476D1CE4E5B9))
        z = z + draws.astype(np.uint64)[None, :] * MIX
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _first_allowed(candidates: np.ndarray, product_index: np.ndarray, excluded_keys: np.ndarray,
                   n_users: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first `depth` candidates that are neither repeats nor excluded: (positions, sizes)."""
    p, c = candidates.shape
    order = np.argsort(candidates, axis=1, kind="stable")
    sorted_c = np.take_along_axis(candidates, order, axis=1)
    repeat_sorted = np.zeros((p, c), dtype=bool)
    repeat_sorted[:, 1:] = sorted_c[:, 1:] == sorted_c[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    keys = product_index[:, None] * n_users + candidates
    at = np.minimum(search(excluded_keys, keys), max(excluded_keys.size - 1, 0))
    excluded = excluded_keys[at] == keys if excluded_keys.size else np.zeros_like(repeat)
    ok = ~repeat & ~excluded
    rank = np.cumsum(ok, axis=1) - 1
    take = ok & (rank < depth)
    rows, cols = np.nonzero(take)
    out = np.zeros((p, depth), dtype=np.int64)
    out[rows, rank[rows, cols]] = candidates[rows, cols]
    return out, np.bincount(rows, minlength=p).astype(np.int32)


class Random(Strategy):
    """Uniformly random allowed users per product, reproducible from the run's seed."""
    name = "random"

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        yield from random_audiences(len(self.users), self.ids, self.params.seed, products, exclusions, depth)


def random_audiences(n_users: int, ids: np.ndarray, seed: int, products: np.ndarray, exclusions: Exclusions,
                     depth: int) -> Iterator[AudienceBlock]:
    """Uniformly random allowed users per product, reproducible from the seed."""
    pair_index = exclusions.index
    excluded_keys = sorted_unique(pair_index * n_users + exclusions.rows)
    allowed = n_users - np.bincount(pair_index, minlength=len(products))

    def block(start: int, stop: int) -> AudienceBlock:
        index = np.arange(start, stop)
        if n_users <= EXACT_RANDOM_USERS:
            hashed = _hash(seed, products[index], np.arange(n_users))
            candidates = np.argsort(hashed, axis=1, kind="stable")
        else:
            candidates = _draw(seed, products[index], n_users, depth)
        positions, sizes = _first_allowed(candidates, index, excluded_keys, n_users, depth)
        # Rare rows short of users while more are allowed: draw again, longer, only for those rows.
        draws = candidates.shape[1]
        while n_users > EXACT_RANDOM_USERS and np.any(short := sizes < np.minimum(allowed[index], depth)):
            draws *= 2
            longer = _draw(seed, products[index[short]], n_users, draws)
            positions[short], sizes[short] = _first_allowed(longer, index[short], excluded_keys, n_users, depth)
        return AudienceBlock(products[index], sizes, positions, np.zeros(positions.shape), ids)

    yield from product_blocks(len(products), block, PRODUCT_BLOCK // 4)


def _draw(seed: int, product_ids: np.ndarray, n_users: int, depth: int) -> np.ndarray:
    # A few spare draws cover repeats and excluded users; a short row is drawn again, longer.
    draws = depth + depth // 4 + 16
    return (_hash(seed, product_ids, np.arange(draws)) % np.uint64(n_users)).astype(np.int64)
