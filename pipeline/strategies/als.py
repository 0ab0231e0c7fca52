"""The `als` strategy: a low-rank factorization of the weighted, decayed interaction matrix.

A truncated SVD (randomized, seeded by the run) of users x products, log-scaled so a heavy buyer does
not drown everyone else, gives every product a taste vector; a user's taste is the sum of the vectors of
what they touched (the usual fold-in). A user's score for a product is the dot product of the two.

Only users who touched at least two different products are ranked by taste: one product tells the
factorization nothing about a user beyond that product itself. Everyone else (and any pool user without
a positive match) follows in engagement order, so every audience is full.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.config import RunParams
from pipeline.data.features import engagement_order
from pipeline.strategies.affinity import UserLists, interaction_matrix, item_index, list_candidates, merge_disjoint
from pipeline.strategies.baselines import product_pairs
from pipeline.strategies.ranking import PRODUCT_BLOCK, AudienceBlock

FACTORS = 32
OVERSAMPLE = 8
POWER_ITERATIONS = 2
MIN_PRODUCTS = 2        # distinct products a user needs to be ranked by taste
# Scoring is products x pool dot products: an unbounded pool makes the cost grow with the square of the
# data (5M rows: 261 s instead of ~60 s). The demo has ~47K such users, so this only binds beyond it.
MAX_POOL = 50_000
SCORE_BLOCK = 1024      # products scored at once: bounds the dense (products x pool) block


def _orthonormal(columns: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns' span via the small Gram matrix: tall QR in LAPACK is several
    times slower here, and dropping near-null directions keeps degenerate (tiny) inputs safe."""
    values, vectors = np.linalg.eigh(columns.T @ columns)
    keep = values > values.max(initial=0.0) * 1e-10
    return columns @ (vectors[:, keep] / np.sqrt(values[keep]))


def randomized_svd(matrix: sp.csr_matrix, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(singular values, right singular vectors as columns) of a sparse matrix (Halko et al. 2011),
    iterating on the Gram matrix of the shorter side so the dense work is on the smaller dimension."""
    wide = matrix.shape[0] <= matrix.shape[1]
    gram = (matrix @ matrix.T if wide else matrix.T @ matrix).tocsr()
    rng = np.random.default_rng(seed)
    basis = _orthonormal(gram @ rng.standard_normal((gram.shape[0], rank + OVERSAMPLE)))
    for _ in range(POWER_ITERATIONS):  # sharpens the spectrum; a couple of passes suffice
        basis = _orthonormal(gram @ basis)
    values, vectors = np.linalg.eigh(basis.T @ (gram @ basis))
    top = np.argsort(values)[::-1][:rank]
    top = top[values[top] > values.max(initial=0.0) * 1e-10]
    singular = np.sqrt(values[top])
    side = basis @ vectors[:, top]  # singular vectors of the shorter side
    if not wide:
        return singular, side
    return singular, np.asarray(matrix.T @ side) / singular


def taste_vectors(matrix: sp.csr_matrix, pool: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool users x factors, products x factors), float32, fitted on the pool's rows only."""
    rows = matrix[pool]
    rows.data = np.log1p(rows.data)
    if rows.nnz == 0:
        return np.zeros((len(pool), 1), np.float32), np.zeros((matrix.shape[1], 1), np.float32)
    _, item_vectors = randomized_svd(rows, FACTORS, seed)
    return np.asarray(rows @ item_vectors, dtype=np.float32), item_vectors.astype(np.float32)


def taste_pool(unique_products: np.ndarray, eng_rank: np.ndarray) -> np.ndarray:
    """Users ranked by taste: at least MIN_PRODUCTS distinct products, at most MAX_POOL of them (the
    broadest histories first, then engagement order), as sorted user positions."""
    pool = np.flatnonzero(unique_products >= MIN_PRODUCTS)
    if len(pool) > MAX_POOL:
        best = np.lexsort((eng_rank[pool], -unique_products[pool]))[:MAX_POOL]
        pool = np.sort(pool[best])
    return pool


def _top_in_pool(scores: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column indexes and values of the best `depth` positive scores (-inf padded)."""
    width = min(depth, scores.shape[1])
    cut = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    values = np.take_along_axis(scores, cut, axis=1)
    return cut, np.where(values > 0, values, -np.inf)


def als_audiences(events: pd.DataFrame, users: pd.DataFrame, params: RunParams, products: np.ndarray,
                  catalogue: pd.DataFrame | None = None) -> Iterator[AudienceBlock]:
    n_users, depth = len(users), params.depth
    ids = users["customer_id"].to_numpy()
    order = engagement_order(users)
    eng_rank = np.empty(n_users, dtype=np.int64)
    eng_rank[order] = np.arange(n_users)
    matrix, items = interaction_matrix(events, users, params)
    pool = taste_pool(users["unique_products"].to_numpy(), eng_rank)
    user_taste, item_taste = taste_vectors(matrix, pool, params.seed)
    # Users and products the factors say nothing about (a zero vector) are left to the filler.
    tasteful = np.abs(user_taste).sum(axis=1) > 0
    pool, user_taste = pool[tasteful], user_taste[tasteful]
    column = item_index(items, products)
    product_taste = np.where(column[:, None] >= 0, item_taste[np.maximum(column, 0)], 0.0).astype(np.float32)
    pair_index, pair_rows = product_pairs(events, users, params.exclude, products)
    pool_of_user = np.full(n_users, -1, dtype=np.int64)
    pool_of_user[pool] = np.arange(len(pool))
    everyone = UserLists(order, np.array([0, n_users]))
    everyone_keys = everyone.key_positions(n_users)
    for start in range(0, len(products), PRODUCT_BLOCK):
        stop = min(start + PRODUCT_BLOCK, len(products))
        pairs = (pair_index >= start) & (pair_index < stop)
        local, rows = pair_index[pairs] - start, pair_rows[pairs]
        taste_users, taste_scores = _taste_candidates(product_taste[start:stop], user_taste, pool,
                                                      pool_of_user, local, rows, depth)
        # The filler skips the users already placed by taste, so the two lists share nobody.
        placed = np.isfinite(taste_scores)
        skip_local = np.concatenate([local, np.nonzero(placed)[0]])
        skip_rows = np.concatenate([rows, taste_users[placed]])
        filler, valid = list_candidates(everyone, everyone_keys, np.zeros(stop - start, np.int64),
                                        skip_local, skip_rows, depth, n_users)
        positions, block_scores, sizes = merge_disjoint([taste_users, filler],
                                                        [taste_scores, np.where(valid, 0.0, -np.inf)],
                                                        eng_rank, n_users, depth)
        yield AudienceBlock(products[start:stop], sizes, ids[positions], block_scores)


def _taste_candidates(product_taste: np.ndarray, user_taste: np.ndarray, pool: np.ndarray,
                      pool_of_user: np.ndarray, pair_local: np.ndarray, pair_rows: np.ndarray, depth: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per product, its best `depth` pool users by positive dot product (user positions, -inf empty)."""
    n = len(product_taste)
    positions = np.zeros((n, depth), dtype=np.int64)
    scores = np.full((n, depth), -np.inf)
    rows = np.flatnonzero(np.abs(product_taste).sum(axis=1) > 0)
    if len(pool) == 0:
        return positions, scores
    in_pool = pool_of_user[pair_rows] >= 0
    excluded_local, excluded_pool = pair_local[in_pool], pool_of_user[pair_rows[in_pool]]
    for start in range(0, len(rows), SCORE_BLOCK):  # bounds the dense (products x pool) block
        chunk = rows[start:start + SCORE_BLOCK]
        dense = product_taste[chunk] @ user_taste.T
        at = np.searchsorted(chunk, excluded_local)
        hit = (at < len(chunk)) & (chunk[np.minimum(at, len(chunk) - 1)] == excluded_local)
        dense[at[hit], excluded_pool[hit]] = -np.inf
        cut, values = _top_in_pool(dense, depth)
        positions[chunk, :cut.shape[1]] = pool[cut]
        scores[chunk, :cut.shape[1]] = values
    return positions, scores
