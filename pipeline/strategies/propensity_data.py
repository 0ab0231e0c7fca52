"""What the propensity model knows about (user, product) pairs: signals as of a moment, candidates per
product from every source, and the feature matrix of any set of pairs.

Everything is computed from the events it is given (all before `as_of`), so the same code builds the
training frame (events before the inner cut) and the serving frame (events up to the end of the data).
Product features are bucketed (log2 of users and of days since first and last seen) so that the users a
product shares with its category — its "shared list" — are scored once per (category, buckets) group.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.arrays import best_first, member, run_starts, search, sorted_unique
from pipeline.config import RunParams
from pipeline.data.clean import event_weight
from pipeline.strategies.affinity import (
    INTEREST_EVENTS,
    affinity_score,
    category_shares,
    comeback_rates,
    interaction_matrix,
    item_index,
    neighbour_ties,
)
from pipeline.strategies.als import fit_factors, scoring_pool, top_users
from pipeline.strategies.ranking import Candidates, Exclusions

DAY = np.timedelta64(1, "D")
OWN, NEIGHBOUR, TASTE, CATEGORY, RETURNING = 1, 2, 4, 8, 16  # candidate sources, as bits
SOURCE_NAMES = {OWN: "own", NEIGHBOUR: "neighbours", TASTE: "taste", CATEGORY: "category",
                RETURNING: "returning"}
FEATURES = ("interactions", "unique_products", "days_active", "recency_days", "frequency", "avg_event",
            "last_event", "comeback", "own_weight", "own_age_days", "own_bought", "category_share",
            "neighbour", "taste", "product_users", "product_age", "product_idle", "has_category",
            "category_products", "comeback_x_neighbour", "comeback_x_share", "affinity")
# category_products: how many products a category-loyal user's chance is spread over. Without it the same
# share scored alike in a category of 20 products and of 2,000, so the pool users of the largest categories
# filled the audiences. On the 503,600-row demo (a one-off script), the ~440 users each in over 1,000
# propensity audiences held half of the audience entries and half the expected engagements, and observed
# engagements were 0.29 (inner split) / 0.28 (outer holdout) of those expected; in the top score decile,
# 0.57 / 0.55. With it: 0.91 / 0.63, and 1.20 / 1.11, and the top-100 lists held 85 / 118 later
# engagements instead of 80 / 110. On `pipeline quality` (60K rows, seed 7, 10 market x rule cells),
# recall@100 +3.0% on the inner splits (6 up, 1 down), +3.8% on the outer holdouts.
BUCKET_LIMIT = 12
# Taste candidates per product when a catalogue is given (ordered by taste x comeback, as the neighbours
# by tie x comeback; the category pools already bring each product's attached users). At 100 by taste
# alone, the 503,600-row demo's served audiences (a one-off count) scored 9.1M taste pairs to place 206K
# of them (1% of the entries; their taste ranks spread evenly over 0-99: the ranker picked them for who
# they are, not for the taste), 80% of the ranker's 11.8M predictions. At 30 by taste x comeback: 2.7M pairs, `pipeline
# bench` 114.9 / 123.5 s -> 90.2 / 76.6 s in alternate runs (audiences 64.1 / 69.6 -> 43.9 / 37.7 s), peak
# 2.83 -> 1.89 GB; the 5M bench 560.9 -> 491.1 s, peak 8.00 -> 7.78 GB. On `pipeline quality` (60K rows,
# seed 7; demo, repeat and few-categories have a catalogue, no-catalogue and real do not and are unchanged)
# recall@100 +4.0% on the inner splits (geometric mean of 15 market x rule cells: 6 up, 2 down; the demo
# +23%, +31%, +4%) and +1.3% on the outer holdouts (5 up, 4 down; the demo +3%, +9%, +8%). Ordering by
# taste x comeback without a catalogue repeated the returning list: no-catalogue under `all` -23% inner,
# -15% outer, real -3%; 20 by taste alone: inner +0.2%, outer -1.0%.
TASTE_WIDTH = 30
USER_FEATURES = ("total_interactions", "unique_products", "days_active", "recency_days", "interaction_frequency",
                 "avg_event_score")  # the first six FEATURES, read from the user table


@dataclass
class Signals:
    users: pd.DataFrame          # features of the events' users: the candidates (positions)
    eng_rank: np.ndarray
    comeback: np.ndarray         # learned chance of coming back, per user
    last_event: np.ndarray       # code of the user's last event type
    matrix: sp.csr_matrix        # users x items, weighted and decayed
    items: np.ndarray
    user_factors: np.ndarray     # ALS factors of the pool's users (row i: pool[i])
    item_factors: np.ndarray
    pool: np.ndarray             # users scored densely by taste
    shares: sp.csr_matrix        # users x categories
    share_keys: np.ndarray       # sorted category * n_users + user
    share_values: np.ndarray
    item_codes: np.ndarray       # category code per item (-1 none)
    categories: np.ndarray       # category names by code
    category_products: np.ndarray  # products of each category code in these events
    # Arrays, not a DataFrame: pair_features read the whole table through to_numpy() (a copy of every
    # pair) once per chunk of products, and a pandas Index builds its hash table on first use, which two
    # threads did at once when chunks were tried two at a time (a 5M bench failed: "Reindexing only valid
    # with uniquely valued Index objects"). That trial is recorded in propensity.py (RANK_CHUNK).
    own_keys: np.ndarray         # sorted item * n_users + user of every (user, item) the events hold
    own_values: np.ndarray       # (pairs, 4): weight, age_days, bought, interest
    item_buckets: np.ndarray     # (items, 3): users, age, idle buckets
    item_users: np.ndarray       # distinct users per item


# The signals a fit built to serve, kept for the next training on the same events: a run trains the outer
# fit's ranker on the inner split's early part, whose signals the inner fit has just built (and the
# published fit's on the outer early part). One entry, taken when used.
_served: dict[bytes, Signals] = {}


def forget() -> None:
    """Drop the kept signals (pipeline.strategies.forget_fits)."""
    _served.clear()


def _events_key(events: pd.DataFrame, users: pd.DataFrame, catalogue: pd.DataFrame | None, params: RunParams
                ) -> bytes:
    digest = hashlib.blake2b(digest_size=20)
    for frame in (events, users[["customer_id", "engagement_score"]], catalogue):
        if frame is not None:
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        digest.update(b"|")
    digest.update(repr(sorted(params.to_dict().items())).encode())
    return digest.digest()


def remember_signals(sig: Signals, events: pd.DataFrame, catalogue: pd.DataFrame | None, params: RunParams) -> None:
    _served.clear()
    _served[_events_key(events, sig.users, catalogue, params)] = sig


def recalled_signals(events: pd.DataFrame, users: pd.DataFrame, catalogue: pd.DataFrame | None, params: RunParams
                     ) -> Signals | None:
    """The remembered signals of exactly these events, users, catalogue and params (None: build them)."""
    return _served.pop(_events_key(events, users, catalogue, params), None) if _served else None


def _bucket(values: np.ndarray) -> np.ndarray:
    return np.minimum(np.floor(np.log2(np.maximum(values, 0) + 1)), BUCKET_LIMIT).astype(np.int64)


def build_signals(events: pd.DataFrame, users: pd.DataFrame, catalogue: pd.DataFrame | None,
                  params: RunParams) -> Signals:
    n_users = len(users)
    from pipeline.data.features import engagement_places
    eng_rank = engagement_places(users)
    dates = events["event_date"].to_numpy()
    as_of = dates.max()
    rows = np.searchsorted(users["customer_id"].to_numpy(), events["customer_id"].to_numpy())
    matrix, items = interaction_matrix(events, users, params)
    pool = scoring_pool(users["unique_products"].to_numpy(), eng_rank)
    shares, item_codes, code_names = category_shares(matrix, items, items, catalogue)
    coo = shares.tocoo()
    keys = coo.col.astype(np.int64) * n_users + coo.row
    order = np.argsort(keys)
    names = np.full(shares.shape[1], "", dtype=object)  # category name of each code ("": no category)
    known = item_codes >= 0
    names[item_codes[known]] = code_names[item_codes[known]]
    cols = np.searchsorted(items, events["product_id"].to_numpy())
    weight = event_weight(events, params)
    bought = (events["event"] == "purchased").to_numpy()
    interest = events["event"].isin(INTEREST_EVENTS).to_numpy()
    # Per (item, user) pair: its strongest event, latest date, bought?, interest? One stable integer sort
    # of the pair keys and a maximum along each run (pandas' group-by of the four columns took 5.7 s of a
    # 5M bench's two fits); the keys come out sorted by item as well, for the items' first and last dates.
    pair_keys = cols.astype(np.int64) * n_users + rows
    by_key = np.argsort(pair_keys, kind="stable")
    pair_keys, by_pair = pair_keys[by_key], dates[by_key]
    starts = run_starts(pair_keys)
    own_values = np.column_stack([np.maximum.reduceat(weight[by_key], starts),
                                  (as_of - np.maximum.reduceat(by_pair, starts)) / DAY,
                                  np.logical_or.reduceat(bought[by_key], starts),
                                  np.logical_or.reduceat(interest[by_key], starts)]).astype(float)
    item_users = np.bincount(pair_keys[starts] // n_users, minlength=len(items))
    item_starts = np.searchsorted(pair_keys // n_users, np.arange(len(items)))  # each item has its events
    buckets = np.stack([_bucket(item_users),
                        _bucket((as_of - np.minimum.reduceat(by_pair, item_starts)) / DAY),
                        _bucket((as_of - np.maximum.reduceat(by_pair, item_starts)) / DAY)], axis=1)
    codes = events["event"].cat.codes.to_numpy()
    last = np.lexsort((codes, dates, rows))  # events at the same instant: by code, not by the file's order
    ends = np.flatnonzero(np.r_[rows[last][1:] != rows[last][:-1], True])
    last_event = np.zeros(n_users, dtype=np.int64)
    last_event[rows[last][ends]] = codes[last][ends]
    # Last: a published fit's ALS factors are often still being fitted on the second core (als.prefetch)
    user_factors, item_factors = fit_factors(matrix, params.seed, pool)
    return Signals(users, eng_rank, comeback_rates(events, users, params.holdout or 0.2), last_event,
                   matrix, items, user_factors, item_factors, pool,
                   shares, keys[order], coo.data[order], item_codes, names,
                   np.bincount(item_codes[known], minlength=len(names)),
                   pair_keys[starts], own_values, buckets, item_users)


@dataclass
class ProductInfo:
    column: np.ndarray   # item column per product (-1: unseen)
    code: np.ndarray     # category code (-1: none)
    buckets: np.ndarray  # (P, 3)
    group: np.ndarray    # shared-list group per product
    group_code: np.ndarray     # category code per group
    group_buckets: np.ndarray  # (G, 3)

    def part(self, start: int, stop: int) -> ProductInfo:
        """The same groups, for products start..stop-1 only."""
        return ProductInfo(self.column[start:stop], self.code[start:stop], self.buckets[start:stop],
                           self.group[start:stop], self.group_code, self.group_buckets)


def product_info(sig: Signals, products: np.ndarray, catalogue: pd.DataFrame | None) -> ProductInfo:
    column = item_index(sig.items, products)
    code = np.where(column >= 0, sig.item_codes[np.maximum(column, 0)], -1)
    if catalogue is not None and len(sig.categories):  # a catalogue product the events never saw
        # each product's category as text ("" when the catalogue does not list it), turned to text once
        # per distinct value rather than for the whole catalogue at every call
        lookup = catalogue.drop_duplicates("product_id").set_index("product_id")["category"]
        listed = lookup.index.get_indexer(products)
        first, distinct = pd.factorize(lookup.to_numpy()[listed[listed >= 0]], use_na_sentinel=False)
        text = np.full(len(products), "", dtype=object)
        text[listed >= 0] = pd.Index(distinct, dtype=object).astype(str).to_numpy()[first]
        named = pd.Index(sig.categories).get_indexer(text)
        code = np.where(code >= 0, code, named)
    buckets = np.where(column[:, None] >= 0, sig.item_buckets[np.maximum(column, 0)], -1)
    table = np.column_stack([code, buckets])
    groups, group = np.unique(table, axis=0, return_inverse=True)
    return ProductInfo(column, code, buckets, group.ravel(), groups[:, 0], groups[:, 1:])


def tied_candidates(sig: Signals, products: np.ndarray, info: ProductInfo, exclusions: Exclusions,
                    per_source: int) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """Own interest, item-neighbour and taste candidates (allowed ones only): (pairs with their source
    bits as scores, neighbour score, taste score) per pair."""
    n_users = len(sig.users)
    keys = sig.own_keys
    item, user = keys // n_users, keys % n_users
    product_of_item = np.full(len(sig.items), -1, dtype=np.int64)
    product_of_item[info.column[info.column >= 0]] = np.flatnonzero(info.column >= 0)
    mine = product_of_item[item] >= 0
    own = Candidates(product_of_item[item[mine]], user[mine], np.full(mine.sum(), float(OWN)))
    # Item-kNN: cosine co-occurrence neighbours (100 per product); a user's tie is their share of activity
    # on the product's neighbours x similarity. The strongest ties among likely returners are candidates.
    ties = neighbour_ties(sig.matrix, sig.items, products).tocoo()
    near = _top_each(Candidates(ties.col.astype(np.int64), ties.row.astype(np.int64),
                                ties.data * sig.comeback[ties.row]), per_source)
    near.scores = near.scores / np.maximum(sig.comeback[near.rows], 1e-12)  # the feature: the tie itself
    # Taste only for products at least two users shaped: one user's product vector is just that user.
    shaped = (info.column >= 0) & (sig.item_users[np.maximum(info.column, 0)] >= 2)
    vectors = np.where(shaped[:, None], sig.item_factors[np.maximum(info.column, 0)], 0)
    # With a catalogue, the TASTE_WIDTH strongest tastes among likely returners (why: at TASTE_WIDTH);
    # without one, taste and neighbours are the only personal sources: by taste alone, `per_source` deep.
    listed = len(sig.categories) > 0
    scale = sig.comeback if listed else np.ones(n_users)  # per user; the feature stays the taste itself
    taste = top_users(vectors.astype(np.float32), sig.user_factors * scale[sig.pool, None].astype(np.float32),
                      sig.pool, np.full(len(products), min(per_source, TASTE_WIDTH) if listed else per_source))
    taste.scores = taste.scores / np.maximum(scale[taste.rows], 1e-12)
    parts = [(own, OWN), (near, NEIGHBOUR), (taste, TASTE)]
    all_keys = np.concatenate([c.index * n_users + c.rows for c, _ in parts])
    pair_keys = sorted_unique(all_keys)
    pair_keys = pair_keys[~member(pair_keys, exclusions.keys)]
    bits = np.zeros(pair_keys.size, dtype=np.int64)
    values = []
    for part, bit in parts:  # three sources, not a loop over pairs
        k = part.index * n_users + part.rows
        at = np.minimum(search(pair_keys, k), max(pair_keys.size - 1, 0))
        hit = member(k, pair_keys)
        bits[at[hit]] |= bit
        value = np.zeros(pair_keys.size)
        value[at[hit]] = part.scores[hit]
        values.append(value)
    return (Candidates(pair_keys // n_users, pair_keys % n_users, bits.astype(float)), values[1], values[2])


def _top_each(found: Candidates, width: int) -> Candidates:
    """The best `width` candidates of each product."""
    order = np.lexsort((-found.scores, found.index))
    index = found.index[order]
    rank = np.arange(index.size) - np.searchsorted(index, index)
    keep = order[rank < width]
    return Candidates(found.index[keep], found.rows[keep], found.scores[keep])


# A third list per pool, `activity`'s order (the users busiest right now, whom the comeback cells tie-broken
# by engagement put at places 200-1800), was tried: on another seed's no-catalogue market under `all` (8,
# 500K rows) its inner split went from 58 to 84 hits (`activity` 85), but on `pipeline quality`'s 15 inner
# cells (500K rows, seed 7) recall@100 moved by a geometric mean of -0.8% (5 up, 5 down; no-catalogue under
# `all` 0.0009 -> 0.0008) and on the outer holdouts +2.9% (7 up, 6 down), so it was not taken.
def category_pools(sig: Signals, n_codes: int, need: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per category code (and a last pool for "no category"): its most attached users (share x comeback)
    and the users most likely to come back, `need[c]` of each, deduplicated. Returns (users, starts, bits,
    rank): a user's rank is their better place in the two lists, so the top n < need[c] of each are the
    pool's users of rank < n."""
    n_users = len(sig.users)
    returning = np.lexsort((sig.eng_rank, -sig.comeback))
    code = sig.share_keys // n_users
    user = sig.share_keys % n_users
    base = sig.comeback[user] * sig.share_values
    order = best_first(code, base, sig.eng_rank[user])
    code, user = code[order], user[order]
    rank = np.arange(code.size) - np.searchsorted(code, code)
    owner = np.repeat(np.arange(n_codes + 1), need)
    back_rank = np.arange(owner.size) - np.repeat(np.cumsum(need) - need, need)
    back = returning[np.minimum(back_rank, n_users - 1)]
    keep = rank < need[np.minimum(code, n_codes)]
    owners = np.concatenate([code[keep], owner])
    pool = np.concatenate([user[keep], back])
    bits = np.concatenate([np.full(keep.sum(), CATEGORY), np.full(owner.size, RETURNING)])
    ranks = np.concatenate([rank[keep], back_rank])
    keys = owners * n_users + pool
    order = np.lexsort((bits, keys))
    first = np.r_[True, keys[order][1:] != keys[order][:-1]]
    sel = order[first]
    best = np.minimum.reduceat(ranks[order], np.flatnonzero(first)) if order.size else ranks[sel]
    starts = np.searchsorted(owners[sel], np.arange(n_codes + 2))
    return pool[sel], starts, bits[sel], best


def pair_features(sig: Signals, info: ProductInfo, product: np.ndarray, user: np.ndarray, neighbour: np.ndarray,
                  taste: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """(pairs, len(FEATURES)) float32. `group` (instead of product) describes the product by its group."""
    n_users = len(sig.users)
    code = info.group_code[group] if group is not None else info.code[product]
    buckets = info.group_buckets[group] if group is not None else info.buckets[product]
    column = info.column[product] if group is None else np.full(len(user), -1)
    own_key = np.where(column >= 0, column * n_users + user, -1)
    at = np.minimum(search(sig.own_keys, own_key), max(sig.own_keys.size - 1, 0))
    has_own = (own_key >= 0) & (sig.own_keys[at] == own_key) if sig.own_keys.size else np.zeros(len(user), bool)
    own = sig.own_values[at] if sig.own_keys.size else np.zeros((len(user), 4))
    interest = np.where(has_own, own[:, 3] * (1 - own[:, 2]), 0.0)  # carted or wishlisted, never bought
    share_key = np.where(code >= 0, code * n_users + user, -1)
    at = np.minimum(search(sig.share_keys, share_key), max(sig.share_keys.size - 1, 0))
    share = (np.where((share_key >= 0) & (sig.share_keys[at] == share_key), sig.share_values[at], 0.0)
             if sig.share_keys.size else np.zeros(len(user)))
    columns = [*(sig.users[name].to_numpy()[user] for name in USER_FEATURES), sig.last_event[user], sig.comeback[user],
               np.where(has_own, own[:, 0], 0.0), np.where(has_own, own[:, 1], -1.0),
               np.where(has_own, own[:, 2], 0.0), share, neighbour, taste,
               buckets[:, 0], buckets[:, 1], buckets[:, 2], (code >= 0).astype(float),
               # a category-loyal user's chance is spread over its products (why: at FEATURES)
               np.append(sig.category_products, 0)[code],  # code -1 (no category): the appended 0
               # "likely to come back" x "tied to this product": products trees find slowly from few positives
               sig.comeback[user] * neighbour, sig.comeback[user] * share,
               # affinity's own score: its hand-set formula as one feature both model families can start from
               affinity_score(sig.comeback[user], share, neighbour, interest)]
    out = np.empty((len(columns), len(user)), np.float32)  # filled feature by feature, handed over as (pairs, features)
    for i, column in enumerate(columns):  # 22 features, not pairs
        out[i] = column
    return out.T
