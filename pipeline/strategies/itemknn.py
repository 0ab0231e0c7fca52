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

from pipeline.arrays import group_rank
from pipeline.strategies.affinity import interaction_matrix, item_index
from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import AudienceBlock, Candidates, Exclusions, assemble

NEIGHBOURS = 100  # K: most similar products kept per product
# Items x items products summed at once (an upper bound on the non-zeros of a block of the similarity).
BLOCK_PRODUCTS = 20_000_000


def fit_similarity(matrix: sp.csr_matrix) -> sp.csc_matrix:
    """Items x items BM25 similarity (K nearest per item), as columns for slicing by product.

    implicit's BM25Recommender with its own weighting (bm25_weight, its default K1 and B) and its
    all_pairs_knn done by blocks of items: all_pairs_knn allocates K slots of (row, column, value) per
    item up front, 24 B x K x items, and on these markets ~2% of the slots hold a neighbour. At the 5M
    demo's 1.95M items that was +3.5 GB of peak memory and 7.5 s; by blocks, +0.45 GB and 3.2 s (one-off
    measurements), and the same matrix on the 150K, 500K and 5M demos (every entry equal). Ties go to the
    larger item index, as implicit's top-K heap of (value, index) pairs keeps them."""
    from implicit.nearest_neighbours import BM25Recommender, bm25_weight
    n_items = matrix.shape[1]
    if matrix.nnz == 0:
        return sp.csc_matrix((n_items, n_items))
    defaults = BM25Recommender()
    weighted = bm25_weight(matrix.astype(np.float32).T, defaults.K1, defaults.B).tocsr()  # items x users
    by_user = weighted.T.tocsr()
    products = int((np.diff(by_user.indptr).astype(np.int64) ** 2).sum())  # what the whole product sums
    step = max(1, int(BLOCK_PRODUCTS * n_items // max(products, 1)))
    parts = [_top_neighbours(weighted[start:start + step] @ by_user, start)
             for start in range(0, n_items, step)]  # blocks of items bound the memory, not a loop per item
    rows, columns, values = (np.concatenate(part) for part in zip(*parts))
    return sp.csc_matrix((values, (rows, columns)), shape=(n_items, n_items))


def _top_neighbours(block: sp.csr_matrix, first_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NEIGHBOURS largest non-zero entries of each row of `block` (rows numbered from first_row)."""
    block = block.tocoo()
    kept = block.data != 0
    row, column, value = block.row[kept], block.col[kept], block.data[kept]
    order = np.lexsort((-column, -value, row))
    row, column, value = row[order], column[order], value[order]
    top = group_rank(row) < NEIGHBOURS
    return row[top].astype(np.int64) + first_row, column[top].astype(np.int64), value[top]


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
        # handed over without a name here, so assemble can free them once it has the allowed ones
        yield from assemble(products, exclusions, depth, self.ids, self.eng_rank,
                            neighbour_scores(self.matrix, self.similarity, self.items, products))
