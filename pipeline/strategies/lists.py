"""Ranked user lists shared by the strategies: per-product picks from shared lists (skipping each product's
excluded users), the best `depth` of scattered (product, user, score) candidates, and the merge of several
candidate lists that share no user. All vectorized over a block of products.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.arrays import best_first, search
from pipeline.strategies.ranking import skip_excluded


@dataclass
class UserLists:
    """Several ordered user lists in one flat array: list i is users[starts[i]:starts[i + 1]]."""
    users: np.ndarray
    starts: np.ndarray

    def key_positions(self, n_users: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted keys list * n_users + user, and each key's position inside its list."""
        lists = np.repeat(np.arange(len(self.starts) - 1), np.diff(self.starts))
        keys = lists * n_users + self.users
        order = np.argsort(keys, kind="stable")
        return keys[order], order - self.starts[lists[order]]


def list_candidates(lists: UserLists, list_keys: tuple[np.ndarray, np.ndarray], product_list: np.ndarray,
                    pair_index: np.ndarray, pair_rows: np.ndarray, depth: int, n_users: int,
                    with_index: bool = False):
    """The first `depth` allowed users of each product's list (-1: none): (positions (P, depth), valid),
    and with_index, where each sits in the flat list array (to look up per-entry scores)."""
    keys, key_pos = list_keys
    n_products = len(product_list)
    pair_list = product_list[pair_index]
    pair_keys = np.where(pair_list >= 0, pair_list * n_users + pair_rows, -1)
    if keys.size and keys[-1] - keys[0] == keys.size - 1 and (np.diff(keys) == 1).all():
        # Consecutive keys (one list of every user: the filler): a key's place is its offset from the
        # first, which spares a binary search of every skipped pair in every user's key.
        at = np.clip(pair_keys - keys[0], 0, keys.size - 1)
    else:
        at = np.minimum(search(keys, pair_keys), max(keys.size - 1, 0))
    found = (pair_keys >= 0) & (keys[at] == pair_keys) if keys.size else np.zeros(pair_keys.size, bool)
    block, within = pair_index[found], key_pos[at[found]]
    # by product, then place, as one key (a line profile of the demo's propensity ranking: 0.7 s against
    # 4.6 s for a two-key lexsort)
    sort = np.argsort(block * (n_users + 1) + within)
    lengths = np.where(product_list >= 0, np.diff(lists.starts)[np.maximum(product_list, 0)], 0)
    positions, _ = skip_excluded(within[sort], block[sort], n_products, depth, n_users)
    sizes = np.clip(lengths - np.bincount(block, minlength=n_products), 0, depth)
    valid = np.arange(depth)[None, :] < sizes[:, None]
    flat = np.minimum(lists.starts[np.maximum(product_list, 0)][:, None] + np.where(valid, positions, 0),
                      max(lists.users.size - 1, 0))
    users = np.where(valid, lists.users[flat], 0) if lists.users.size else np.zeros_like(flat)
    return (users, valid, flat) if with_index else (users, valid)


def top_per_row(product: np.ndarray, user: np.ndarray, score: np.ndarray, eng_rank: np.ndarray,
                n_products: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Scattered (product, user, score) -> the best `depth` per product: (positions, scores -inf empty)."""
    order = best_first(product, score, eng_rank[user])
    product, user, score = product[order], user[order], score[order]
    rank = np.arange(product.size) - np.searchsorted(product, product, side="left")
    top = rank < depth
    positions = np.zeros((n_products, depth), dtype=np.int64)
    scores = np.full((n_products, depth), -np.inf)
    positions[product[top], rank[top]] = user[top]
    scores[product[top], rank[top]] = score[top]
    return positions, scores


def rank_keys(scores: np.ndarray, eng_rank: np.ndarray, n_users: int) -> np.ndarray:
    """One int64 per cell ordering by score descending, then engagement rank; -inf cells last.

    Scores are scaled to the block's range in 2**40 steps or more (for up to 4M users), far finer than
    any difference the signals carry, so one integer sort replaces a two-key sort per row."""
    rank_bits = max(1, int(n_users - 1).bit_length())
    last = float(2 ** min(52, 62 - rank_bits) - 1)  # every step exact in a float64
    finite = scores[np.isfinite(scores)]
    high, low = finite.max(initial=0.0), finite.min(initial=0.0)
    if high > low:
        steps = high - scores  # -inf (empty) becomes +inf, clipped to the last step below
        steps *= (last - 1) / (high - low)
        np.minimum(steps, last, out=steps)
    else:
        steps = np.where(np.isfinite(scores), 0.0, last)
    keys = steps.astype(np.int64)
    keys <<= rank_bits
    keys |= eng_rank
    return keys


def merge_disjoint(positions: list[np.ndarray], scores: list[np.ndarray], eng_rank: np.ndarray,
                   n_users: int, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the best `depth` of several candidate lists that share no user (-inf: empty cell)."""
    positions, scores = np.concatenate(positions, axis=1), np.concatenate(scores, axis=1)
    keys = rank_keys(scores, eng_rank[positions], n_users)
    if keys.shape[1] > depth:  # partition first: only the best `depth` of each row need sorting
        cut = np.argpartition(keys, depth - 1, axis=1)[:, :depth]
        order = np.take_along_axis(cut, np.argsort(np.take_along_axis(keys, cut, axis=1), axis=1), axis=1)
    else:
        order = np.argsort(keys, axis=1)
    top_scores = np.take_along_axis(scores, order, axis=1)
    valid = np.isfinite(top_scores)
    return (np.take_along_axis(positions, order, axis=1), np.where(valid, top_scores, 0.0),
            valid.sum(axis=1).astype(np.int32))
