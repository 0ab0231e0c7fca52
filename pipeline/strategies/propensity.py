"""The `propensity` strategy: candidates from every source, ranked by a learned, calibrated model.

Stage 1, candidates per product (propensity_data): the user's own earlier events on it (when the
exclusion rule lets them in), item-kNN neighbours (implicit BM25), ALS taste (implicit), and a shared
list per category of its most attached users plus the users most likely to come back.

Stage 2, a ranker: scikit-learn's HistGradientBoostingClassifier on pair features, trained on an inner
temporal split of the events it is fitted on only: features from the events before the inner cut
(end of the data minus the horizon), labels = engaged with the product at or after it. The horizon is
the length of the run's holdout window, so the model answers the question the evaluation asks. The
training products are those seen on both sides of the inner cut (a seeded uniform sample beyond
TRAIN_PRODUCTS), each with its candidates (every engaged pair, the others sampled and reweighted). The scores are calibrated by
cross-fitting (each fold's model calibrated on the products it never saw, the score their mean), so every
engaged pair calibrates: a sigmoid on the log-odds while they are few (the demo's inner split has a few
dozen; isotonic steps fitted on the handful in a held-out quarter overstated the top deciles 2-7x),
isotonic once there are plenty. The score is then the probability that the user engages with the
product within the horizon, given that the product is still being engaged with (the products trained
and evaluated on are those seen in the later window).

Serving scores every candidate with features as of the end of the data. A product's shared list is
scored once per group of products with the same category and (bucketed) popularity and age, since the
model sees such products identically.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from threadpoolctl import threadpool_limits

from pipeline.arrays import member, sorted_unique
from pipeline.config import RunParams
from pipeline.data.features import user_features
from pipeline.strategies.als import prefetch_matrix
from pipeline.strategies.base import Strategy
from pipeline.strategies.propensity_data import (
    FEATURES,
    ProductInfo,
    Signals,
    build_signals,
    category_pools,
    pair_features,
    product_info,
    recalled_signals,
    remember_signals,
    tied_candidates,
)
from pipeline.strategies.ranking import AudienceBlock, Candidates, Exclusions, SharedLists, assemble, exclusions_for

# Products of the inner split in the training frame (all their candidates each): every one up to this
# bound. Engaged pairs are what the model and its calibration learn from, and they are few (the demo's
# inner split: 23 among 8000 sampled products, 74 among all 21K), so no product is left out to save time.
TRAIN_PRODUCTS = 50_000
# Engaged pairs are rare (well under 1%): every positive is kept, negatives at a rate that keeps about
# this many of them, with weight 1 / rate, so the weighted frame stands for all candidates and the
# calibration stays a probability. The frame's size (and the fit's time) no longer grows with products.
TRAIN_NEGATIVES = 200_000
TRAIN_WIDTH = 100         # candidates per source and product in the training frame (bounds its memory)
FOLDS = 3                 # cross-fitting folds of the sampled products: every positive calibrates
ISOTONIC_POSITIVES = 1000  # fewer engaged pairs: a sigmoid calibration (isotonic steps would fit the noise)
MIN_POSITIVES = 20        # fewer engaged pairs after the inner cut: nothing to learn, use the prior
RANK_CHUNK = 20_000       # products whose candidates are featurized and scored at once
MAX_SHARED = 5000         # longest shared list scored per group
# HistGradientBoosting's OpenMP threads spin while they wait: on the two cores this shares with other
# work, two threads fitted 5x slower than one (0.9 s vs 5 s for a 100K-row frame).
THREADS = 1
# Predicting has no such wait: each thread walks the trees for its own rows. On this 2-core machine, quiet,
# `python -m pipeline run --strategy propensity --holdout 0` on the 500K demo ranked its audiences in 155.3 s
# on two threads against 167.8 s on one, with identical audiences.
PREDICT_THREADS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
# Directions the model may not contradict: with a few hundred engaged pairs a free tree can learn that a
# stronger tie lowers the chance; these say only "more of it never hurts" (or, recency, "longer ago never helps").
MONOTONE = {"own_weight": 1, "category_share": 1, "neighbour": 1, "taste": 1, "comeback": 1, "recency_days": -1,
            "comeback_x_neighbour": 1, "comeback_x_share": 1}


def horizon_days(events: pd.DataFrame, params: RunParams) -> float:
    """The window the model predicts: the run's holdout window length (set by the run), else the span
    of the last `holdout` share of these events."""
    if params.horizon_days:
        return float(params.horizon_days)
    dates = events["event_date"].to_numpy()
    split = np.quantile(dates.astype("int64"), 1 - (params.holdout or 0.2)).astype("datetime64[ns]")
    return max((dates.max() - split) / np.timedelta64(1, "D"), 1.0)


@dataclass
class Ranker:
    """The calibrated classifier; without it (too little to learn), a prior."""
    model: object | None = None  # a fitted CalibratedClassifierCV
    positives: int = 0
    rows: int = 0

    def predict(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        if self.model is None:  # the prior: the chance of coming back, halved for users with no tie
            tied = (features[:, FEATURES.index("own_weight")] > 0) | (features[:, FEATURES.index("neighbour")] > 0) \
                | (features[:, FEATURES.index("taste")] > 0) | (features[:, FEATURES.index("category_share")] > 0)
            return features[:, FEATURES.index("comeback")] * np.where(tied, 0.1, 0.05)
        with threadpool_limits(PREDICT_THREADS):
            return self.model.predict_proba(features)[:, 1]


def candidate_frame(sig: Signals, info: ProductInfo, products: np.ndarray, exclusions: Exclusions, depth: int,
                    select: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate of every product, or those `select(product index, user)` keeps: (product index,
    user, source bits, features). Selecting first spares the features of the pairs a sample drops."""
    n_users = len(sig.users)
    tied, neighbour, taste = tied_candidates(sig, products, info, exclusions, depth)
    n_codes = len(sig.categories)
    pool_users, starts, bits, _ = category_pools(sig, n_codes, np.full(n_codes + 1, depth))
    code = np.where(info.code >= 0, info.code, n_codes)
    length = np.diff(starts)[code]
    product = np.repeat(np.arange(len(products)), length)
    flat = np.repeat(starts[code], length) + (np.arange(product.size) - np.repeat(np.cumsum(length) - length, length))
    user, shared_bits = pool_users[flat], bits[flat]
    keys = product * n_users + user
    tied_keys = tied.index * n_users + tied.rows
    keep = ~member(keys, exclusions.keys) & ~member(keys, np.sort(tied_keys))
    product, user, shared_bits = product[keep], user[keep], shared_bits[keep]
    all_products, all_users = np.concatenate([tied.index, product]), np.concatenate([tied.rows, user])
    chosen = select(all_products, all_users) if select is not None else np.ones(all_products.size, bool)
    mine, shared = chosen[:tied.index.size], chosen[tied.index.size:]
    user, product = user[shared], product[shared]
    features = np.concatenate([pair_features(sig, info, tied.index[mine], tied.rows[mine], neighbour[mine],
                                             taste[mine]),
                               pair_features(sig, info, None, user, np.zeros(user.size), np.zeros(user.size),
                                             group=info.group[product])])
    return (all_products[chosen], all_users[chosen],
            np.concatenate([tied.scores.astype(np.int64), shared_bits])[chosen], features)


def training_split(events: pd.DataFrame, horizon: float) -> tuple[pd.DataFrame, pd.DataFrame, np.datetime64]:
    dates = events["event_date"].to_numpy()
    # The same instant as the evaluation's inner split (pd.Timedelta, ns), so the training part of the
    # outer fit is that split's early part and their ALS factors are fitted once (als.fit_factors' cache).
    cut = dates.max() - pd.Timedelta(days=horizon).to_timedelta64()
    before = (dates < cut)
    return events[before].reset_index(drop=True), events[~before], cut


def train(events: pd.DataFrame, catalogue: pd.DataFrame | None, params: RunParams) -> Ranker:
    """The ranker, learned on the inner split of `events` (features before the cut, labels after).

    One window. Three stacked windows one horizon apart (each cut from the previous one's early part, the
    frames shared between the run's fits, negatives split between them) roughly doubled the engaged pairs
    and, on `pipeline quality`'s inner splits (5 markets x 2 rules), moved propensity's recall@100 by a
    geometric mean of +4.0% at 60K rows and +1.8% at 150K (the demo's fell), within what one reseed of
    the negative sample alone moved it at 500K (+6.7% outer, -5.7% inner, a one-off script); `pipeline
    bench` at 500K took 110.0 s with it against 75.8 s without, the same day (the two earlier windows'
    frames, with their signals and ALS fits, took ~15 s of the difference in a one-off timing), so it was
    not taken."""
    before, after, _ = training_split(events, horizon_days(events, params))
    if before.empty or after.empty:
        return Ranker()
    products = np.intersect1d(before["product_id"].unique(), after["product_id"].unique())
    rng = np.random.default_rng(params.seed)
    if products.size > TRAIN_PRODUCTS:
        products = np.sort(rng.choice(products, TRAIN_PRODUCTS, replace=False))
    if products.size < 2:
        return Ranker()
    users = user_features(before, params)
    sig = recalled_signals(before, users, catalogue, params) or build_signals(before, users, catalogue, params)
    info = product_info(sig, products, catalogue)
    exclusions = exclusions_for(before, users, params.exclude, products)
    ids = users["customer_id"].to_numpy()
    later = after[after["product_id"].isin(products)]
    at = np.minimum(np.searchsorted(ids, later["customer_id"].to_numpy()), len(ids) - 1)
    known = ids[at] == later["customer_id"].to_numpy()
    truth = sorted_unique(np.searchsorted(products, later["product_id"].to_numpy()[known]) * len(ids) + at[known])

    rate = 1.0

    def sample(product: np.ndarray, user: np.ndarray) -> np.ndarray:
        nonlocal rate
        labels = member(product * len(ids) + user, truth)
        rate = min(1.0, TRAIN_NEGATIVES / max(labels.size - labels.sum(), 1))
        return labels | (rng.random(labels.size) < rate)

    product, user, _, features = candidate_frame(sig, info, products, exclusions, TRAIN_WIDTH, select=sample)
    labels = member(product * len(ids) + user, truth)
    weights = np.where(labels, 1.0, 1.0 / rate)
    return fit_ranker(features, labels, product, params.seed, weights)


def fit_ranker(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int,
               weights: np.ndarray | None = None) -> Ranker:
    """HistGradientBoosting, calibrated by cross-fitting (scikit-learn's CalibratedClassifierCV): the
    training groups (products) fall in FOLDS folds; per fold, a model fitted on the other folds is
    calibrated on this one, and the score is the mean of the FOLDS calibrated models. Every positive
    calibrates once and no model is calibrated on rows it learned from. Few positives get Platt's
    sigmoid on the log-odds (two parameters) instead of isotonic steps, which fit their noise.

    Calibrating over time instead (trees fitted one horizon earlier, the sigmoid fitted on how their
    scores fared in this split, the window closest to serving) was tried, judged on the runs' inner
    splits (observed / expected engagements, all deciles): the high-churn market's went from 0.71 to
    0.84, the demo's from 0.37 to 0.25 (its engagement rate moves with its seasons, not along a trend,
    so last window's drift does not carry to the next). Serving the earlier trees themselves cut the
    demo's recall@100 from 0.0012 to 0.0007; training on both windows stacked overstated both markets
    more (0.25, 0.60); one sigmoid on pooled out-of-fold scores with a refit on every row, the market
    (0.54): the refit is surer than its folds. Folds of users instead of products (a user active after
    the cut is a positive for several products, and a model that saw them for one can score them high
    for the others of its calibration fold) lowered the top five deciles' Poisson deviance on two of four
    inner splits (demo seeds 42 and 1), raised it on two (seed 2, the market) and cost the two demo seeds
    14-17% of recall@100, so it was not taken either."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    weights = np.ones(labels.size) if weights is None else weights
    fold = np.random.default_rng(seed + 1).integers(0, FOLDS, int(groups.max(initial=0)) + 1)[groups]
    positive = labels.astype(bool)
    if positive.sum() < MIN_POSITIVES or min(np.bincount(fold[positive], minlength=FOLDS).min(),
                                             np.bincount(fold[~positive], minlength=FOLDS).min()) < 1:
        return Ranker(positives=int(positive.sum()), rows=len(labels))
    model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
                                           monotonic_cst=_monotone(features.shape[1]),
                                           min_samples_leaf=40, l2_regularization=1.0, early_stopping=True,
                                           validation_fraction=0.2, n_iter_no_change=10, random_state=seed)
    method = "isotonic" if positive.sum() >= ISOTONIC_POSITIVES else "sigmoid"
    splits = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(FOLDS)]
    calibrated = CalibratedClassifierCV(_Reweighted(model), method=method, cv=splits, ensemble=True)
    with threadpool_limits(THREADS):
        calibrated.fit(features, positive, sample_weight=weights)
    return Ranker(calibrated, positives=int(positive.sum()), rows=len(labels))


class _Reweighted(ClassifierMixin, BaseEstimator):
    """A classifier fitted without weights whose odds are multiplied by the weighted frame's (mean
    positive weight / mean negative weight): the probability a weighted fit estimates, at a fraction of
    its cost (weighted, sklearn bins each feature with one sort per bin edge: 7 of a fit's 8 s)."""

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> _Reweighted:
        positive = labels.astype(bool)
        self.odds_ = 1.0 if sample_weight is None or positive.all() or not positive.any() else float(
            sample_weight[positive].mean() / sample_weight[~positive].mean())
        self.estimator_ = clone(self.estimator).fit(features, labels)
        self.classes_ = self.estimator_.classes_
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """The reweighted log-odds. CalibratedClassifierCV calibrates this when it exists (else the raw
        probability): Platt's sigmoid of a * log-odds + b can keep a score proportional to the odds, while
        a sigmoid of a probability near 1e-5 is nearly flat and squeezes every score to the base rate."""
        return self.estimator_.decision_function(features) + np.log(self.odds_)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        q = 1 / (1 + np.exp(-self.decision_function(features)))
        return np.column_stack([1 - q, q])


def _monotone(n_features: int) -> list[int] | None:
    return [MONOTONE.get(f, 0) for f in FEATURES] if n_features == len(FEATURES) else None


class Propensity(Strategy):
    name = "propensity"
    reuses_evaluation_fits = True

    @classmethod
    def prefetch(cls, events, users, params) -> bool:
        before, after, _ = training_split(events, horizon_days(events, params))
        if not (before.empty or after.empty):  # the training signals' taste, needed first
            prefetch_matrix(before, user_features(before, params), params)
        prefetch_matrix(events, users, params)  # then the serving signals'
        return True

    def fit(self, events, users, catalogue, params) -> Propensity:
        super().fit(events, users, catalogue, params)
        self.ranker = train(events, catalogue, params)
        self.signals = build_signals(events, users, catalogue, params)
        remember_signals(self.signals, events, catalogue, params)
        return self

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        sig = self.signals
        info = product_info(sig, products, self.catalogue)
        parts, bits = [], []
        for start in range(0, len(products), RANK_CHUNK):  # chunks bound the feature matrix's memory
            stop = min(start + RANK_CHUNK, len(products))
            part = info.part(start, stop)
            tied, neighbour, taste = tied_candidates(sig, products[start:stop], part, exclusions.block(start, stop),
                                                     depth)
            scores = self.ranker.predict(pair_features(sig, part, tied.index, tied.rows, neighbour, taste))
            parts.append(Candidates(tied.index + start, tied.rows, scores))
            bits.append(tied.scores.astype(np.int8))
        tied = Candidates(*(np.concatenate([getattr(c, f) for c in parts]) for f in ("index", "rows", "scores")))
        self.tied_bits = np.concatenate(bits)  # the sources of each tied pair, for "why this user"
        self.tied, self.ranked = tied, products  # hook for pipeline/strategies/why.py (which pairs, of what)
        shared = self.shared_lists(info, exclusions, tied, len(products), depth)
        returning = np.lexsort((sig.eng_rank, -sig.comeback))
        yield from assemble(products, exclusions, depth, self.ids, self.eng_rank, tied, shared, filler=returning)

    def shared_lists(self, info: ProductInfo, exclusions: Exclusions, tied: Candidates, n_products: int,
                     depth: int) -> SharedLists:
        """Per group of alike products, its category's attached and returning users scored once, best first."""
        sig = self.signals
        n_codes = len(sig.categories)
        skips = np.bincount(exclusions.index, minlength=n_products) + np.bincount(tied.index, minlength=n_products)
        # Each group takes as many users as its own products may skip, not as many as the most skipped
        # product of its category needs: at 500K rows, 30% fewer pairs to score.
        group_code = np.where(info.group_code >= 0, info.group_code, n_codes)
        group_need = np.full(len(group_code), depth)
        np.maximum.at(group_need, info.group, np.minimum(depth + skips, MAX_SHARED))
        need = np.full(n_codes + 1, depth)
        np.maximum.at(need, group_code, group_need)
        pool_users, starts, bits, ranks = category_pools(sig, n_codes, need)
        length = np.diff(starts)[group_code]
        group = np.repeat(np.arange(len(group_code)), length)
        flat = np.repeat(starts[group_code], length) + np.arange(group.size) - np.repeat(np.cumsum(length) - length,
                                                                                         length)
        taken = ranks[flat] < group_need[group]
        group, flat = group[taken], flat[taken]
        users = pool_users[flat]
        scores = self.ranker.predict(pair_features(sig, info, None, users, np.zeros(users.size),
                                                   np.zeros(users.size), group=group))
        order = np.lexsort((sig.eng_rank[users], -scores, group))
        self.shared_bits = bits[flat][order]
        length = np.bincount(group, minlength=len(group_code))
        return SharedLists(users[order], np.concatenate([[0], np.cumsum(length)]), scores[order], info.group)
