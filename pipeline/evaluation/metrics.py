"""Offline metrics of a set of audiences against the users who really came for each product later.

Everything works on integer user *positions* (row numbers in the candidate user table), so a
(product, user) pair is one int64 key ``product_index * n_users + position``, and a hit test compares
each truth pair with its product's audience row. No loop over products or users.

Definitions (k is the audience cut-off; "truth" of a product = its users in the late part):

* precision_macro: mean over products of hits / k.  precision_micro: all hits / all audience slots.
* recall_macro: mean over products of hits / truth size.  recall_micro: all hits / all truth pairs.
* hit_rate: share of products with at least one hit.
* ndcg: mean over products of DCG / ideal DCG, binary relevance, ideal = min(truth size, k) hits on top.
* reachable_ceiling: the micro recall a perfect ranking of the candidate users would reach: per product
  min(k, truth users who are candidates and allowed by the exclusion rule), over all truth pairs. A
  strategy that only ranks known users cannot beat it.
* user_coverage: distinct users in any audience / candidate users.
* exposure_gini: Gini coefficient of audiences-per-user over all candidate users (0 = everyone equally
  often, 1 = all exposure on one user).
* lift_over_random: recall_micro / the recall_micro a uniformly random audience of allowed users has in
  expectation (computed exactly, so it never divides by a lucky or unlucky draw).
* recall_micro_se (recall_standard_error): how far recall_micro moves when other products and users had
  been evaluated; recall_micro_diff_se: the same for the difference between a strategy and the run's
  own, paired (both face the same truth pairs, so their luck is shared and cancels).
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from pipeline.arrays import member, sorted_unique

HIT_CELLS = 4_000_000  # audience cells gathered at once for the truth pairs' rows (32 MB of int64 positions)
METRICS = ("precision_macro", "precision_micro", "recall_macro", "recall_micro", "hit_rate", "ndcg",
           "reachable_ceiling", "user_coverage", "exposure_gini", "lift_over_random")

# Their explanations in plain words for analysts live in reports/words.py (EXPLANATIONS).


@dataclass(frozen=True)
class Truth:
    """What happened in the late part, for the evaluated products (indexes 0..n_products-1)."""
    n_products: int
    n_users: int                # candidate users (positions 0..n_users-1)
    pair_keys: np.ndarray       # sorted unique keys product * n_users + position of known truth users
    truth_size: np.ndarray      # (P,) truth users per product, known to the candidates or not
    reachable: np.ndarray       # (P,) truth users who are candidates and allowed by the exclusion rule
    allowed: np.ndarray         # (P,) candidate users the exclusion rule allows for the product


def make_truth(truth_products: np.ndarray, truth_positions: np.ndarray, n_products: int, n_users: int,
               excluded_products: np.ndarray, excluded_positions: np.ndarray) -> Truth:
    """Truth pairs, one per (product, user) (position -1: a user the candidates do not know), and the
    excluded (product, position) pairs -> Truth."""
    truth_size = np.bincount(truth_products, minlength=n_products)
    known = truth_positions >= 0
    keys = sorted_unique(truth_products[known] * n_users + truth_positions[known])
    excluded = sorted_unique(excluded_products * n_users + excluded_positions)
    allowed_keys = keys[~member(keys, excluded)]
    reachable = np.bincount(allowed_keys // n_users, minlength=n_products)
    allowed = n_users - np.bincount(excluded // n_users, minlength=n_products)
    return Truth(n_products, n_users, keys, truth_size, reachable, allowed)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 when there is nothing to share)."""
    x = np.sort(np.asarray(counts, dtype=float))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(2 * np.dot(np.arange(1, n + 1), x) / (n * total) - (n + 1) / n)


def recall_standard_error(truth: Truth, hits: np.ndarray, against: np.ndarray | None = None) -> float:
    """Standard error of a micro recall, or of its difference to another audience set's (paired: both
    face the same truth pairs). `hits`, `against`: sorted keys of the truth pairs each one hit.

    The truth pairs are the units, y = hit (minus the other's hit), the recall R = sum(y) / T over the T
    truth pairs. Their luck is shared two ways: a product's pairs rise and fall together, and so do a
    user's, since a returning user who engages with many products is a hit in every audience that holds
    them (the same 100 most active users head every audience of `activity`). So the variance is
    two-way cluster-robust (Cameron, Gelbach & Miller 2011): V_product + V_user - V_pair, each
    V_g = G / (G - 1) * sum over the G clusters of (sum of their y - R)^2 / T^2; where that sum is not
    positive (it can be, in small samples), the larger one-way variance. With one truth pair per user it
    is the product-clustered error (V_user = V_pair).
    A truth pair of a user the candidates do not know is its own user cluster. Clustering by product
    alone made one 500K market's 84 hits of `activity` (42 users, one with 7) look 2.6 standard errors
    ahead of propensity's 54; with the users it is 1.6. nan with fewer than two products or no truth."""
    total = float(truth.truth_size.sum())
    if truth.n_products < 2 or total <= 0:
        return float("nan")
    hits = np.asarray(hits, dtype=np.int64)
    against = np.zeros(0, np.int64) if against is None else np.asarray(against, dtype=np.int64)
    keys = np.union1d(hits, against)  # the pairs with y != 0 possible; every other truth pair has y = 0
    y = member(keys, hits).astype(float) - member(keys, against)
    rate = y.sum() / total
    n = max(truth.n_users, 1)
    by_product = np.bincount(keys // n, weights=y, minlength=truth.n_products) - rate * truth.truth_size
    known = np.bincount(truth.pair_keys % n, minlength=n)
    users = np.flatnonzero(known)
    unknown = total - truth.pair_keys.size  # pairs of unknown users: one cluster each, y = 0
    by_user = np.bincount(keys % n, weights=y, minlength=n)[users] - rate * known[users]
    pair_sum = np.dot(y - rate, y - rate) + (total - keys.size) * rate ** 2
    variances = [_cluster_variance(np.dot(by_product, by_product), truth.n_products, total),
                 _cluster_variance(np.dot(by_user, by_user) + unknown * rate ** 2, users.size + unknown, total),
                 _cluster_variance(pair_sum, total, total)]
    both = variances[0] + variances[1] - variances[2]
    return float(np.sqrt(both if both > 0 else max(variances[0], variances[1])))


def _cluster_variance(squares: float, clusters: float, total: float) -> float:
    """G / (G - 1) * (sum of squared cluster residuals) / T^2 (0 for a single cluster: nothing to spread)."""
    return clusters / (clusters - 1) * squares / total ** 2 if clusters > 1 else 0.0


CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)  # +- Z standard errors: the 95% interval (normal approximation)


def versus(difference: float, standard_error: float) -> str:
    """Is a recall difference one chance would rarely give? 'higher' or 'lower' when its 95% interval
    (difference +- Z standard errors) leaves out zero, else 'within noise'."""
    if not np.isfinite(standard_error) or abs(difference) <= Z * standard_error:
        return "within noise"
    return "higher" if difference > 0 else "lower"


def expected_random_recall(truth: Truth, k: int) -> float:
    """Micro recall of audiences of min(k, allowed) users drawn uniformly from the allowed ones."""
    allowed = np.maximum(truth.allowed, 1)
    expected_hits = np.minimum(k, truth.allowed) * truth.reachable / allowed
    return float(expected_hits.sum() / max(truth.truth_size.sum(), 1))


def hits_of(positions: np.ndarray, sizes: np.ndarray, truth: Truth) -> tuple[np.ndarray, np.ndarray]:
    """(valid cells, hit cells) of audiences (P, D) of user positions against the truth.

    Each truth pair looks along its product's row (truth pairs x depth comparisons): the truth is far
    smaller than the audiences, whose every cell a binary search of the truth keys once probed. Rows are
    gathered for HIT_CELLS cells at a time to bound the temporaries."""
    n_products, depth = positions.shape
    valid = np.arange(depth)[None, :] < sizes[:, None]
    hits = np.zeros(positions.shape, dtype=bool)
    product, user = np.divmod(truth.pair_keys, max(truth.n_users, 1))
    step = max(1, HIT_CELLS // max(depth, 1))
    for start in range(0, product.size, step):  # chunks of truth pairs, not a loop per product
        p, u = product[start:start + step], user[start:start + step]
        row, column = np.nonzero((positions[p] == u[:, None]) & valid[p])
        hits[p[row], column] = True
    return valid, hits


def evaluate_audiences(positions: np.ndarray, sizes: np.ndarray, truth: Truth, ks=(10, 100),
                       cells: tuple[np.ndarray, np.ndarray] | None = None) -> dict[tuple[int, str], float]:
    """positions: (P, D) user positions, valid up to sizes[p]; `cells`: their hits_of, when known.
    Returns {(k, metric): value}."""
    depth = positions.shape[1]
    valid, hits = cells if cells is not None else hits_of(positions, sizes, truth)
    discount = 1.0 / np.log2(np.arange(depth) + 2.0)
    ideal_cum = np.cumsum(discount)
    total_truth = max(int(truth.truth_size.sum()), 1)
    out: dict[tuple[int, str], float] = {}
    for k in ks:  # two cut-offs, not a loop over products
        hits_k, valid_k = hits[:, :k], valid[:, :k]
        per_product = hits_k.sum(axis=1)
        dcg = (hits_k * discount[:k]).sum(axis=1)
        ideal = ideal_cum[np.maximum(np.minimum(truth.truth_size, k), 1) - 1]  # every product has truth
        slots = int(valid_k.sum())
        exposure = np.bincount(positions[:, :k][valid_k], minlength=truth.n_users)
        recall_micro = per_product.sum() / total_truth
        random_recall = expected_random_recall(truth, k)
        out.update({
            (k, "precision_macro"): float(np.mean(per_product / k)),
            (k, "precision_micro"): float(per_product.sum() / slots) if slots else 0.0,
            (k, "recall_macro"): float(np.mean(per_product / np.maximum(truth.truth_size, 1))),
            (k, "recall_micro"): float(recall_micro),
            (k, "hit_rate"): float(np.mean(per_product > 0)),
            (k, "ndcg"): float(np.mean(dcg / ideal)),
            (k, "reachable_ceiling"): float(np.minimum(truth.reachable, k).sum() / total_truth),
            (k, "user_coverage"): float(np.count_nonzero(exposure) / truth.n_users),
            (k, "exposure_gini"): gini(exposure),
            (k, "lift_over_random"): float(recall_micro / random_recall) if random_recall > 0 else 0.0,
        })
    return out
