"""Per-product audiences: the best users for each product that the exclusion rule allows.

Vectorized: every product shares one global ranking of users, and only a product's own excluded users
shift it. If E is the sorted list of a product's excluded positions in the global order and
g_i = E_i - i, then the k-th allowed position is k + #{i : g_i <= k}. One bincount and a cumsum per
block of products give every audience at once, with no loop over products or users.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from pipeline.arrays import member, run_starts, sorted_unique
from pipeline.config import RunParams
from pipeline.data.features import engagement_order

# Products ranked at once: bounds memory at (block x depth) cells and the block's candidates, times the
# BLOCK_THREADS blocks built at once. The same on every machine, as the audiences depend on it: merge_disjoint
# scales scores to its block's range, so scores closer than ~2**-39 of it may tie differently in another block.
PRODUCT_BLOCK = 10_000
# Blocks built at once, one per core (at most two). A block is numpy's sorts, searches, gathers and
# cumsums over large arrays, which release the GIL. `pipeline bench` the same day, one block of 20K
# products at a time against two of 10K: 500K 52.7 -> 50.6 s (audiences 8.6 -> 6.3 s; the evaluation,
# whose second core is fitting ALS, did not change), 5M 587.2 -> 530.9 s, peak 7.59 -> 7.90 GB (two
# blocks of 20K at once: 8.21 GB).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # this process may use
BLOCK_THREADS = min(2, CORES)


@dataclass
class AudienceBlock:
    """Audiences of a block of products. Row i is valid up to sizes[i]; the rest is padding.

    Users are rows of the fitted user table (`ids` is its customer_id column): the evaluation and the
    exposure count want rows, and looking ids up again cost ~3 s of a 500K-row run."""
    product_ids: np.ndarray   # (P,) int64
    sizes: np.ndarray         # (P,) int32
    positions: np.ndarray     # (P, D) int64 rows of the user table (padding: any row)
    scores: np.ndarray        # (P, D) float64
    ids: np.ndarray           # (U,) the user table's customer ids

    @cached_property
    def customer_ids(self) -> np.ndarray:
        """(P, D) int64"""
        return self.ids[self.positions]


def product_blocks(n_products: int, build: Callable[[int, int], AudienceBlock], size: int = PRODUCT_BLOCK
                   ) -> Iterator[AudienceBlock]:
    """build(start, stop) of consecutive blocks of `size` products, yielded in order, BLOCK_THREADS of
    them built at once and no more ahead of the consumer. `build` must only read what blocks share."""
    bounds = [(start, min(start + size, n_products)) for start in range(0, n_products, size)]
    if BLOCK_THREADS < 2 or len(bounds) < 2:
        yield from (build(start, stop) for start, stop in bounds)
        return
    with ThreadPoolExecutor(BLOCK_THREADS, thread_name_prefix="blocks") as pool:
        pending: deque = deque()
        for start, stop in bounds:
            pending.append(pool.submit(build, start, stop))
            if len(pending) >= BLOCK_THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def exclusion_mask(events: pd.DataFrame, rule: str) -> np.ndarray:
    """Rows whose (customer, product) pair removes the customer from that product's audience."""
    if rule == "all":
        return np.ones(len(events), dtype=bool)
    if rule == "purchased":
        return (events["event"] == "purchased").to_numpy()
    return np.zeros(len(events), dtype=bool)


@dataclass(frozen=True)
class Exclusions:
    """The (product index into the ranked products, user position) pairs no audience may contain, found
    once per ranking by `exclusions_for` and handed to every strategy (none applies the rule itself)."""
    index: np.ndarray  # (E,) product index, sorted with rows
    rows: np.ndarray   # (E,) user position
    keys: np.ndarray   # sorted index * n_users + rows
    n_users: int

    def of_block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(local product index, user position) of the pairs of products start..stop-1."""
        lo, hi = np.searchsorted(self.index, [start, stop])
        return self.index[lo:hi] - start, self.rows[lo:hi]

    def block(self, start: int, stop: int) -> Exclusions:
        """The pairs of products start..stop-1, re-indexed from 0."""
        index, rows = self.of_block(start, stop)
        return Exclusions(index, rows, index * self.n_users + rows, self.n_users)

    def allowed(self, index: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """True where a (product index, user position) pair is not excluded."""
        return ~member(index * self.n_users + rows, self.keys)


def exclusions_for(events: pd.DataFrame, users: pd.DataFrame, rule: str, products: np.ndarray) -> Exclusions:
    """Excluded pairs of `products` (sorted ids) under the rule, against the user table `users`."""
    mask = exclusion_mask(events, rule)
    product = events["product_id"].to_numpy()[mask]
    index = np.searchsorted(products, product)
    keep = (index < len(products)) & (products[np.minimum(index, len(products) - 1)] == product)
    rows = np.searchsorted(users["customer_id"].to_numpy(), events["customer_id"].to_numpy()[mask][keep])
    n_users = max(len(users), 1)
    keys = sorted_unique(index[keep] * n_users + rows)
    return Exclusions(keys // n_users, keys % n_users, keys, n_users)


def excluded_pairs(events: pd.DataFrame, users: pd.DataFrame, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(product_ids, user row positions) of the excluded pairs, unique, sorted by product then user."""
    mask = exclusion_mask(events, rule)
    rows = np.searchsorted(users["customer_id"].to_numpy(), events["customer_id"].to_numpy()[mask])
    pairs = np.unique(np.stack([events["product_id"].to_numpy()[mask], rows]), axis=1)
    return pairs[0], pairs[1]


def skip_excluded(order_pos: np.ndarray, block: np.ndarray, n_products: int, depth: int,
                  n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in a shared order of the first `depth` allowed users of each product.

    order_pos: excluded positions, sorted within each product; block: each one's product index (sorted).
    Returns positions (P, depth) and sizes (P,) (fewer than depth when too many users are excluded).
    """
    starts = np.searchsorted(block, np.arange(n_products))
    within = np.arange(len(block)) - starts[block]
    gap = order_pos - within
    hit = gap < depth
    shifts = np.bincount(block[hit] * depth + gap[hit], minlength=n_products * depth)
    positions = np.arange(depth)[None, :] + np.cumsum(shifts.reshape(n_products, depth), axis=1)
    excluded = np.bincount(block, minlength=n_products)
    sizes = np.clip(n_users - excluded, 0, depth).astype(np.int32)
    return positions, sizes


def engagement_audiences(events: pd.DataFrame, users: pd.DataFrame, params: RunParams,
                         products: np.ndarray, exclusions: Exclusions | None = None) -> Iterator[AudienceBlock]:
    """The `engagement` strategy: users by engagement score, minus the excluded, for every product."""
    order = engagement_order(users)
    rank_of_row = np.empty(len(order), dtype=np.int64)
    rank_of_row[order] = np.arange(len(order))
    if exclusions is None:
        pair_products, pair_rows = excluded_pairs(events, users, params.exclude)
    else:
        pair_products, pair_rows = products[exclusions.index], exclusions.rows
    scores = users["engagement_score"].to_numpy()[order]
    yield from rank_by_shared_order(products, pair_products, rank_of_row[pair_rows], order,
                                    users["customer_id"].to_numpy(), scores, params.depth)


def rank_by_shared_order(products: np.ndarray, pair_products: np.ndarray, pair_positions: np.ndarray,
                         order: np.ndarray, ids: np.ndarray, ordered_scores: np.ndarray, depth: int
                         ) -> Iterator[AudienceBlock]:
    """Audiences from one shared ordering (`order`: user rows best first, `ordered_scores` theirs) and
    per-product excluded positions in that order."""
    n_users = len(order)
    # Only the pairs of the products being ranked (a caller may rank a subset), sorted by (product,
    # position): the gap formula needs each product's positions ascending.
    wanted = np.isin(pair_products, products)
    pair_products, pair_positions = pair_products[wanted], pair_positions[wanted]
    sort = np.lexsort((pair_positions, pair_products))
    pair_products, pair_positions = pair_products[sort], pair_positions[sort]

    def block(start: int, stop: int) -> AudienceBlock:
        block_products = products[start:stop]
        lo = np.searchsorted(pair_products, block_products[0], side="left")
        hi = np.searchsorted(pair_products, block_products[-1], side="right")
        block_index = np.searchsorted(block_products, pair_products[lo:hi])
        positions, sizes = skip_excluded(pair_positions[lo:hi], block_index, len(block_products), depth, n_users)
        safe = np.minimum(positions, n_users - 1)
        return AudienceBlock(block_products, sizes, order[safe], ordered_scores[safe], ids)

    yield from product_blocks(len(products), block)


def fallback_audience(users: pd.DataFrame, depth: int) -> pd.DataFrame:
    """The global list with nobody left out: served for products the run has not seen."""
    top = engagement_order(users)[:depth]
    return pd.DataFrame({"rank": np.arange(1, len(top) + 1),
                         "customer_id": users["customer_id"].to_numpy()[top],
                         "score": users["engagement_score"].to_numpy()[top]})


@dataclass
class Candidates:
    """Scattered (product index, user position, score) candidates of a block of products or all of them."""
    index: np.ndarray
    rows: np.ndarray
    scores: np.ndarray

    @staticmethod
    def empty() -> Candidates:
        return Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))


@dataclass
class SharedLists:
    """Ranked user lists several products share (e.g. one per category): list `of_product[p]` (-1: none)."""
    users: np.ndarray       # flat user positions, list after list, best first
    starts: np.ndarray      # list i is users[starts[i]:starts[i + 1]]
    scores: np.ndarray      # per flat entry
    of_product: np.ndarray  # (P,) list index of each ranked product


def best_per_pair(keys: np.ndarray, index: np.ndarray, rows: np.ndarray, scores: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per pair key, in key order, with its best score (NaN only when all of its scores are).

    One stable sort of the integer keys, then the maximum over each run of a repeated key: the
    two-key lexsort by (key, -score) it replaces took 9.8 s against 1.1 s for 20M candidates (a one-off
    timing; `als` hands over ~100 per evaluated product, each pair once, in top-k order)."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = run_starts(keys)
    if starts.size == keys.size:
        return index[order], rows[order], scores[order]
    # a key fixes its (index, row): only the score differs between a pair's repeats
    return index[order[starts]], rows[order[starts]], np.fmax.reduceat(scores[order], starts)


def assemble(products: np.ndarray, exclusions: Exclusions, depth: int, ids: np.ndarray, tie_rank: np.ndarray,
             candidates: Candidates, shared: SharedLists | None = None, filler: np.ndarray | None = None
             ) -> Iterator[AudienceBlock]:
    """The one place where scores become audiences: per product, the best `depth` allowed users among its
    scattered candidates, then its shared list (skipping users already placed), then `filler` (user
    positions best first, score 0) so every audience is full. Excluded pairs never enter; ties go to the
    lower tie_rank. Scores must be non-negative (the filler's 0 comes last)."""
    from pipeline.strategies.lists import UserLists, list_candidates, merge_disjoint, top_per_row
    n_users = len(ids)
    allowed = exclusions.allowed(candidates.index, candidates.rows)
    index, rows, scores = candidates.index[allowed], candidates.rows[allowed], candidates.scores[allowed]
    # The raw candidates go before the sort below: a caller that handed them over without keeping a name
    # (als, itemknn) frees them here. `pipeline bench --rows 5000000`: peak 8,185 -> 7,466 MiB.
    del candidates, allowed
    keys = index * n_users + rows
    if not (keys[1:] > keys[:-1]).all():  # propensity's come one per pair, in order: nothing to sort
        index, rows, scores = best_per_pair(keys, index, rows, scores)
    lists = None
    if shared is not None:
        lists = UserLists(shared.users, shared.starts)
        list_keys = lists.key_positions(n_users)
    everyone = UserLists(filler if filler is not None else np.argsort(tie_rank), np.array([0, n_users]))
    everyone_keys = everyone.key_positions(n_users)

    def block(start: int, stop: int) -> AudienceBlock:
        lo, hi = np.searchsorted(index, [start, stop])
        local, users, values = index[lo:hi] - start, rows[lo:hi], scores[lo:hi]
        positions, top_scores = top_per_row(local, users, values, tie_rank, stop - start, depth)
        columns, column_scores = [positions], [top_scores]
        ex_local, ex_rows = exclusions.of_block(start, stop)
        skip_local, skip_rows = np.concatenate([ex_local, local]), np.concatenate([ex_rows, users])
        if lists is not None:
            picked, valid, at = list_candidates(lists, list_keys, shared.of_product[start:stop], skip_local,
                                                skip_rows, depth, n_users, with_index=True)
            columns.append(picked)
            column_scores.append(np.where(valid, shared.scores[at], -np.inf))
            skip_local = np.concatenate([skip_local, np.nonzero(valid)[0]])
            skip_rows = np.concatenate([skip_rows, picked[valid]])
        positions, block_scores, sizes = merge_disjoint(columns, column_scores, tie_rank, n_users, depth)
        # The filler (score 0) can only reach rows with fewer than `depth` positive scores: it is looked
        # up for those rows alone (with a shared list, few or none of them).
        short = np.flatnonzero((block_scores > 0).sum(axis=1) < depth)
        if short.size:
            slot = np.full(stop - start, -1)
            slot[short] = np.arange(short.size)
            mine = slot[skip_local] >= 0
            picked, valid = list_candidates(everyone, everyone_keys, np.zeros(short.size, np.int64),
                                            slot[skip_local[mine]], skip_rows[mine], depth, n_users)
            positions[short], block_scores[short], sizes[short] = merge_disjoint(
                [c[short] for c in columns] + [picked], [s[short] for s in column_scores] +
                [np.where(valid, 0.0, -np.inf)], tie_rank, n_users, depth)
        return AudienceBlock(products[start:stop], sizes, positions, block_scores, ids)

    yield from product_blocks(len(products), block)
