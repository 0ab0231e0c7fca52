"""How alike are audiences? Jaccard of top-k id rows, and pairs of products that share a category.

A model that sees a product only through its category gives every product of the category one audience
(mean Jaccard@100 near 1 between them); one that also sees the product's own buyers, neighbours and
carts does not. `pipeline bench` prints the mean over random same-category pairs of the published run;
the app's run comparison uses the same row Jaccard between two runs.
"""
from __future__ import annotations

import numpy as np


def jaccard(a: np.ndarray, a_size: np.ndarray, b: np.ndarray, b_size: np.ndarray, k: int) -> np.ndarray:
    """Per row, |A ∩ B| / |A ∪ B| of the top-k ids (ids are unique within a row, as in an audience).

    Both rows are sorted together; an id in both shows up as two equal neighbours. Padding beyond a row's
    size becomes distinct negative numbers, so it never matches. Two empty rows count as identical.
    """
    cols = np.arange(k)
    ka, kb = np.minimum(a_size, k), np.minimum(b_size, k)
    a = np.where(cols < ka[:, None], _width(a, k), -1 - cols)
    b = np.where(cols < kb[:, None], _width(b, k), -1 - k - cols)
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    inter = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    union = ka + kb - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _width(ids: np.ndarray, k: int) -> np.ndarray:
    """(P, k): a list shallower than k is padded (the padding is masked by size anyway)."""
    if ids.shape[1] >= k:
        return ids[:, :k]
    return np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)


def same_category_pairs(categories: np.ndarray, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`pairs` random (i, j), i != j, of indexes with equal category codes (a negative code: no category).
    i is uniform over the indexes whose category holds two or more, j uniform over the others of it."""
    rng = np.random.default_rng(seed)
    order = np.argsort(categories, kind="stable")
    codes = categories[order]
    start = np.searchsorted(codes, codes, side="left")
    size = np.searchsorted(codes, codes, side="right") - start
    eligible = np.flatnonzero((codes >= 0) & (size >= 2))
    if eligible.size == 0 or pairs < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pick = eligible[rng.integers(0, eligible.size, pairs)]
    step = rng.integers(1, size[pick])  # 1 .. size - 1: never the product itself
    other = start[pick] + (pick - start[pick] + step) % size[pick]
    return order[pick], order[other]
