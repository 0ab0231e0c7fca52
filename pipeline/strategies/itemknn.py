"""The `itemknn` strategy: implicit's BM25Recommender (item-item nearest neighbours on BM25 weights).

implicit scores a user's products as user_items @ similarity; an audience is the transposed question,
answered with the same similarities: column p of user_items @ similarity[:, p] is every user's score for
product p (users who touched p's neighbours, by similarity). One sparse product per block of products;
users with no tie follow in engagement order, so every audience is full.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from pipeline.strategies.affinity import interaction_matrix, item_index
from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import AudienceBlock, Candidates, Exclusions, assemble

NEIGHBOURS = 100  # K: most similar products kept per product
THREADS = 2


def fit_similarity(matrix: sp.csr_matrix) -> sp.csc_matrix:
    """Items x items BM25 similarity (K nearest per item), as columns for slicing by product.

    BM25Recommender.fit, step by step with its own functions and defaults: its all_pairs_knn returns K
    slots per item, the unused ones as (0, 0, 0.0) entries, and the recommender converts all of them to
    CSR (a sort of items x K entries: 52 s of the 94 s its two fits took in a cProfile of the 5M bench).
    Dropping the empty slots first gives the same matrix."""
    from implicit.nearest_neighbours import BM25Recommender, all_pairs_knn, bm25_weight
    if matrix.nnz == 0:
        return sp.csc_matrix((matrix.shape[1], matrix.shape[1]))
    defaults = BM25Recommender()
    weighted = bm25_weight(matrix.astype(np.float32).T, defaults.K1, defaults.B).T.tocsr()
    knn = all_pairs_knn(weighted, NEIGHBOURS, show_progress=False, num_threads=THREADS)
    kept = knn.data != 0
    return sp.csc_matrix((knn.data[kept], (knn.row[kept], knn.col[kept])), shape=knn.shape)


def neighbour_scores(matrix: sp.csr_matrix, similarity: sp.csc_matrix, items: np.ndarray,
                     products: np.ndarray) -> Candidates:
    """Every (product index, user, score > 0) of user_items @ similarity[:, products]."""
    column = item_index(items, products)
    seen = np.flatnonzero(column >= 0)
    scores = (matrix @ similarity[:, column[seen]]).tocoo()
    keep = scores.data > 0
    return Candidates(seen[scores.col[keep]].astype(np.int64), scores.row[keep].astype(np.int64),
                      scores.data[keep].astype(np.float64))


class ItemKNN(Strategy):
    name = "itemknn"

    def fit(self, events, users, catalogue, params) -> ItemKNN:
        super().fit(events, users, catalogue, params)
        self.matrix, self.items = interaction_matrix(events, users, params)
        self.similarity = fit_similarity(self.matrix)
        return self

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        found = neighbour_scores(self.matrix, self.similarity, self.items, products)
        yield from assemble(products, exclusions, depth, self.ids, self.eng_rank, found)
