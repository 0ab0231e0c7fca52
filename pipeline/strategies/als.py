"""The `als` strategy: implicit's AlternatingLeastSquares (Hu, Koren & Volinsky 2008) as people use it.

The confidence matrix is users x products, each event counted with its weight and faded by age (the
same matrix `affinity` and `itemknn` use). implicit recommends products to a user; an audience is the
transposed question, answered with the same factors: a product's score for every user is
user_factors @ item_factor, computed as one matrix product per block of products, top `depth` kept with
argpartition. Users without a positive score (and users outside the scored pool) follow in engagement
order, so every audience is full.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from pipeline.strategies.affinity import interaction_matrix, item_index
from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import AudienceBlock, Candidates, Exclusions, assemble

FACTORS = 32
ITERATIONS = 10  # implicit's default is 15; 10 changes recall by noise here and costs a third less
REGULARIZATION = 0.01
THREADS = 2             # the machine's cores: implicit's own threads, with BLAS kept to one (no oversubscription)
# Scoring is products x pool dot products: scoring every user makes the cost grow with the square of the
# data. The pool is every user up to MAX_POOL, else the MAX_POOL broadest histories (then engagement).
MAX_POOL = 20_000
BLOCK_CELLS = 16_000_000  # dense (products x pool) cells scored at once (64 MB of float32)


def fit_factors(matrix: sp.csr_matrix, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(user factors, item factors) of implicit's ALS on the confidence matrix (float32)."""
    from implicit.cpu.als import AlternatingLeastSquares
    if matrix.nnz == 0:
        return np.zeros((matrix.shape[0], 1), np.float32), np.zeros((matrix.shape[1], 1), np.float32)
    with threadpool_limits(1, "blas"):  # implicit's threads do the parallel work; BLAS must not add its own
        model = AlternatingLeastSquares(factors=FACTORS, regularization=REGULARIZATION, iterations=ITERATIONS,
                                        num_threads=THREADS, random_state=seed)
        model.fit(matrix.astype(np.float32).tocsr(), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def scoring_pool(unique_products: np.ndarray, eng_rank: np.ndarray, limit: int = MAX_POOL) -> np.ndarray:
    """Sorted user positions scored densely: everyone up to `limit`, else the broadest histories first."""
    if len(unique_products) <= limit:
        return np.arange(len(unique_products))
    return np.sort(np.lexsort((eng_rank, -unique_products))[:limit])


def top_users(product_vectors: np.ndarray, user_vectors: np.ndarray, pool: np.ndarray, width: np.ndarray,
              offset: int = 0) -> Candidates:
    """Per product row, its `width[row]` best pool users by positive dot product (transposed scoring):
    matrix products over blocks of products, argpartition per block. Rows are product indexes + offset."""
    out = [Candidates.empty()]
    step = max(1, BLOCK_CELLS // max(len(pool), 1))
    live = np.flatnonzero(np.abs(product_vectors).sum(axis=1) > 0)  # products the factors know
    for start in range(0, len(live), step):
        rows = live[start:start + step]
        dense = product_vectors[rows] @ user_vectors.T
        keep = int(min(width[rows].max(), dense.shape[1]))
        cut = np.argpartition(-dense, keep - 1, axis=1)[:, :keep]
        values = np.take_along_axis(dense, cut, axis=1)
        ok = (values > 0) & (np.arange(keep)[None, :] < width[rows][:, None])
        row_index = np.broadcast_to(rows[:, None], cut.shape)[ok]
        out.append(Candidates(row_index + offset, pool[cut[ok]], values[ok].astype(np.float64)))
    return Candidates(*(np.concatenate([getattr(c, f) for c in out]) for f in ("index", "rows", "scores")))


class ALS(Strategy):
    name = "als"

    def fit(self, events, users, catalogue, params) -> ALS:
        super().fit(events, users, catalogue, params)
        matrix, self.items = interaction_matrix(events, users, params)
        self.user_factors, self.item_factors = fit_factors(matrix, params.seed)
        self.pool = scoring_pool(users["unique_products"].to_numpy(), self.eng_rank)
        return self

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        column = item_index(self.items, products)
        vectors = np.where(column[:, None] >= 0, self.item_factors[np.maximum(column, 0)], 0).astype(np.float32)
        # Enough per product that `depth` remain once the shared code drops its excluded users.
        width = depth + np.bincount(exclusions.index, minlength=len(products))
        found = top_users(vectors, self.user_factors[self.pool], self.pool, width)
        yield from assemble(products, exclusions, depth, self.ids, self.eng_rank, found)
