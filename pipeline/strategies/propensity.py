"""The `propensity` strategy: candidates from every source, ranked by a learned, calibrated model.

Stage 1, candidates per product (propensity_data): the user's own earlier events on it (when the
exclusion rule lets them in), item-kNN neighbours (implicit BM25), ALS taste (implicit), and a shared
list per category of its most attached users plus the users most likely to come back.

Stage 2, a ranker (propensity_model): two calibrated scikit-learn models, stacked, of the pair's ties,
the user's chance of coming back and the product's popularity and age (its level only), gradient-boosted
trees and a logistic regression on the features and their logs, trained on an inner
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
ranked once per group of products with the same category and (bucketed) popularity and age, since the
model sees such products identically, and each category's users are scored once for all its groups:
a product's level adds the same log-odds to each of them (Ranker.predict_at_levels).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from pipeline.arrays import best_first, member, sorted_unique
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
from pipeline.strategies.propensity_model import Ranker, fit_ranker
from pipeline.strategies.ranking import AudienceBlock, Candidates, Exclusions, SharedLists, assemble, exclusions_for

# Products of the inner split in the training frame (all their candidates each): every one up to this
# bound. Engaged pairs are what the model and its calibration learn from, and they are few (the demo's
# inner split: 23 among 8000 sampled products, 74 among all 21K), so no product is left out to save time.
# Beyond the bound, more products did not pay: with no bound, the 5M bench's two fits took 193,826 and
# 211,677 products and learned from 105 and 139 engaged pairs instead of 26 and 41, yet propensity's
# recall@100 moved by noise (outer 0.00021 -> 0.00028, inner 0.00018 -> 0.00016; affinity's 0.00035 and
# 0.00026) while the run's peak rose from 7.38 to 9.80 GB (over the 8 GB target) and propensity took
# 482 s instead of 267 s (that run shared the machine with a quality run).
TRAIN_PRODUCTS = 50_000
# Engaged pairs are rare (well under 1%): every positive is kept, negatives at a rate that keeps about
# this many of them, with weight 1 / rate, so the weighted frame stands for all candidates and the
# calibration stays a probability. The frame's size (and the fit's time) no longer grows with products.
# 100K, with two folds (propensity_model.FOLDS), rather than 200K and three: the 500K demo's serving fit
# took 0.64 s instead of 2.4 s and its trees 47 instead of 97 (the tree count follows early stopping
# on a handful of engaged pairs more than anything), and `pipeline bench` at 500K went from 57.4 s to
# 49.5 s. Recall@100 moved by noise on `pipeline quality`'s 15 market x rule cells (geometric means):
# 500K rows, seed 7: inner splits -1.3% (7 up, 5 down), outer holdouts +0.3% (3 up, 8 down); 150K rows,
# seed 11, side by side: inner +0.1% (8 up, 6 down), outer -1.8% (5 up, 7 down). Under `all` the
# few-categories market's inner split now chooses affinity at 500K (propensity 0.0023 against 0.0026).
TRAIN_NEGATIVES = 100_000
TRAIN_WIDTH = 100         # candidates per source and product in the training frame (bounds its memory)
# Products whose candidates are featurized and scored at once. Scoring two chunks of 10K at a time (the
# trees' predict and implicit's top-k taking turns under a lock, as they use both cores themselves) was
# tried: interleaved 500K benches 55.2/55.7 s -> 53.1/52.8 s, but the 5M bench's peak rose to 8.24 GB,
# over the 8 GB target (7.90 GB one chunk at a time), for 527.5 s (530.9 s earlier that day, one chunk at
# a time and before neighbour_ties read the matrix's arrays), so it was not taken.
RANK_CHUNK = 20_000
MAX_SHARED = 5000         # longest shared list scored per group


def horizon_days(events: pd.DataFrame, params: RunParams) -> float:
    """The window the model predicts: the run's holdout window length (set by the run), else the span
    of the last `holdout` share of these events."""
    if params.horizon_days:
        return float(params.horizon_days)
    dates = events["event_date"].to_numpy()
    split = np.quantile(dates.astype("int64"), 1 - (params.holdout or 0.2)).astype("datetime64[ns]")
    return max((dates.max() - split) / np.timedelta64(1, "D"), 1.0)


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
    not taken.

    The category pools 100 deep, as the tied lists. 1000 deep (the pool's negatives drawn by position, not
    listed) gave the 5M demo's two fits 178 and 187 engaged pairs instead of 26 and 41, but the sigmoid,
    fitted mostly on the deep pools' low scores, understated the top five deciles on the holdout 1.6-2.2x
    there and 1.3-2.3x on the 503,600-row demo (where the shallow pools' were 0.55-1.09), and recall@100
    moved both ways (5M outer 0.00021 -> 0.00026, inner 0.00018 -> 0.00015; that demo's outer 0.00218 ->
    0.00180, inner 0.00173 -> 0.00188; `pipeline quality` at 60K, seed 7: inner +2.9%, outer 0.0%), so
    it was not taken either."""
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
    return fit_ranker(features, labels, product, params.seed, weights, names=FEATURES)


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

    def learned_from(self) -> tuple[int, int, int]:
        return self.ranker.positives, self.ranker.rows, len(self.ranker.members)

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
        # A pool's users are described once, at its category's first group's level; every group of the
        # category reads them at its own level (Ranker.predict_at_levels). The 500K demo's serving run: 1.15M
        # pairs in 3,138 groups' lists from 17,412 described users; the shared lists took 0.9 s instead of
        # 4.5 s of its profile (py-spy), with the same audiences.
        first = np.full(n_codes + 1, -1)
        first[group_code[::-1]] = np.arange(len(group_code))[::-1]
        pool_code = np.repeat(np.arange(n_codes + 1), np.diff(starts))
        described = first[pool_code] >= 0
        row_of = np.cumsum(described) - 1
        n_described = int(described.sum())
        rows = pair_features(sig, info, None, pool_users[described], np.zeros(n_described), np.zeros(n_described),
                             group=first[pool_code[described]])
        levels = pair_features(sig, info, None, np.zeros(len(group_code), np.int64), np.zeros(len(group_code)),
                               np.zeros(len(group_code)), group=np.arange(len(group_code)))
        scores = self.ranker.predict_at_levels(rows, levels, row_of[flat], group)
        order = best_first(group, scores, sig.eng_rank[users])
        self.shared_bits = bits[flat][order]
        length = np.bincount(group, minlength=len(group_code))
        return SharedLists(users[order], np.concatenate([[0], np.cumsum(length)]), scores[order], info.group)
