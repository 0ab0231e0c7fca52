"""Small array helpers the evaluation, the cap and the strategies share.

`np.unique` on large int64 arrays is hash-based in numpy 2.x and ~100x slower here than sorting, so
sets of (product, user) keys are kept as sorted arrays and probed with `searchsorted`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for 1-D arrays, by sorting."""
    out = np.sort(np.asarray(values).ravel())
    if out.size:
        out = out[run_starts(out)]
    return out


def run_starts(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted (or grouped) 1-D array starts (none for an empty one)."""
    if ordered.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))


def packed_keys(*columns: np.ndarray) -> np.ndarray | None:
    """Non-negative integer columns packed into one int64 whose order is their lexsort's (the first column
    most significant), or None when a column is negative or they need more than 63 bits."""
    columns = tuple(np.asarray(c, dtype=np.int64) for c in columns)
    if columns[0].size == 0:
        return np.zeros(0, dtype=np.int64)
    if any(c.min() < 0 for c in columns):
        return None
    widths = [max(1, int(c.max()).bit_length()) for c in columns]
    if sum(widths) > 63:
        return None
    keys = columns[0].copy()
    for column, width in zip(columns[1:], widths[1:]):
        keys <<= width
        keys |= column
    return keys


def best_first(groups: np.ndarray, scores: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """The order of np.lexsort((ties, -scores, groups)): by group, then score descending, then tie
    ascending (groups and ties non-negative integers), equal rows in array order.

    One stable integer sort of (group, score's place among the distinct scores, tie) packed in an int64
    where the three fit in 63 bits: on 1.4M candidates of 20K products and 4.26M users (a 5M-row block),
    0.12 s against 0.50 s for the three-key lexsort. Otherwise (or with a NaN score) the lexsort itself."""
    scores = np.asarray(scores, dtype=float)
    if np.size(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    distinct, place = np.unique(scores, return_inverse=True)
    keys = None if np.isnan(distinct[-1]) else packed_keys(groups, distinct.size - 1 - place.ravel(), ties)
    if keys is None:  # NaN: lexsort puts it last, a place would put it first
        return np.lexsort((ties, -scores, groups))
    return np.argsort(keys, kind="stable")


# Above this many sorted values, many probes are searched in sorted order (see `search`).
SORTED_PROBES_FROM = 500_000


def search(sorted_values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """np.searchsorted(sorted_values, keys) (side "left"; keys of any shape), the same answer.

    Random probes into millions of sorted values miss the cache at nearly every step of the binary
    search; probes in sorted order walk it forwards (numpy narrows each search from the previous one).
    Sorting them first (one stable integer sort) paid from ~1M values (a one-off timing: 300K probes into
    6M values 354 ms -> 47 ms, 3M probes 3.5 s -> 0.5 s; into 30K values it lost), so smaller ones are
    searched as given."""
    keys = np.asarray(keys)
    if sorted_values.size < SORTED_PROBES_FROM or keys.size < 1000:
        return np.searchsorted(sorted_values, keys)
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    at = np.empty(flat.size, dtype=np.intp)
    at[order] = np.searchsorted(sorted_values, flat[order])
    return at.reshape(keys.shape)


def member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Elementwise `keys in sorted_keys` (any shape of keys; sorted_keys sorted, repeats allowed)."""
    if sorted_keys.size == 0:
        return np.zeros(np.shape(keys), dtype=bool)
    at = np.minimum(search(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[at] == keys


def group_rank(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2... within runs of equal values (e.g. of a sorted array)."""
    n = groups.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = run_starts(groups)
    return np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))


def positions_of(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Row of each value in `ids` (unique; -1 if absent), any shape. A hash lookup: on tens of millions
    of values it is ~10x faster than searchsorted, whose random probes miss the cache."""
    index = ids if isinstance(ids, pd.Index) else pd.Index(ids)
    return index.get_indexer(np.asarray(values).ravel()).reshape(np.shape(values))


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """True where a key appears for the first time (in array order)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first_sorted = np.ones(keys.size, dtype=bool)
    first_sorted[1:] = ordered[1:] != ordered[:-1]
    first = np.empty(keys.size, dtype=bool)
    first[order] = first_sorted
    return first
