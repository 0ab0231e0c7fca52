"""The `affinity` strategy: users likely to come back, ranked by how strongly they are tied to the product.

score(u, p) = comeback(u) * (FLOOR + W_CATEGORY * category_share(u, category of p)
                             + W_NEIGHBOURS * neighbours(u, p) + W_OWN * own_interest(u, p))

* comeback(u): the share of users with u's profile (interactions, one day or several, how recent) who
  came back, learned on the fitting data's own past (split once more at the same quantile).
* category_share: the user's decayed, weighted activity in the category / (all of it + a prior).
* neighbours: item-to-item co-occurrence. Products are neighbours when the same users touched both;
  similarity is cosine on the user sets, and a user's tie to p is the share of their (weighted,
  decayed) activity on p's neighbours, times the similarity.
* own_interest: 1 when the user carted or wishlisted p and never bought it (only present when the
  exclusion rule lets such users into p's audience).

Every user has the FLOOR term, so users with no tie follow in comeback then engagement order and every
audience is full. The exact top `depth` is found without scoring all (product, user) pairs: a user with
no sparse tie to p scores comeback * (FLOOR + W_CATEGORY * share in p's category), which is one shared
order per category. So the winners are among three lists that share nobody: the users tied to p (full
score), the best `depth` other users of p's category, and the best `depth` users with no activity in
it (comeback * FLOOR); the lists skip p's excluded and tied users, and one sort per block merges them.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.arrays import best_first, member, search
from pipeline.config import RunParams
from pipeline.data.clean import event_weight
from pipeline.data.features import engagement_places
from pipeline.strategies.base import Strategy
from pipeline.strategies.lists import UserLists, list_candidates, merge_disjoint, top_per_row
from pipeline.strategies.ranking import AudienceBlock, Exclusions, product_blocks

FLOOR = 0.05          # weight of "no tie at all": keeps the comeback order among strangers
W_CATEGORY = 1.0
# Tuned on a generated market with another seed than the demo's: neighbour ties at 1-3 change recall by
# no more than noise, and at 3 they double the users reached (coverage) compared with 1.
W_NEIGHBOURS = 3.0
W_OWN = 1.0
CATEGORY_PRIOR = 3.0  # event-weight units of "no preference": one cart is a weak hint, five are a taste
NEIGHBOURS = 100      # most similar products kept per product (bounds the work on very popular ones)
INTEREST_EVENTS = ("cart", "wishlist")
RECENCY_BUCKETS_DAYS = (7, 30)
SMOOTHING = 20.0      # pseudo-users at the overall comeback rate in each profile cell


def affinity_score(comeback, share, neighbours=0.0, own=0.0):
    """The module docstring's score from its parts (numbers or arrays): the one place its weights apply."""
    return comeback * (FLOOR + W_CATEGORY * share + W_NEIGHBOURS * neighbours + W_OWN * own)


# --- signals ---------------------------------------------------------------------------------------------

def interaction_matrix(events: pd.DataFrame, users: pd.DataFrame, params: RunParams
                       ) -> tuple[sp.csr_matrix, np.ndarray]:
    """Users x products, each event counted with its weight and faded by age: (matrix, product ids)."""
    dates = events["event_date"].to_numpy()
    age_days = (dates.max() - dates) / np.timedelta64(1, "D")
    weight = event_weight(events, params) * np.exp(-age_days / params.decay_days)
    rows = np.searchsorted(users["customer_id"].to_numpy(), events["customer_id"].to_numpy())
    items, cols = np.unique(events["product_id"].to_numpy(), return_inverse=True)
    matrix = sp.csr_matrix((weight, (rows, cols)), shape=(len(users), len(items)))
    matrix.sum_duplicates()
    return matrix, items


def item_index(items: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Column of each product in the sorted `items`, -1 for a product the events never mention."""
    if len(items) == 0:
        return np.full(len(products), -1)
    at = np.minimum(np.searchsorted(items, products), len(items) - 1)
    return np.where(items[at] == products, at, -1)


def _profile(total: np.ndarray, days_active: np.ndarray, recency_days: np.ndarray) -> np.ndarray:
    recency = np.searchsorted(np.asarray(RECENCY_BUCKETS_DAYS), recency_days, side="left")
    return (np.minimum(total, 5) * 2 + (days_active > 1)) * (len(RECENCY_BUCKETS_DAYS) + 1) + recency


def comeback_rates(events: pd.DataFrame, users: pd.DataFrame, holdout: float) -> np.ndarray:
    """Per user, the smoothed share of users with the same profile who came back after an earlier split
    of these same events. Learned only from the events given, so an evaluation stays honest."""
    dates = events["event_date"].to_numpy()
    split = np.quantile(dates.astype("int64"), 1 - holdout).astype("datetime64[ns]")
    past = dates < split
    if not past.any() or past.all():
        return np.ones(len(users))
    frame = pd.DataFrame({"c": events["customer_id"].to_numpy()[past], "t": dates[past]})
    grouped = frame.groupby("c")["t"]
    first, last, total = grouped.min(), grouped.max(), grouped.size()
    day = np.timedelta64(1, "D")
    cells = _profile(total.to_numpy(), (last - first).to_numpy() // day + 1,
                     (dates[past].max() - last.to_numpy()) // day)
    came_back = np.isin(total.index.to_numpy(), events["customer_id"].to_numpy()[~past])
    overall = came_back.mean()
    n_cells = int(cells.max()) + 1
    rate = ((np.bincount(cells, weights=came_back, minlength=n_cells) + SMOOTHING * overall)
            / (np.bincount(cells, minlength=n_cells) + SMOOTHING))
    now = _profile(users["total_interactions"].to_numpy(), users["days_active"].to_numpy(),
                   users["recency_days"].to_numpy())
    return np.where(now < n_cells, rate[np.minimum(now, n_cells - 1)], overall)


def neighbour_ties(matrix: sp.csr_matrix, items: np.ndarray, products: np.ndarray) -> sp.csc_matrix:
    """Users x products: a user's share of activity on each product's neighbours, times similarity."""
    # Built from the matrix's own arrays, not by scipy's copy, sums and diagonal product: on the 5M market's
    # matrix those took 0.39 s of every call (propensity calls this once per chunk of products), these
    # 0.19 s (a one-off timing), with bitwise the same values (row sums by the reduceat scipy uses).
    per_user = np.diff(matrix.indptr)
    touched = sp.csr_matrix((np.ones(matrix.nnz), matrix.indices, matrix.indptr), shape=matrix.shape)
    users_per_item = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(float)
    present = np.flatnonzero(item_index(items, products) >= 0)  # a product never seen has no neighbours
    cols = item_index(items, products[present])
    co = (touched.T @ touched[:, cols]).tocoo()  # items x seen products: users who touched both
    keep = items[co.row] != products[present[co.col]]
    row, col = co.row[keep], co.col[keep]
    sim = co.data[keep] / np.sqrt(users_per_item[row] * users_per_item[cols[col]])
    order = np.lexsort((row, -sim, col))  # per product, most similar first
    row, col, sim = row[order], col[order], sim[order]
    first = np.searchsorted(col, col, side="left")
    top = np.arange(col.size) - first < NEIGHBOURS
    similarity = sp.csc_matrix((sim[top], (row[top], present[col[top]])), shape=(len(items), len(products)))
    totals = np.zeros(matrix.shape[0])
    filled = np.flatnonzero(per_user > 0)
    totals[filled] = np.add.reduceat(matrix.data, matrix.indptr[filled]) if filled.size else 0.0
    user_of_entry = np.repeat(np.arange(matrix.shape[0]), per_user)
    share = sp.csr_matrix((matrix.data * (1.0 / np.maximum(totals, 1e-12))[user_of_entry], matrix.indices,
                           matrix.indptr), shape=matrix.shape)
    return (share @ similarity).tocsc()


def own_interest(events: pd.DataFrame, users: pd.DataFrame, products: np.ndarray, rule: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(product index, user position) of carts/wishlists never followed by a purchase, when allowed."""
    if rule == "all":  # such users are excluded from the product anyway
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids = users["customer_id"].to_numpy()
    event = events["event"].astype(str).to_numpy()
    pair = events["customer_id"].to_numpy(), events["product_id"].to_numpy()
    keys = pd.MultiIndex.from_arrays(pair)
    bought = keys[event == "purchased"].unique()
    interest = keys[np.isin(event, INTEREST_EVENTS)].unique()
    interest = interest[~interest.isin(bought)]
    customer = interest.get_level_values(0).to_numpy()
    product = interest.get_level_values(1).to_numpy()
    index = np.searchsorted(products, product)
    ok = (index < len(products)) & (products[np.minimum(index, len(products) - 1)] == product)
    return index[ok], np.searchsorted(ids, customer[ok])


def category_shares(matrix: sp.csr_matrix, items: np.ndarray, products: np.ndarray,
                    catalogue: pd.DataFrame | None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """(users x categories share of weighted activity, category code per product (-1 = none), the name
    of each code ("unknown" for the codes of products without a category))."""
    if catalogue is None or catalogue.empty:
        return sp.csr_matrix((matrix.shape[0], 0)), np.full(len(products), -1), np.zeros(0, dtype=object)
    lookup = catalogue.drop_duplicates("product_id").set_index("product_id")["category"]
    values = lookup.reindex(np.concatenate([items, products])).fillna("unknown").to_numpy()
    # Codes by first appearance of each name as text. Factorizing the values first and turning only the
    # distinct ones into text (refactorized: 5 and "5" are one name) spares a str() of every item and
    # product: 7 calls x ~1 s of the 5M bench. The same codes as factorizing the text of every value.
    first, distinct = pd.factorize(values)
    merged, uniques = pd.factorize(pd.Index(distinct).astype(str).to_numpy())
    codes = merged[first]
    codes = np.where(uniques[codes] == "unknown", -1, codes)
    item_codes, product_codes = codes[:len(items)], codes[len(items):]
    known = item_codes >= 0
    to_category = sp.csr_matrix((np.ones(known.sum()), (np.flatnonzero(known), item_codes[known])),
                                shape=(len(items), len(uniques)))
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    shares = sp.diags(1.0 / (totals + CATEGORY_PRIOR)) @ (matrix @ to_category)
    return shares.tocsr(), product_codes, uniques


# --- ranking ---------------------------------------------------------------------------------------------

def category_lists(shares: sp.csr_matrix, comeback: np.ndarray, eng_rank: np.ndarray
                   ) -> tuple[UserLists, np.ndarray]:
    """Per category, its users (share > 0) best first: base = comeback * (FLOOR + W_CATEGORY * share),
    ties in engagement order. Returns the lists and each entry's base score."""
    coo = shares.tocoo()
    base = affinity_score(comeback[coo.row], coo.data)
    order = best_first(coo.col, base, eng_rank[coo.row])
    starts = np.searchsorted(coo.col[order], np.arange(shares.shape[1] + 1))
    return UserLists(coo.row[order].astype(np.int64), starts), base[order]


def stranger_lists(order: np.ndarray, category_keys: np.ndarray, n_categories: int, need: int) -> UserLists:
    """List c (< n_categories): the first `need` users of `order` with no activity in category c; the
    last list: the first `need` of `order` (for products without a category). Strangers of a category
    are kept apart from its own users so each (product, user) is listed once."""
    n_users = len(order)
    length = min(n_users, need)
    while True:  # rounds of doubling, only while some category's users crowd the head of the order
        head = order[:length]
        inside = member(np.arange(n_categories)[:, None] * n_users + head[None, :], category_keys)
        if length == n_users or (~inside).sum(axis=1).min(initial=need) >= need:
            break
        length = min(n_users, 2 * length)
    keep = ~inside & (np.cumsum(~inside, axis=1) <= need)
    users = np.concatenate([np.broadcast_to(head, inside.shape)[keep], head[:need]])
    sizes = np.concatenate([keep.sum(axis=1), [min(need, length)]])
    return UserLists(users, np.concatenate([[0], np.cumsum(sizes)]))


def sparse_candidates(ties: sp.csc_matrix, excluded_keys: np.ndarray, n_users: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(product index, user position, tie) of every allowed sparse tie."""
    coo = ties.tocoo()
    product, user = coo.col.astype(np.int64), coo.row.astype(np.int64)
    allowed = ~member(product * n_users + user, excluded_keys)
    return product[allowed], user[allowed], coo.data[allowed]


class _Scorer:
    """Final scores of any (product, user) pair from the dense-free pieces."""

    def __init__(self, shares: sp.csr_matrix, product_codes: np.ndarray, comeback: np.ndarray):
        coo = shares.tocoo()
        self.n_users = shares.shape[0]
        keys = coo.col.astype(np.int64) * self.n_users + coo.row
        order = np.argsort(keys)
        self.keys, self.values = keys[order], coo.data[order]
        self.product_codes, self.comeback = product_codes, comeback

    def base(self, product: np.ndarray, user: np.ndarray) -> np.ndarray:
        code = self.product_codes[product]
        keys = np.where(code >= 0, code * self.n_users + user, -1)
        share = np.zeros(keys.shape)
        if self.keys.size:
            at = np.minimum(search(self.keys, keys), self.keys.size - 1)
            share = np.where((keys >= 0) & (self.keys[at] == keys), self.values[at], 0.0)
        return affinity_score(self.comeback[user], share)


class Affinity(Strategy):
    """comeback x (category share, neighbour ties, own interest): see the module docstring."""
    name = "affinity"

    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        yield from affinity_audiences(self.events, self.users, self.params, products, self.catalogue,
                                      exclusions, depth)


def affinity_audiences(events: pd.DataFrame, users: pd.DataFrame, params: RunParams, products: np.ndarray,
                       catalogue: pd.DataFrame | None, exclusions: Exclusions, depth: int
                       ) -> Iterator[AudienceBlock]:
    n_users = len(users)
    ids = users["customer_id"].to_numpy()
    eng_rank = engagement_places(users)
    comeback = comeback_rates(events, users, params.holdout or 0.2)
    matrix, items = interaction_matrix(events, users, params)
    ties = W_NEIGHBOURS * neighbour_ties(matrix, items, products)
    own_index, own_rows = own_interest(events, users, products, params.exclude)
    if own_index.size:
        ties = (ties + sp.csc_matrix((np.full(own_index.size, W_OWN), (own_rows, own_index)),
                                     shape=ties.shape)).tocsc()
    shares, product_codes, _ = category_shares(matrix, items, products, catalogue)
    scorer = _Scorer(shares, product_codes, comeback)
    pair_index, pair_rows = exclusions.index, exclusions.rows
    tie_product, tie_user, tie_value = sparse_candidates(ties, exclusions.keys, n_users)
    # The lists leave out each product's tied users as well as its excluded ones: a tied user is
    # ranked with their full score from the ties, so every (product, user) is a candidate once.
    skip_index = np.concatenate([pair_index, tie_product])
    skip_rows = np.concatenate([pair_rows, tie_user])
    # Sorted by product once, so each block takes its slice; a mask per block scanned every pair once per
    # block (at 5M rows, ~200 blocks of 10K products). Order within a product does not change any list.
    by_product = np.argsort(skip_index, kind="stable")
    skip_index, skip_rows = skip_index[by_product], skip_rows[by_product]
    by_product = np.argsort(tie_product, kind="stable")
    tie_product, tie_user, tie_value = tie_product[by_product], tie_user[by_product], tie_value[by_product]
    n_categories = shares.shape[1]
    categories, category_scores = category_lists(shares, comeback, eng_rank)
    category_keys = categories.key_positions(n_users)
    most_skipped = np.bincount(skip_index, minlength=len(products)).max(initial=0)
    strangers = stranger_lists(np.lexsort((eng_rank, -comeback)), category_keys[0], n_categories,
                               depth + int(most_skipped))
    stranger_keys = strangers.key_positions(n_users)
    stranger_list = np.where(product_codes >= 0, product_codes, n_categories)

    def block(start: int, stop: int) -> AudienceBlock:
        index = np.arange(start, stop)
        lo, hi = np.searchsorted(skip_index, [start, stop])
        local_skips = skip_index[lo:hi] - start, skip_rows[lo:hi]
        positions, valid = list_candidates(strangers, stranger_keys, stranger_list[index], *local_skips,
                                           depth, n_users)
        columns = [positions]
        scores = [np.where(valid, comeback[positions] * FLOOR, -np.inf)]
        if n_categories:
            positions, valid, at = list_candidates(categories, category_keys, product_codes[index],
                                                   *local_skips, depth, n_users, with_index=True)
            columns.append(positions)
            scores.append(np.where(valid, category_scores[at], -np.inf))
        lo, hi = np.searchsorted(tie_product, [start, stop])
        product, user = tie_product[lo:hi], tie_user[lo:hi]
        final = scorer.base(product, user) + comeback[user] * tie_value[lo:hi]
        positions, tie_scores = top_per_row(product - start, user, final, eng_rank, len(index), depth)
        columns.append(positions)
        scores.append(tie_scores)
        positions, block_scores, sizes = merge_disjoint(columns, scores, eng_rank, n_users, depth)
        return AudienceBlock(products[index], sizes, positions, block_scores, ids)

    yield from product_blocks(len(products), block)
