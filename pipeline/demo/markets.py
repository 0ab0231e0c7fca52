"""A second, independent market simulator: the demo generator (generate.py) is not the world.

Strategies tuned on one simulator can learn that simulator's quirks. This one is built differently on
purpose, so a quality claim measured on both means more than one measured on either:

* **latent tastes**: every user draws a taste over the categories from a Dirichlet (a low concentration
  gives one or two favourite categories, softly, not a hard list) and every user and product a latent
  vector; inside a category the product is chosen by popularity *and* by how well the two vectors match
  (Gumbel-max over a few popularity-drawn candidates), so "who buys what" has a low-rank structure;
* **a returning-user process**: a share of users are returners whose visits follow a Poisson process with
  their own rate (Gamma-distributed mean gap); everyone else visits once. Visits past the period are lost;
* **repeat buying**: on a return visit an event re-buys, with the market's repeat rate, a product the
  user had in an earlier visit (mostly as a purchase), as in grocery;
* **catalogue turnover**: products launch at any time (some before the period) and live for an
  exponential lifetime; a product that is not on sale is not chosen.

It writes the same files as the generator (DESIGN.md "The data it takes"): ``interactions.csv``
(``customer_id,product_id,event,event_date``) and, unless the catalogue is off, ``products.csv``
(``product_id,category``, every catalogue product, touched or not). No dirt: cleaning is not what it tests.
Everything is vectorized; the only loop runs over blocks of events, so memory stays flat at any size.
The same rows, seed and settings give the same bytes.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

PERIOD_START = np.datetime64("2024-01-01T00:00:00", "s")
EVENTS = np.array(["cart", "purchased", "wishlist", "search_keyword", "rating"], dtype=object)
FRESH_MIX = (0.55, 0.33, 0.07, 0.03, 0.02)   # a first touch: mostly carts, as in the reference export
REPEAT_MIX = (0.2, 0.8, 0.0, 0.0, 0.0)      # a re-buy: mostly a purchase
LATENT_DIM = 8
CANDIDATES = 16          # popularity-drawn candidates per event, among which taste decides
BLOCK = 250_000          # events chosen per block (bounded memory: BLOCK x CANDIDATES x LATENT_DIM)
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Market:
    """The settings of one simulated market (each preset below changes a few)."""
    n_categories: int = 20
    catalogue: bool = True           # write products.csv
    returning_share: float = 0.12    # users who come back on other days (the rest visit once)
    extra_visits_mean: float = 2.5   # a returner's visits after the first (geometric mean)
    return_gap_days: float = 30.0    # a returner's mean gap between visits (each returner has their own)
    repeat_rate: float = 0.15        # on a return visit: chance an event re-buys an earlier product
    events_per_visit: float = 1.15   # mean events in one visit (1 + Poisson)
    taste_concentration: float = 0.3 # Dirichlet alpha per category: low = a few favourite categories
    taste_strength: float = 2.0      # weight of the latent match against popularity inside a category
    products_per_row: float = 0.35
    popularity_sigma: float = 1.3    # log-normal product popularity
    lifetime_days: float = 120.0     # mean product lifetime
    days: int = 180

    def validate(self) -> Market:
        if self.n_categories < 1:
            raise ValueError(f"n_categories must be at least 1, got {self.n_categories}")
        for name in ("returning_share", "repeat_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.extra_visits_mean < 1 or self.events_per_visit < 1 or self.days < 1:
            raise ValueError("extra_visits_mean and events_per_visit must be >= 1, days >= 1")
        return self


PRESETS: dict[str, Market] = {
    "market": Market(),                                    # high churn: ~9 in 10 users come once
    "repeat": Market(returning_share=0.45, repeat_rate=0.6, extra_visits_mean=4.0),
    "few-categories": Market(n_categories=4),
    "no-catalogue": Market(catalogue=False),
}


@dataclass
class Catalogue:
    category: np.ndarray     # (P,) category index
    popularity: np.ndarray   # (P,) relative popularity
    vectors: np.ndarray      # (P, LATENT_DIM)
    launch: np.ndarray       # (P,) day the product goes on sale (may be before the period)
    end: np.ndarray          # (P,) day it leaves
    by_category: np.ndarray  # product indexes sorted by category
    cum_popularity: np.ndarray  # cumulative popularity along by_category
    category_start: np.ndarray  # (C,) cumulative popularity before each category's block
    category_total: np.ndarray  # (C,) popularity of each category


def _catalogue(rng: np.random.Generator, n_products: int, m: Market) -> Catalogue:
    # Zipf-like category sizes; every category gets at least one product, so n_categories is exact.
    weights = 1.0 / np.arange(1, m.n_categories + 1) ** 0.8
    category = np.concatenate([np.arange(m.n_categories),
                               rng.choice(m.n_categories, size=n_products - m.n_categories, p=weights / weights.sum())])
    popularity = rng.lognormal(0.0, m.popularity_sigma, size=n_products)
    vectors = rng.standard_normal((n_products, LATENT_DIM))
    launch = rng.uniform(-m.days, m.days, size=n_products)
    end = launch + rng.exponential(m.lifetime_days, size=n_products)
    order = np.argsort(category, kind="stable")
    cum = np.cumsum(popularity[order])
    total = np.bincount(category, weights=popularity, minlength=m.n_categories)
    start = np.concatenate([[0.0], np.cumsum(total)[:-1]])
    return Catalogue(category, popularity, vectors, launch, end, order, cum, start, total)


def _group_offsets(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes laid end to end: each element's group and its position in it."""
    group = np.repeat(np.arange(sizes.size), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return group, np.arange(group.size) - first[group]


def _group_cumsum(values: np.ndarray, group: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Running sum of values inside each contiguous group (position 0 starts a group)."""
    total = np.cumsum(values)
    at_start = (total - values)[position == 0]
    return total - at_start[group]


def _visits(rng: np.random.Generator, n_users: int, m: Market) -> tuple[np.ndarray, np.ndarray]:
    """(user, day) of every visit inside the period, sorted by user then time."""
    returner = rng.random(n_users) < m.returning_share
    extra = np.where(returner, rng.geometric(1.0 / m.extra_visits_mean, size=n_users), 0)
    arrival = rng.uniform(0, m.days, size=n_users)
    mean_gap = rng.gamma(1.5, m.return_gap_days / 1.5, size=n_users)  # each returner's own rhythm
    user, position = _group_offsets(1 + extra)
    gaps = np.where(position == 0, 0.0, rng.exponential(1.0, size=user.size) * mean_gap[user])
    day = arrival[user] + _group_cumsum(gaps, user, position)
    inside = day < m.days
    return user[inside], day[inside]


def _choose_categories(rng: np.random.Generator, taste_cum: np.ndarray, user: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one category per event from its user's taste (rows of taste_cum end at 1)."""
    n_categories = taste_cum.shape[1]
    flat = (taste_cum + np.arange(taste_cum.shape[0])[:, None]).ravel()  # row u spans (u, u+1]
    at = np.searchsorted(flat, user + rng.random(user.size) * (1 - 1e-12), side="right")
    return np.minimum(at - user * n_categories, n_categories - 1)


def _choose_products(rng: np.random.Generator, cat: Catalogue, user_vectors: np.ndarray, user: np.ndarray,
                     category: np.ndarray, day: np.ndarray, strength: float) -> np.ndarray:
    """Per event: CANDIDATES products of its category drawn by popularity, the best latent match (plus
    Gumbel noise) among those on sale wins; when none is on sale, the first candidate."""
    out = np.empty(user.size, dtype=np.int64)
    scale = strength / np.sqrt(LATENT_DIM)
    for lo in range(0, user.size, BLOCK):  # blocks of events, not users: bounded memory
        sl = slice(lo, lo + BLOCK)
        c = category[sl]
        target = cat.category_start[c][:, None] + rng.random((c.size, CANDIDATES)) * cat.category_total[c][:, None]
        idx = np.minimum(np.searchsorted(cat.cum_popularity, target, side="right"), cat.by_category.size - 1)
        cand = cat.by_category[idx]
        match = np.einsum("ed,ecd->ec", user_vectors[user[sl]], cat.vectors[cand]) * scale
        on_sale = (cat.launch[cand] <= day[sl, None]) & (day[sl, None] < cat.end[cand])
        score = np.where(on_sale, match + rng.gumbel(size=match.shape), -np.inf)
        best = np.argmax(score, axis=1)
        best[~on_sale.any(axis=1)] = 0
        out[sl] = cand[np.arange(c.size), best]
    return out


def _resolve_repeats(product: np.ndarray, source: np.ndarray) -> np.ndarray:
    """source[i] < i names the earlier event whose product event i repeats (source[i] == i: its own).
    Pointer jumping: a repeat of a repeat ends at the original in log(depth) vectorized passes."""
    while True:
        nxt = source[source]
        if np.array_equal(nxt, source):
            return product[source]
        source = nxt


def simulate(rows: int, seed: int, market: Market) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(interactions, catalogue or None) of about `rows` events (whole users: at most `rows`)."""
    m = market.validate()
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    cat = _catalogue(rng, max(int(rows * m.products_per_row), 4 * m.n_categories), m)
    per_user = m.events_per_visit * (1 + m.returning_share * m.extra_visits_mean)
    n_users = int(rows / per_user * 1.5) + 10  # drawn generously, trimmed to whole users below

    visit_user, visit_day = _visits(rng, n_users, m)
    sizes = 1 + rng.poisson(m.events_per_visit - 1, size=visit_user.size)
    visit, in_visit = _group_offsets(sizes)
    user = visit_user[visit]
    seconds = visit_day[visit] * SECONDS_PER_DAY + _group_cumsum(rng.exponential(180.0, size=visit.size), visit, in_visit)

    # Keep whole users (ids are assigned at random, so the first ones are a fair sample) up to `rows`.
    counts = np.bincount(user, minlength=n_users)
    kept_users = np.cumsum(counts) <= rows
    keep = kept_users[user] & (seconds < m.days * SECONDS_PER_DAY)  # a visit late on the last day ends there
    user, visit, seconds = user[keep], visit[keep], seconds[keep]

    taste = rng.dirichlet(np.full(m.n_categories, m.taste_concentration), size=n_users)
    category = _choose_categories(rng, np.cumsum(taste, axis=1), user)
    user_vectors = rng.standard_normal((n_users, LATENT_DIM))
    product = _choose_products(rng, cat, user_vectors, user, category, seconds / SECONDS_PER_DAY, m.taste_strength)

    # Re-buys: an event of a later visit copies a product from one of the user's earlier visits.
    n = user.size
    user_first = np.searchsorted(user, user)                 # events are grouped by user, visits in order
    visit_first = np.searchsorted(visit, visit)
    earlier = visit_first - user_first                       # events of this user's earlier visits
    repeat = (earlier > 0) & (rng.random(n) < m.repeat_rate)
    source = np.where(repeat, user_first + (rng.random(n) * earlier).astype(np.int64), np.arange(n))
    product = _resolve_repeats(product, source)
    event = np.where(repeat, rng.choice(len(EVENTS), size=n, p=REPEAT_MIX),
                     rng.choice(len(EVENTS), size=n, p=FRESH_MIX))

    customer_ids = 1 + rng.permutation(n_users * 10)[:n_users]  # sparse, unordered ids as in an export
    product_ids = 1 + rng.permutation(cat.category.size * 10)[:cat.category.size]
    stamps = PERIOD_START + np.round(seconds).astype("timedelta64[s]")
    order = np.lexsort((customer_ids[user], stamps))         # file order: by time, as exports are
    interactions = pd.DataFrame({"customer_id": customer_ids[user][order], "product_id": product_ids[product][order],
                                 "event": EVENTS[event][order], "event_date": np.datetime_as_string(stamps[order], unit="s")})
    catalogue = None
    if m.catalogue:
        names = np.array([f"Category {i + 1:02d}" for i in range(m.n_categories)], dtype=object)
        catalogue = pd.DataFrame({"product_id": product_ids, "category": names[cat.category]}
                                 ).sort_values("product_id", kind="stable")
    return interactions, catalogue


def write_market(out_dir: str | Path, rows: int, seed: int, market: Market | str = "market") -> dict:
    """Write interactions.csv (and products.csv with a catalogue) into out_dir; return what was written."""
    settings = PRESETS[market] if isinstance(market, str) else market
    interactions, catalogue = simulate(rows, seed, settings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    interactions.to_csv(out / "interactions.csv", index=False, lineterminator="\n")
    products_path = None
    if catalogue is not None:
        products_path = out / "products.csv"
        catalogue.to_csv(products_path, index=False, lineterminator="\n")
    elif (out / "products.csv").exists():
        (out / "products.csv").unlink()  # a stale catalogue from an earlier market must not be read with it
    return {"interactions_path": str(out / "interactions.csv"),
            "products_path": str(products_path) if products_path else None,
            "rows": len(interactions), "users": int(interactions["customer_id"].nunique()),
            "products": int(interactions["product_id"].nunique())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo.markets",
                                     description="Write a simulated market (a preset, optionally adjusted).")
    parser.add_argument("--preset", choices=list(PRESETS), default="market")
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    parser.add_argument("--categories", type=int, help="number of categories")
    parser.add_argument("--returning-share", type=float, help="share of users who come back on other days")
    parser.add_argument("--repeat-rate", type=float, help="chance a return-visit event re-buys")
    parser.add_argument("--no-catalogue", action="store_true", help="write no products.csv")
    args = parser.parse_args(argv)
    changes = {k: v for k, v in (("n_categories", args.categories), ("returning_share", args.returning_share),
                                 ("repeat_rate", args.repeat_rate)) if v is not None}
    if args.no_catalogue:
        changes["catalogue"] = False
    try:
        info = write_market(args.out, args.rows, args.seed, replace(PRESETS[args.preset], **changes))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {info['rows']:,} rows ({info['users']:,} users, {info['products']:,} products) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
