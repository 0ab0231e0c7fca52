"""The `als` strategy: implicit's factors used transposed, its ranking, the closed-form step for
one-product users, and the cache of fits shared within a run."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pipeline.config import RunParams
from pipeline.strategies import als
from tests.conftest import COMMUNITIES, write_events


def test_als_scores_a_product_for_every_user_with_the_same_factors():
    # Transposed use: user_factors @ item_factor. Users [2,0], [0,1], [1,2]; product A = [1,0] scores them
    # 2, 0, 1 (user 1's zero is no score); product B = [0,1] scores 0, 1, 2.
    users = np.array([[2, 0], [0, 1], [1, 2]], dtype=np.float32)
    products = np.array([[1, 0], [0, 1]], dtype=np.float32)
    found = als.top_users(products, users, pool=np.array([10, 11, 12]), width=np.array([2, 2]))
    got = sorted(zip(found.index.tolist(), found.rows.tolist(), found.scores.tolist()))
    assert got == [(0, 10, 2.0), (0, 12, 1.0), (1, 11, 1.0), (1, 12, 2.0)]


def test_als_asks_top_k_for_enough_users_to_replace_the_excluded_ones_in_its_pool():
    # Six users, the pool is users 0-3; product 50's vector scores them 4, 3, 2, 1. User 0 (in the pool)
    # and user 5 (outside it, so never among the top-k) are excluded. With depth 2 the audience is users 1
    # and 2: top-k must be asked for 3 (2 + the one excluded pool user), not 2 (then only user 1 is left).
    from pipeline.strategies.ranking import Exclusions
    model = als.ALS()
    model.items, model.item_factors = np.array([50]), np.array([[1.0]], np.float32)
    model.pool, model.user_factors = np.arange(4), np.array([[4], [3], [2], [1]], np.float32)
    model.ids, model.eng_rank = np.arange(100, 106), np.arange(6)
    index, rows = np.array([0, 0]), np.array([0, 5])
    block = next(model.rank(np.array([50]), Exclusions(index, rows, index * 6 + rows, 6), depth=2))
    assert block.customer_ids[0].tolist() == [101, 102] and block.scores[0].tolist() == [3.0, 2.0]


@pytest.mark.parametrize("chunk", [1, 50_000])
def test_als_ranks_products_in_chunks_with_each_chunks_own_exclusions(chunk, monkeypatch):
    # Pool users 0-3 with factors [4,1], [3,2], [2,3], [1,4]: product 50 = [1,0] scores them 4, 3, 2, 1,
    # product 60 = [0,1] scores them 1, 2, 3, 4. Excluded: user 0 for 50, user 3 for 60. One product per
    # chunk, 60's exclusion must be re-indexed to its chunk: 50 -> users 1, 2; 60 -> users 2, 1.
    from pipeline.strategies.ranking import Exclusions
    monkeypatch.setattr(als, "RANK_CHUNK", chunk)
    model = als.ALS()
    model.items, model.item_factors = np.array([50, 60]), np.eye(2, dtype=np.float32)
    model.pool = np.arange(4)
    model.user_factors = np.array([[4, 1], [3, 2], [2, 3], [1, 4]], np.float32)
    model.ids, model.eng_rank = np.arange(100, 106), np.arange(6)
    index, rows = np.array([0, 1]), np.array([0, 3])
    blocks = list(model.rank(np.array([50, 60]), Exclusions(index, rows, index * 6 + rows, 6), depth=2))
    got = {int(p): (b.customer_ids[i].tolist(), b.scores[i].tolist()) for b in blocks for i, p in enumerate(b.product_ids)}
    assert got == {50: ([101, 102], [3.0, 2.0]), 60: ([102, 101], [3.0, 2.0])}


def test_the_als_scoring_pool_is_bounded_broadest_histories_first():
    unique = np.array([1, 3, 2, 5, 2])
    eng_rank = np.array([0, 4, 1, 3, 2])        # among the 2-product users, 2 ranks above 4
    assert als.scoring_pool(unique, eng_rank, limit=2).tolist() == [1, 3]
    assert als.scoring_pool(unique, eng_rank, limit=3).tolist() == [1, 2, 3]
    assert als.scoring_pool(unique, eng_rank, limit=9).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("item, confidence, expected", [
    # items y0 = (1, 0), y1 = (0, 2): M = Y'Y + 0.01 I = diag(1.01, 4.01); the user solves
    # (M + (c - 1) y y') x = c y
    (0, 3.0, [3 / 3.01, 0.0]),   # diag(1.01 + 2, 4.01) x = (3, 0)
    (1, 2.0, [0.0, 4 / 8.01]),   # diag(1.01, 4.01 + 4) x = (0, 4)
    (1, 1.0, [0.0, 2 / 4.01]),   # c = 1: no extra weight, M x = (0, 2)
])
def test_a_one_product_users_factors_solve_the_als_normal_equations(item, confidence, expected):
    assert als.REGULARIZATION == 0.01
    items = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    users = np.full((2, 2), -1.0, np.float32)
    als._one_product_users(items, np.array([item]), np.array([confidence], np.float32), users, np.array([1]))
    assert users[1].tolist() == pytest.approx(expected, rel=1e-6)
    assert users[0].tolist() == [-1.0, -1.0]  # only the rows asked for are set


def test_the_als_fit_reaches_implicits_training_loss(monkeypatch):
    # The same loop as implicit's fit but one-product users solved exactly (in parts of 1,000 here): on a
    # random market with as many one-product users as the demo, the fit ends at implicit's training loss
    # (to 0.1%).
    monkeypatch.setattr(als, "ONE_PRODUCT_ROWS", 1000)
    from implicit.cpu import _als
    from implicit.cpu.als import AlternatingLeastSquares
    rng = np.random.default_rng(0)
    n_users, n_items = 3000, 400
    per_user = np.where(rng.random(n_users) < 0.9, 1, rng.integers(2, 8, n_users))
    rows = np.repeat(np.arange(n_users), per_user)
    matrix = sp.csr_matrix((rng.random(rows.size).astype(np.float32) * 3 + 0.5,
                            (rows, rng.integers(0, n_items, rows.size))), shape=(n_users, n_items))
    _, users, items = als._fit(matrix, 7)
    model = AlternatingLeastSquares(factors=als.FACTORS, regularization=als.REGULARIZATION,
                                    iterations=als.ITERATIONS, num_threads=1, random_state=7)
    model.fit(matrix, show_progress=False)
    ours = _als.calculate_loss(matrix, users, items, als.REGULARIZATION, num_threads=1)
    theirs = _als.calculate_loss(matrix, model.user_factors, model.item_factors, als.REGULARIZATION, num_threads=1)
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_the_same_matrix_is_factorized_once(monkeypatch):
    import scipy.sparse as sp
    calls = []
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: calls.append(seed) or (np.arange(2), np.ones((2, 1)),
                                                                                  np.ones((2, 1))))
    als._fits.clear()
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    als.fit_factors(matrix, 0)
    als.fit_factors(matrix.copy(), 0)     # same content: the cached factors
    als.fit_factors(matrix * 2, 0)        # other confidences: a new fit
    assert calls == [0, 0]
    als._fits.clear()


def test_a_fit_keeps_only_the_factors_of_the_users_asked_for(monkeypatch):
    import scipy.sparse as sp
    calls = []
    # users 0 and 2 have products (factors 10 and 30), user 1 none
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: calls.append(seed) or (
        np.array([0, 2]), np.array([[10.0], [30.0]], np.float32), np.ones((2, 1), np.float32)))
    als._fits.clear()
    matrix = sp.csr_matrix(np.array([[1, 0], [0, 0], [0, 1]], dtype=np.float32))
    users, _ = als.fit_factors(matrix, 0, rows=np.array([1, 2]))
    assert users.tolist() == [[0.0], [30.0]]                    # user 1 has no taste
    [(kept_users, _)] = [future.result() for future in als._fits.values()]
    assert kept_users.shape == (2, 1)                            # two rows kept, not the fit's three users
    assert als.fit_factors(matrix, 0, rows=np.array([0]))[0].tolist() == [[10.0]] and len(calls) == 2
    als.fit_factors(matrix, 0, rows=np.array([1, 2]))            # asked for before: no new fit
    assert len(calls) == 2
    als._fits.clear()


def test_a_prefetched_matrix_is_fitted_once_on_the_background_thread(monkeypatch):
    import threading

    import scipy.sparse as sp
    threads = []
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: threads.append(threading.current_thread().name) or (
        np.arange(2), np.full((2, 1), 3.0), np.ones((2, 1))))
    als._fits.clear()
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    als.prefetch(matrix, 0)
    users, items = als.fit_factors(matrix.copy(), 0)  # waits for the background fit, does not fit again
    assert len(threads) == 1 and threads[0].startswith("als-prefetch")
    assert users.tolist() == [[3.0], [3.0]] and items.tolist() == [[1.0], [1.0]]
    als._fits.clear()


def test_a_run_starts_its_strategys_fit_on_every_event_before_ranking(tmp_path, monkeypatch):
    from pipeline.run import execute
    shapes = []
    monkeypatch.setattr(als, "prefetch", lambda matrix, seed, rows: shapes.append(matrix.shape))
    execute(write_events(tmp_path / "e.csv", COMMUNITIES), db=tmp_path / "a.db",
            params=RunParams(strategy="als", holdout=0, depth=3))
    assert shapes == [(8, 6)]  # 8 users x 6 products: every event, the matrix the published fit factorizes


def test_a_failed_fit_is_not_kept_and_the_next_ask_fits_again(monkeypatch):
    import scipy.sparse as sp
    calls = []

    def fit(matrix, seed):
        calls.append(seed)
        if len(calls) < 3:
            raise MemoryError("no room")
        return np.arange(2), np.ones((2, 1)), np.ones((2, 1))
    monkeypatch.setattr(als, "_fit", fit)
    als._fits.clear()
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    with pytest.raises(MemoryError):
        als.fit_factors(matrix, 0)                          # here: the error is the caller's
    assert not als._fits
    assert isinstance(als.prefetch(matrix, 0).exception(), MemoryError)  # waits for the background fit
    assert not als._fits
    users, _ = als.fit_factors(matrix, 0)
    assert calls == [0, 0, 0] and users.tolist() == [[1.0], [1.0]]
    als._fits.clear()


def test_forgetting_the_fits_makes_the_next_fit_of_the_same_matrix_a_new_one(monkeypatch):
    import scipy.sparse as sp

    from pipeline.strategies import forget_fits, propensity_data
    calls = []
    monkeypatch.setattr(als, "_fit", lambda matrix, seed: calls.append(seed) or (np.arange(2), np.ones((2, 1)),
                                                                                  np.ones((2, 1))))
    matrix = sp.csr_matrix(np.eye(2, dtype=np.float32))
    als.fit_factors(matrix, 0)
    propensity_data._served[b"key"] = "signals"
    forget_fits()  # what a run does after the evaluation when its strategy does not reuse them
    assert propensity_data._served == {}
    als.fit_factors(matrix, 0)
    assert calls == [0, 0]
    forget_fits()


# users x 8 items: items 1 and 2 are touched by exactly the same users (a tie among item 0's neighbours),
# item 3 shares one user with item 0, item 4 nobody's; items 5-7 are there so that BM25's idf stays positive.
