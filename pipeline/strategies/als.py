"""The `als` strategy: implicit's AlternatingLeastSquares (Hu, Koren & Volinsky 2008) as people use it
(its loop and solver; the one-product users, most of these markets' users, are solved exactly: `_fit`).

The confidence matrix is users x products, each event counted with its weight and faded by age (the
same matrix `affinity` and `itemknn` use). implicit recommends products to a user; an audience is the
transposed question, answered with the same factors: a product's score for every user is
user_factors @ item_factor, the top `depth` per product found by implicit's own top-k (dot products and
selection in its threaded C++ loop, several times faster than a dense block and argpartition). Users without a positive score (and users outside the scored pool) follow in engagement
order, so every audience is full.
"""
from __future__ import annotations

import hashlib
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from pipeline.arrays import member, packed_keys
from pipeline.config import RunParams
from pipeline.data.features import engagement_places
from pipeline.strategies.affinity import interaction_matrix, item_index
from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import AudienceBlock, Candidates, Exclusions, assemble

# Halving the work was measured and not taken (a one-off fit of the 500K demo's full matrix, 425,568 x
# 195,272: 11.1-11.7 s as set, 6.3 s with 16 factors, 5.7 s with 5 iterations): on `pipeline quality`
# (60K rows, seed 7) `als`'s own recall@100 fell to a geometric mean of 0.82x and 0.90x of today's on
# the ten cells (the baseline people would use made weaker), and propensity's moved by noise (inner
# +3.4% / +2.6%, outer -0.6% / -0.7%).
FACTORS = 32
ITERATIONS = 10  # implicit's default is 15; 10 changes recall by noise here and costs a third less
REGULARIZATION = 0.01
THREADS = 2             # implicit's top-k threads (the machine's cores), with BLAS kept to one (no oversubscription)
# A fit's own threads: one. implicit's CG solves one user (or item) at a time, a few hundred flops for the
# one-product users that are most of these markets, and two threads fitted the 500K demo's matrix
# (425,568 x 195,272, 486,040 non-zeros) slower than one: 14.7 s and 14.9 s against 11.2 s and 11.1 s.
# The second core is better used fitting the next matrix the run needs (`prefetch`).
FIT_THREADS = 1
# Scoring is products x pool dot products: scoring every user makes the cost grow with the square of the
# data. The pool is every user up to MAX_POOL, else the MAX_POOL broadest histories (then engagement).
MAX_POOL = 20_000
BLOCK_CELLS = 16_000_000  # (products x width) cells of top-k results at once (128 MB of ids and scores)
# Products ranked (top-k, then assemble) at once. All at once, the 5M demo's inner split (~200K products x
# 100+ candidates, then assemble's sort) lifted the run's peak by ~1.1 GB during als's task, to 8,236 MiB
# of all processes, while the outer holdout's ALS fit ran beside it.
RANK_CHUNK = 50_000
# One run fits ALS on the same matrix several times (the `als` strategy and propensity's signals on the
# same early part; propensity's training split of the outer early part is the inner early part): the
# fits of the last CACHED_FITS distinct matrices are kept (done or under way), keyed by the matrix's content
# and the users whose factors are asked for (the scoring pool): a fit keeps only those users' factors, as
# every user's were 545 MB per fit at the 5M demo's 4.26M users.
CACHED_FITS = 3
ONE_PRODUCT_ROWS = 250_000  # one-product users whose factors are computed at once (32 MB of temporaries)
# Every user with a product is fitted. Fitting only 2+-product users (90% of the 500K demo's users have
# one) was ~4x faster and kept `als`'s own recall (Instacart sample 0.652 -> 0.654), but propensity's taste
# source then missed the products mostly one-time buyers touched: its recall@100 on the 150K demo fell
# 0.0036 -> 0.0030 (--exclude all). Folding those users in after the fit (implicit's recalculate_user,
# exact against the fitted item factors) kept their taste and made the default 500K run 136.4 s -> 108.7 s,
# but on the runs' inner splits (`pipeline quality --split inner`, 5 markets x 2 rules at 60K and 150K)
# propensity's recall@100 fell 1.6% on average (12 cells down, 5 up) and its lead over the best other
# strategy went from 14 cells to 10 of 20, so it was not taken.
_fits: OrderedDict[bytes, Future] = OrderedDict()
_lock = threading.Lock()  # _fits is shared with the prefetching thread
# Prefetched fits, fitted one after the other by one daemon thread: a run stopped with Ctrl-C (or failed)
# exits at once instead of waiting for a fit nobody will use.
_queue: queue.SimpleQueue = queue.SimpleQueue()
_worker: threading.Thread | None = None


def forget() -> None:
    """Drop the kept fits (pipeline.strategies.forget_fits); a fit under way finishes and is dropped."""
    with _lock:
        _fits.clear()


def _fingerprint(matrix: sp.csr_matrix, seed: int, rows: np.ndarray) -> bytes:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    digest.update(np.array([*matrix.shape, matrix.nnz, seed, FACTORS, ITERATIONS], np.int64).tobytes())
    digest.update(str(REGULARIZATION).encode())
    for part in (matrix.indptr, matrix.indices, matrix.data):
        digest.update(str(part.dtype).encode())
        digest.update(memoryview(np.ascontiguousarray(part)).cast("B"))
    return digest.digest()


def fit_factors(matrix: sp.csr_matrix, seed: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(factors of the users `rows` (default: every user), item factors) of implicit's ALS on the
    confidence matrix, float32; the cached fit of this matrix and these rows keeps only theirs."""
    rows = np.arange(matrix.shape[0]) if rows is None else np.asarray(rows)
    if matrix.nnz == 0:
        return np.zeros((len(rows), 1), np.float32), np.zeros((matrix.shape[1], 1), np.float32)
    users, items = _kept(matrix, seed, rows, background=False).result()  # a prefetched fit: wait for it
    return users.copy(), items.copy()


def prefetch(matrix: sp.csr_matrix, seed: int, rows: np.ndarray | None = None) -> Future | None:
    """Start fitting `matrix` on a background thread (implicit's loop releases the GIL), so a later
    `fit_factors` of the same content and rows finds it done or under way instead of fitting it then."""
    rows = np.arange(matrix.shape[0]) if rows is None else np.asarray(rows)
    return _kept(matrix, seed, rows, background=True) if matrix.nnz else None


def _kept(matrix: sp.csr_matrix, seed: int, rows: np.ndarray, background: bool) -> Future:
    """The kept fit of this content (done or under way), else a new one: fitted here, or queued for the
    background thread. A fit that failed is not kept."""
    matrix = matrix.astype(np.float32).tocsr()
    key = _fingerprint(matrix, seed, rows)
    with _lock:
        if key in _fits:
            _fits.move_to_end(key)
            return _fits[key]
        future = Future()  # kept before it is fitted, so nobody starts the same fit twice
        _fits[key] = future
        while len(_fits) > CACHED_FITS:
            _fits.popitem(last=False)
    if background:
        _start_worker()
        _queue.put((key, future, matrix, seed, rows))
    else:
        _run(key, future, matrix, seed, rows)  # its error, if any, is raised by the caller's result()
    return future


def _run(key: bytes, future: Future, matrix: sp.csr_matrix, seed: int, rows: np.ndarray) -> None:
    try:
        future.set_result(_rows_of(*_fit(matrix, seed), rows))
    except BaseException as exc:
        with _lock:  # dropped before anyone can see the error, so whoever sees it asks for a new fit
            if _fits.get(key) is future:
                del _fits[key]
        future.set_exception(exc)


def _start_worker() -> None:
    global _worker
    with _lock:
        if _worker is None:
            _worker = threading.Thread(target=_work, name="als-prefetch", daemon=True)
            _worker.start()


def _work() -> None:
    while True:  # the daemon thread's life: one queued fit after another
        _run(*_queue.get())


def _fit(matrix: sp.csr_matrix, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """implicit's ALS fitted on the users with a product: (those users' rows, their factors, item factors).

    implicit's own loop (AlternatingLeastSquares.fit: random factors times 0.01, then per iteration its
    conjugate-gradient solver on the users, then on the items), except that the users with exactly one
    product get their exact least-squares factors in one vectorized step (`_one_product_users`) instead
    of three CG steps each. They are most users of these markets (379,452 of the 500K demo's 426,595), and
    implicit solves each user alone, so their step took 0.49 s of an iteration's 0.76 s (0.08 s here):
    fitting the demo's full matrix took 5.15 s instead of implicit's 7.82 s, to the same training loss
    (implicit's calculate_loss: 9.6614475e-06 against 9.6614473e-06; a one-off script)."""
    from implicit.cpu import _als
    from implicit.utils import check_random_state
    broad = np.flatnonzero(np.diff(matrix.indptr) > 0)  # not empty: fit_factors answers an empty matrix
    user_items = (matrix[broad] if broad.size < matrix.shape[0] else matrix).astype(np.float32).tocsr()
    item_users = user_items.T.tocsr()
    rng = check_random_state(seed)
    users = rng.random((user_items.shape[0], FACTORS), dtype=np.float32) * 0.01  # as implicit starts
    items = rng.random((user_items.shape[1], FACTORS), dtype=np.float32) * 0.01
    first = user_items.indptr[:-1]
    one = np.flatnonzero((np.diff(user_items.indptr) == 1) & (user_items.data[np.minimum(first, user_items.nnz - 1)] > 0))
    several = np.setdiff1d(np.arange(user_items.shape[0]), one)
    several_items = user_items[several]
    item, confidence = user_items.indices[first[one]], user_items.data[first[one]]
    with threadpool_limits(1, "blas"):  # implicit's threads do the parallel work; BLAS must not add its own
        for _ in range(ITERATIONS):
            part = np.ascontiguousarray(users[several])
            _als.least_squares_cg(several_items, part, items, REGULARIZATION, num_threads=FIT_THREADS, cg_steps=3)
            users[several] = part
            _one_product_users(items, item, confidence, users, one)
            _als.least_squares_cg(item_users, items, users, REGULARIZATION, num_threads=FIT_THREADS, cg_steps=3)
    if not (np.isfinite(users).all() and np.isfinite(items).all()):
        raise FloatingPointError("ALS produced non-finite factors")
    return broad, users, items


def _one_product_users(items: np.ndarray, item: np.ndarray, confidence: np.ndarray, users: np.ndarray,
                       rows: np.ndarray) -> None:
    """Set users[rows] to the exact ALS factors of users with one product `item` at `confidence` c > 0,
    given the item factors.

    implicit's normal equations for such a user are (M + (c - 1) y y') x = c y, with M = Y'Y + λI and y the
    item's factors; by Sherman-Morrison, x = c z / (1 + (c - 1) y'z) with z = M^-1 y, so one inverse of M
    (factors x factors) serves every user. Written in parts of ONE_PRODUCT_ROWS users: all at once, the
    temporaries were two (users x factors) arrays, 1 GB at the 5M demo's 3.8M such users."""
    gram = items.T.astype(np.float64) @ items.astype(np.float64) + REGULARIZATION * np.eye(items.shape[1])
    z = items @ np.linalg.inv(gram).astype(np.float32)  # one row per item
    yz = np.einsum("ij,ij->i", items, z)
    for start in range(0, len(rows), ONE_PRODUCT_ROWS):  # bounded temporaries, not a loop over users
        part = slice(start, start + ONE_PRODUCT_ROWS)
        scale = (confidence[part] / (1 + (confidence[part] - 1) * yz[item[part]])).astype(np.float32)
        users[rows[part]] = z[item[part]] * scale[:, None]


def _rows_of(broad: np.ndarray, fitted: np.ndarray, items: np.ndarray, rows: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(factors of the users `rows`, zero for a user without a product, item factors)."""
    at = np.minimum(np.searchsorted(broad, rows), max(broad.size - 1, 0))
    found = broad[at] == rows if broad.size else np.zeros(len(rows), bool)
    users = np.zeros((len(rows), items.shape[1]), np.float32)  # a user without a product: no taste
    users[found] = fitted[at[found]]
    return users, items


def scoring_pool(unique_products: np.ndarray, eng_rank: np.ndarray, limit: int = MAX_POOL) -> np.ndarray:
    """Sorted user positions scored densely: everyone up to `limit`, else the broadest histories first."""
    if len(unique_products) <= limit:
        return np.arange(len(unique_products))
    # eng_rank is a permutation (distinct places), so (broadest first, then place) packed in one int64
    # orders every user; a partition then takes the first `limit` without sorting the rest (the three-key
    # lexsort took 0.82 s of 4.26M users, 11 times in a 5M bench; this 0.05 s).
    keys = packed_keys(unique_products.max() - np.asarray(unique_products, dtype=np.int64), eng_rank)
    if keys is None:
        return np.sort(np.lexsort((eng_rank, -unique_products))[:limit])
    return np.sort(np.argpartition(keys, limit - 1)[:limit])


def top_users(product_vectors: np.ndarray, user_vectors: np.ndarray, pool: np.ndarray, width: np.ndarray,
              offset: int = 0) -> Candidates:
    """Per product row, its `width[row]` best pool users by positive dot product (transposed scoring) with
    implicit's top-k, over chunks of products of similar width. Rows are product indexes + offset."""
    from implicit.cpu.topk import topk
    out = [Candidates.empty()]
    live = np.flatnonzero(np.abs(product_vectors).sum(axis=1) > 0)  # products the factors know
    if live.size == 0 or len(pool) == 0:
        return out[0]
    live = live[np.argsort(width[live], kind="stable")]  # a chunk asks for its widest product's width
    wide = np.minimum(width[live], len(pool))
    items = np.ascontiguousarray(user_vectors, dtype=np.float32)
    start = 0
    while start < live.size:  # a few chunks (bounded memory), not a loop over products
        cells = np.arange(1, live.size - start + 1) * np.maximum(wide[start:], 1)
        stop = start + max(1, int(np.searchsorted(cells, BLOCK_CELLS, side="right")))
        rows = live[start:stop]
        keep = int(max(wide[stop - 1], 1))
        with threadpool_limits(1, "blas"):
            cut, values = topk(items, np.ascontiguousarray(product_vectors[rows], dtype=np.float32), keep,
                               num_threads=THREADS)
        ok = (values > 0) & (np.arange(keep)[None, :] < width[rows][:, None]) & (cut >= 0)
        row_index = np.broadcast_to(rows[:, None], cut.shape)[ok]
        out.append(Candidates(row_index + offset, pool[cut[ok]], values[ok].astype(np.float64)))
        start = stop
    return Candidates(*(np.concatenate([getattr(c, f) for c in out]) for f in ("index", "rows", "scores")))


def prefetch_matrix(events: pd.DataFrame, users: pd.DataFrame, params: RunParams) -> None:
    """Start fitting the factors a fit on these events will ask for (the `als` strategy and propensity's
    signals factorize the same confidence matrix)."""
    prefetch(interaction_matrix(events, users, params)[0], params.seed,
             scoring_pool(users["unique_products"].to_numpy(), engagement_places(users)))


class ALS(Strategy):
    name = "als"

    @classmethod
    def prefetch(cls, events, users, params) -> bool:
        prefetch_matrix(events, users, params)
        return True

    def fit(self, events, users, catalogue, params) -> ALS:
        super().fit(events, users, catalogue, params)
        matrix, self.items = interaction_matrix(events, users, params)
        self.pool = scoring_pool(users["unique_products"].to_numpy(), self.eng_rank)
        self.user_factors, self.item_factors = fit_factors(matrix, params.seed, self.pool)  # the pool's
        return self

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        column = item_index(self.items, products)
        vectors = np.where(column[:, None] >= 0, self.item_factors[np.maximum(column, 0)], 0).astype(np.float32)
        # Enough per product that `depth` remain once the shared code drops its excluded users. Only
        # excluded users inside the scored pool can take a slot: counting the others (most of a popular
        # product's past buyers are one-time users, outside the pool) asked top-k for thousands per product.
        in_pool = member(exclusions.rows, self.pool)
        width = depth + np.bincount(exclusions.index[in_pool], minlength=len(products))
        everyone = np.argsort(self.eng_rank)  # assemble's default filler, sorted once
        for start in range(0, len(products), RANK_CHUNK):  # a few chunks bound the candidates' memory
            stop = min(start + RANK_CHUNK, len(products))
            # handed over without a name here, so assemble can free them once it has the allowed ones
            yield from assemble(products[start:stop], exclusions.block(start, stop), depth, self.ids, self.eng_rank,
                                top_users(vectors[start:stop], self.user_factors, self.pool, width[start:stop]),
                                filler=everyone)
