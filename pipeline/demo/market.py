"""The simulated marketplace behind the demo data: period, catalogue, users, sessions, products, events.

Everything here is the *clean* behaviour the strategies can learn from (categories with skewed popularity,
product lifetimes, users with preferred categories, sessions, cart -> purchase funnels). The dirt of a real
export is added by dirt.py, the text by text.py; generate.py puts them together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# --- the period ------------------------------------------------------------------------------------------
# The reference export covers 2022-10-01 .. 2023-03-31 UTC: 182 whole days.
PERIOD_START = np.datetime64("2022-10-01T00:00:00", "us")
PERIOD_DAYS = 182
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000

# One-time shoppers' daily arrivals grow by this much over the period (acquisition campaigns); the
# repeat customers do not grow, so late users have fewer interactions each than early ones.
NEW_CUSTOMER_GROWTH = 0.5
# Shopping peaks on weekends and around Black Friday / Cyber Monday and the run-up to Christmas.
WEEKEND_FACTOR = 1.15
PEAK_DAYS = ((55, 59, 1.6), (61, 82, 1.2))  # (first day, end day, factor): Nov 25-28, Dec 1-21
# Relative activity per UTC hour: quiet at night, busiest in the evening.
HOUR_PROFILE = (2.0, 1.2, 0.8, 0.6, 0.6, 0.8, 1.5, 2.5, 3.5, 4.0, 4.2, 4.5,
                4.8, 4.6, 4.4, 4.5, 4.8, 5.2, 5.8, 6.2, 6.0, 5.2, 4.0, 3.0)

# --- catalogue --------------------------------------------------------------------------------------------
# 30 categories: in the 20-40 range of a mid-sized marketplace, enough for distinct user tastes.
CATEGORY_NAMES = (
    "Electronics", "Fashion", "Home & Kitchen", "Beauty", "Sports & Outdoors", "Toys & Games", "Books",
    "Health", "Automotive", "Grocery", "Pet Supplies", "Office Products", "Garden", "Baby", "Jewelry",
    "Shoes", "Video Games", "Music", "Tools", "Furniture", "Arts & Crafts", "Luggage", "Watches",
    "Software", "Cameras", "Mobile Accessories", "Appliances", "Stationery", "Party Supplies", "Collectibles",
)
N_CATEGORIES = len(CATEGORY_NAMES)
# Category popularity ~ 1/rank^1.1: a few big categories, a long tail of small ones.
CATEGORY_ZIPF_EXPONENT = 1.1
# Catalogue size per export row: calibrated so ~195K products get an interaction at the default size (the
# rest of the catalogue is never touched, as in a real long tail).
PRODUCTS_PER_ROW = 1.24
# Log-normal product popularity: a minority of products draws most interactions, most get one or two.
PRODUCT_POPULARITY_SIGMA = 1.2
# Product lifetimes are log-normal around 5 weeks with a long tail (a few products stay for the whole
# period): the catalogue turns over, which makes ~57% of the products seen in the last fifth new there.
LIFETIME_MEDIAN_DAYS = 35.0
LIFETIME_SIGMA = 1.0
# Launches slow down after the holiday assortment: from 2023-01-01 (day 92) at this rate of before. Fewer
# launches in the last fifth keep its products fewer and more often carried over, as in the reference.
LAUNCH_SLOWDOWN_DAY = 92
LAUNCH_RATE_AFTER_HOLIDAYS = 0.7
# Products launched up to this long before the period are still on sale at its start.
LAUNCH_LEAD_DAYS = 60.0

# --- users and sessions -------------------------------------------------------------------------------
# Most customers of the reference interact once (88.78%); the rest 2..5 times, rarely more. Drawn lower
# than that, because a repeat customer whose other visits fall outside the period shows up once in it.
ONE_TIME_SHARE = 0.82
# Interactions of a repeat customer: 2..5 with these probabilities, otherwise a power user with more.
REPEAT_COUNTS = (2, 3, 4, 5)
REPEAT_COUNT_PROBS = (0.64, 0.22, 0.085, 0.035)
# A power user has 5 + Geometric(p) interactions: 9 on average, a few dozen at most.
POWER_USER_GEOMETRIC_P = 0.25
# Gaps inside a session: minutes (exponential, with a floor of a few seconds between clicks).
IN_SESSION_GAP_MEAN_MINUTES = 4.0
IN_SESSION_GAP_FLOOR_SECONDS = 5.0
# Any further interaction may open a new session later the same day (hours later).
SAME_DAY_SESSION_PROB = 0.15
SAME_DAY_RETURN_MEAN_HOURS = 3.0
# Share of repeat customers who come back on other days (the rest shop in one session or day). The
# reference keeps 3.05% of its early users into the last fifth although only ~11% of users ever come
# back, so most repeat customers must be returners, and their returns weeks to months apart.
RETURNING_SHARE = 0.9
# A returner's second interaction is a return visit; later ones are with this probability.
RETURN_VISIT_PROB = 0.4
LONG_RETURN_MEAN_DAYS = 75.0
# The period is a window on a running market: repeat customers start up to this long before it (their
# earlier visits are not in the export) and their visits past its end are cut, as in a real export.
# Placing every history inside the period instead (as this generator did until 2026-12-07, to reach the
# reference's retention with 90-day gaps) made the last weeks unlike any earlier ones: returners whose
# return had to land before the end came back there, so in the last 33 days of the 500K demo users unseen
# for 120+ days returned at 5.0%, more than users seen in the last week (3.2%), while a model learns from
# earlier windows, where no user had been away that long. Now the return rate falls with the time away in
# every window (the last 33 days: 5.2% of users seen within a week, 2.0% of those away 60-120 days, 1.2%
# beyond; the 33 days before: 5.3% and 2.2%). The price: retention 2.6-2.8% (seeds 1-3, 11, 42) against
# the reference's 3.05%, with the other shape statistics still near the reference's.
LEAD_DAYS = 15
USER_MARGINS = (1.6, 2.5, 4.0)  # users drawn per expected user, tried in turn until the period has n_rows
# Users have 1-3 preferred categories; most sessions are in one of them, the rest follow popularity.
PREFERRED_COUNT_PROBS = (0.5, 0.35, 0.15)
PREFERRED_CATEGORY_SHARE = 0.85
# Within a session, an interaction is the purchase of the product carted just before with this probability.
FUNNEL_PROB = 0.45

# --- events -------------------------------------------------------------------------------------------
# The published event mix of the reference export (after cleaning), in code order.
EVENTS = ("cart", "purchased", "wishlist", "search_keyword", "rating")
EVENT_MIX = (0.6099, 0.3330, 0.0445, 0.0064, 0.0062)
CART, PURCHASED = 0, 1
# Values outside the known five that a real export leaks; kept by cleaning, so kept very rare.
UNKNOWN_EVENTS = ("view", "click")
UNKNOWN_EVENT_RATE = 0.0001



@dataclass
class Catalogue:
    """Products sorted by (category, launch); times in microseconds since the epoch."""

    product_id: np.ndarray
    category: np.ndarray
    launch_us: np.ndarray
    end_us: np.ndarray
    weight: np.ndarray


@dataclass
class Interactions:
    """One row per clean interaction; ``user`` indexes ``customer_ids``, ``product`` the catalogue."""

    user: np.ndarray
    time_us: np.ndarray
    product: np.ndarray
    event: np.ndarray  # index into EVENTS, len(EVENTS)+k for UNKNOWN_EVENTS[k]
    customer_ids: np.ndarray


def period_start_us() -> int:
    return int(PERIOD_START.astype(np.int64))


def _category_popularity() -> np.ndarray:
    weights = 1.0 / np.arange(1, N_CATEGORIES + 1) ** CATEGORY_ZIPF_EXPONENT
    return weights / weights.sum()


def _day_profile(trend: np.ndarray | float = 1.0) -> np.ndarray:
    day = np.arange(PERIOD_DAYS)
    # 2022-10-01 was a Saturday: days 0 and 1 of every week are the weekend.
    weights = np.where(day % 7 < 2, WEEKEND_FACTOR, 1.0) * trend
    for first, end, factor in PEAK_DAYS:
        weights[first:end] *= factor
    return weights / weights.sum()


def _distinct_ids(rng: np.random.Generator, n: int, start: int) -> np.ndarray:
    """n distinct positive ids with irregular gaps, in random order (real ids are neither dense nor sorted)."""
    ids = start + np.cumsum(rng.integers(1, 8, size=n, dtype=np.int64))
    return rng.permutation(ids)

def _launch_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Launch day of each product relative to the period start, fractional; fewer launches after the holidays."""
    days = np.arange(-int(LAUNCH_LEAD_DAYS), PERIOD_DAYS)
    rate = np.where(days < LAUNCH_SLOWDOWN_DAY, 1.0, LAUNCH_RATE_AFTER_HOLIDAYS)
    return rng.choice(days, size=n, p=rate / rate.sum()) + rng.random(n)


def make_catalogue(rng: np.random.Generator, n_products: int) -> Catalogue:
    start = period_start_us()
    category = rng.choice(N_CATEGORIES, size=n_products, p=_category_popularity())
    launch_days = _launch_days(rng, n_products)
    weight = rng.lognormal(0.0, PRODUCT_POPULARITY_SIGMA, size=n_products)
    life_days = rng.lognormal(math.log(LIFETIME_MEDIAN_DAYS), LIFETIME_SIGMA, size=n_products)
    product_id = _distinct_ids(rng, n_products, start=100_000)
    launch_us = start + (launch_days * DAY_US).astype(np.int64)
    end_us = launch_us + (life_days * DAY_US).astype(np.int64)
    # One int64 key (category in the high bits) sorts several times faster than np.lexsort on two.
    order = np.argsort(category.astype(np.int64) << 50 | (launch_us - launch_us.min()), kind="stable")
    return Catalogue(product_id[order], category[order], launch_us[order], end_us[order], weight[order])


def _user_counts(rng: np.random.Generator, n_users: int) -> np.ndarray:
    """Interactions each user would have over an unbounded period."""
    power_share = 1.0 - sum(REPEAT_COUNT_PROBS)
    options = np.asarray(REPEAT_COUNTS + (0,))
    repeat = options[rng.choice(options.size, size=n_users, p=REPEAT_COUNT_PROBS + (power_share,))]
    power = REPEAT_COUNTS[-1] + rng.geometric(POWER_USER_GEOMETRIC_P, size=n_users)
    repeat = np.where(repeat == 0, power, repeat)
    return np.where(rng.random(n_users) < ONE_TIME_SHARE, 1, repeat)


def _session_gaps(rng: np.random.Generator, user: np.ndarray, position: np.ndarray,
                  returning: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap in microseconds to the user's previous interaction, starts-a-new-session flag) per row."""
    n = user.size
    in_session = (IN_SESSION_GAP_FLOOR_SECONDS * 1e6
                  + rng.exponential(IN_SESSION_GAP_MEAN_MINUTES * MINUTE_US, size=n))
    same_day = rng.exponential(SAME_DAY_RETURN_MEAN_HOURS * HOUR_US, size=n)
    long_return = rng.exponential(LONG_RETURN_MEAN_DAYS * DAY_US, size=n)
    visit_draw = rng.random(n)
    session_draw = rng.random(n)
    returns = returning[user] & ((position == 1) | (visit_draw < RETURN_VISIT_PROB)) & (position > 0)
    same_day_session = ~returns & (position > 0) & (session_draw < SAME_DAY_SESSION_PROB)
    gap = np.where(returns, long_return, np.where(same_day_session, same_day, in_session))
    gap[position == 0] = 0.0
    new_session = (position == 0) | returns | same_day_session
    return gap.astype(np.int64), new_session


def _simulate_users(rng: np.random.Generator, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exactly n_rows interactions of fresh users: (user, time_us, new_session, session category).

    Users are drawn with their interaction counts, visits and sessions, then placed on the market's
    timeline; the export keeps what falls inside the period. Users are taken in draw order until n_rows
    rows are reached (the last one possibly cut short); too few drawn (tiny n_rows), more are drawn.
    """
    for margin in USER_MARGINS:
        drawn = _place_users(rng, n_rows, margin)
        if drawn[0].size == n_rows:
            return drawn
    raise RuntimeError("user pool too small")  # cannot happen with the margins above


def _place_users(rng: np.random.Generator, n_rows: int, margin: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    start, end = period_start_us(), period_start_us() + PERIOD_DAYS * DAY_US
    expected_per_user = ONE_TIME_SHARE + (1 - ONE_TIME_SHARE) * float(np.dot(REPEAT_COUNTS, REPEAT_COUNT_PROBS))
    n_users = int(n_rows / expected_per_user * margin) + 16
    counts = _user_counts(rng, n_users)
    total = int(counts.sum())

    user = np.repeat(np.arange(n_users), counts)
    first_row = np.cumsum(counts) - counts
    position = np.arange(total) - np.repeat(first_row, counts)
    returning = (counts > 1) & (rng.random(n_users) < RETURNING_SHARE)
    gap, new_session = _session_gaps(rng, user, position, returning)
    offset = np.cumsum(gap)
    offset -= np.repeat(offset[first_row], counts)

    # New one-time shoppers arrive at a growing rate, repeat customers at a steady one, from LEAD_DAYS
    # before the period on (an average day's rate there): the late period has more people per
    # interaction than the early one, as in the reference.
    growth = 1.0 + NEW_CUSTOMER_GROWTH * np.arange(PERIOD_DAYS) / PERIOD_DAYS
    one_time_days = rng.choice(PERIOD_DAYS, size=n_users, p=_day_profile(growth))
    lead = np.concatenate([np.full(LEAD_DAYS, 1.0 / PERIOD_DAYS), _day_profile()])
    repeat_days = rng.choice(np.arange(-LEAD_DAYS, PERIOD_DAYS), size=n_users, p=lead / lead.sum())
    day = np.where(counts == 1, one_time_days, repeat_days)
    hour_p = np.asarray(HOUR_PROFILE) / sum(HOUR_PROFILE)
    hour = rng.choice(24, size=n_users, p=hour_p)
    anchor = start + day * DAY_US + hour * HOUR_US + rng.integers(0, HOUR_US, size=n_users)
    time_us = anchor[user] + offset

    category = _session_categories(rng, n_users, user, new_session)
    # Times grow along a user's rows: the period keeps a middle part of each history, whole sessions
    # apart from one running across the period's start.
    keep = np.flatnonzero((time_us >= start) & (time_us < end))[:n_rows]
    return user[keep], time_us[keep], new_session[keep], category[keep]


def _session_categories(rng: np.random.Generator, n_users: int, user: np.ndarray,
                        new_session: np.ndarray) -> np.ndarray:
    """Category of each row: one per session, mostly among the user's 1-3 preferred categories."""
    popularity = _category_popularity()
    preferred = rng.choice(N_CATEGORIES, size=(n_users, 3), p=popularity)
    n_preferred = rng.choice(3, size=n_users, p=PREFERRED_COUNT_PROBS) + 1
    n = user.size
    slot = (rng.random(n) * n_preferred[user]).astype(np.int64)
    taste = preferred[user, slot]
    anywhere = rng.choice(N_CATEGORIES, size=n, p=popularity)
    drawn = np.where(rng.random(n) < PREFERRED_CATEGORY_SHARE, taste, anywhere)
    session_start = np.maximum.accumulate(np.where(new_session, np.arange(n), 0))
    return drawn[session_start]


def _pick_products(rng: np.random.Generator, catalogue: Catalogue, time_us: np.ndarray,
                   category: np.ndarray) -> np.ndarray:
    """Catalogue index per row: a product of the row's category on sale that day, by popularity."""
    n = time_us.size
    u = rng.random(n)
    out = np.empty(n, dtype=np.int64)
    start = period_start_us()
    day = (time_us - start) // DAY_US
    order = np.argsort(day, kind="stable")
    bounds = np.searchsorted(day[order], np.arange(PERIOD_DAYS + 1))
    # On sale on day d: first_day <= d < end_day (whole days, int32 to keep the daily scan cheap).
    first_day = np.clip((catalogue.launch_us - start) // DAY_US, -1, PERIOD_DAYS).astype(np.int32)
    end_day = np.clip(-((start - catalogue.end_us) // DAY_US), -1, PERIOD_DAYS + 1).astype(np.int32)
    all_products = np.arange(catalogue.category.size)
    for d in range(PERIOD_DAYS):
        rows = order[bounds[d]:bounds[d + 1]]
        if rows.size == 0:
            continue
        alive = np.flatnonzero((first_day <= d) & (end_day > d))
        if alive.size == 0:  # only in tiny catalogues
            alive = all_products
        cum = np.cumsum(catalogue.weight[alive])
        # Catalogue order is by category, so each category is a contiguous run of the alive products.
        edges = np.searchsorted(catalogue.category[alive], np.arange(N_CATEGORIES + 1))
        lo = np.where(edges[:-1] > 0, cum[np.maximum(edges[:-1] - 1, 0)], 0.0)
        hi = cum[np.maximum(edges[1:] - 1, 0)]
        cat = category[rows]
        empty = edges[cat] == edges[cat + 1]
        row_lo = np.where(empty, 0.0, lo[cat])  # a category with nothing on sale: any product that day
        row_hi = np.where(empty, cum[-1], hi[cat])
        pos = np.searchsorted(cum, row_lo + u[rows] * (row_hi - row_lo), side="right")
        out[rows] = alive[np.minimum(pos, alive.size - 1)]
    return out


def _funnel_rows(rng: np.random.Generator, new_session: np.ndarray) -> np.ndarray:
    """Rows that purchase the product carted in the row just before (same user, same session)."""
    candidate = ~new_session & (rng.random(new_session.size) < FUNNEL_PROB)
    previous = np.concatenate([[False], candidate[:-1]])
    # A funnel row follows a row that is not itself a funnel completion: pairs, never chains.
    return candidate & ~previous


def _assign_events(rng: np.random.Generator, funnel: np.ndarray) -> np.ndarray:
    """Event codes hitting EVENT_MIX overall: funnel rows are purchases, the rows before them carts."""
    n = funnel.size
    n_funnel = int(funnel.sum())
    events = np.empty(n, dtype=np.int64)
    carted = np.concatenate([funnel[1:], [False]])
    free = ~funnel & ~carted
    # The free rows make up the rest of the mix, so the totals land on the published shares.
    need = np.asarray(EVENT_MIX) * n
    need[CART] -= n_funnel
    need[PURCHASED] -= n_funnel
    p = np.clip(need, 0.0, None)
    events[free] = rng.choice(len(EVENTS), size=int(free.sum()), p=p / p.sum())
    events[funnel] = PURCHASED
    events[carted] = CART
    unknown = np.flatnonzero(free & (rng.random(n) < UNKNOWN_EVENT_RATE))
    events[unknown] = len(EVENTS) + rng.integers(0, len(UNKNOWN_EVENTS), size=unknown.size)
    return events


def simulate(rng: np.random.Generator, n_rows: int, catalogue: Catalogue) -> Interactions:
    user, time_us, new_session, category = _simulate_users(rng, n_rows)
    product = _pick_products(rng, catalogue, time_us, category)
    funnel = _funnel_rows(rng, new_session)
    product[funnel] = product[np.flatnonzero(funnel) - 1]
    events = _assign_events(rng, funnel)
    customer_ids = _distinct_ids(rng, int(user.max()) + 1 if user.size else 0, start=1_000_000)
    return Interactions(user, time_us, product, events, customer_ids)


# --- formatting: every column is built as a numpy bytes array and written without pandas -----------------
