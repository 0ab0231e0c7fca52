"""Per-product audiences: the best users for each product that the exclusion rule allows.

Vectorized: every product shares one global ranking of users, and only a product's own excluded users
shift it. If E is the sorted list of a product's excluded positions in the global order and
g_i = E_i - i, then the k-th allowed position is k + #{i : g_i <= k}. One bincount and a cumsum per
block of products give every audience at once, with no loop over products or users.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import RunParams
from pipeline.data.features import engagement_order

PRODUCT_BLOCK = 50_000  # products ranked at once: bounds memory at (block x depth) cells


@dataclass
class AudienceBlock:
    """Audiences of a block of products. Row i is valid up to sizes[i]; the rest is padding."""
    product_ids: np.ndarray   # (P,) int64
    sizes: np.ndarray         # (P,) int32
    customer_ids: np.ndarray  # (P, D) int64
    scores: np.ndarray        # (P, D) float64


def exclusion_mask(events: pd.DataFrame, rule: str) -> np.ndarray:
    """Rows whose (customer, product) pair removes the customer from that product's audience."""
    if rule == "all":
        return np.ones(len(events), dtype=bool)
    if rule == "purchased":
        return (events["event"] == "purchased").to_numpy()
    return np.zeros(len(events), dtype=bool)


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
                         products: np.ndarray) -> Iterator[AudienceBlock]:
    """The `engagement` strategy: users by engagement score, minus the excluded, for every product."""
    order = engagement_order(users)
    rank_of_row = np.empty(len(order), dtype=np.int64)
    rank_of_row[order] = np.arange(len(order))
    pair_products, pair_rows = excluded_pairs(events, users, params.exclude)
    ids = users["customer_id"].to_numpy()[order]
    scores = users["engagement_score"].to_numpy()[order]
    yield from rank_by_shared_order(products, pair_products, rank_of_row[pair_rows], ids, scores, params.depth)


def rank_by_shared_order(products: np.ndarray, pair_products: np.ndarray, pair_positions: np.ndarray,
                         ordered_ids: np.ndarray, ordered_scores: np.ndarray, depth: int
                         ) -> Iterator[AudienceBlock]:
    """Audiences from one shared ordering (ordered_ids best first) and per-product excluded positions."""
    n_users = len(ordered_ids)
    # Only the pairs of the products being ranked (a caller may rank a subset), sorted by (product,
    # position): the gap formula needs each product's positions ascending.
    wanted = np.isin(pair_products, products)
    pair_products, pair_positions = pair_products[wanted], pair_positions[wanted]
    sort = np.lexsort((pair_positions, pair_products))
    pair_products, pair_positions = pair_products[sort], pair_positions[sort]
    for start in range(0, len(products), PRODUCT_BLOCK):  # blocks of products bound memory
        block_products = products[start:start + PRODUCT_BLOCK]
        lo = np.searchsorted(pair_products, block_products[0], side="left")
        hi = np.searchsorted(pair_products, block_products[-1], side="right")
        block_index = np.searchsorted(block_products, pair_products[lo:hi])
        positions, sizes = skip_excluded(pair_positions[lo:hi], block_index, len(block_products), depth, n_users)
        safe = np.minimum(positions, n_users - 1)
        yield AudienceBlock(block_products, sizes, ordered_ids[safe], ordered_scores[safe])


def fallback_audience(users: pd.DataFrame, depth: int) -> pd.DataFrame:
    """The global list with nobody left out: served for products the run has not seen."""
    top = engagement_order(users)[:depth]
    return pd.DataFrame({"rank": np.arange(1, len(top) + 1),
                         "customer_id": users["customer_id"].to_numpy()[top],
                         "score": users["engagement_score"].to_numpy()[top]})
