"""Small array helpers the evaluation, the cap and the strategies share.

`np.unique` on large int64 arrays is hash-based in numpy 2.x and ~100x slower here than sorting, so
sets of (product, user) keys are kept as sorted arrays and probed with `searchsorted`.
"""
from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for 1-D arrays, by sorting."""
    out = np.sort(np.asarray(values).ravel())
    if out.size:
        out = out[np.concatenate([[True], out[1:] != out[:-1]])]
    return out


def member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Elementwise `keys in sorted_keys` (any shape of keys; sorted_keys sorted, repeats allowed)."""
    if sorted_keys.size == 0:
        return np.zeros(np.shape(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[at] == keys


def group_rank(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2... within runs of equal values of a sorted array."""
    return np.arange(groups.size) - np.searchsorted(groups, groups, side="left")


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """True where a key appears for the first time (in array order)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first_sorted = np.ones(keys.size, dtype=bool)
    first_sorted[1:] = ordered[1:] != ordered[:-1]
    first = np.empty(keys.size, dtype=bool)
    first[order] = first_sorted
    return first
