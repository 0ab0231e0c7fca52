"""Ranking strategies by name. Each turns the clean events and user features into audience blocks.

A strategy is ``f(events, users, params, product_ids, catalogue=None) -> Iterator[AudienceBlock]``:
``events`` are all it may learn from (in an evaluation, only the early part), ``users`` the features of
exactly those events (the candidates), ``product_ids`` the sorted products to rank, ``catalogue`` the
optional product table (product_id, category). Blocks come in the order of ``product_ids``; every
audience is sorted best first and as deep as ``params.depth`` allows after the exclusion rule.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from pipeline.strategies.ranking import AudienceBlock, engagement_audiences
from pipeline.strategies.baselines import activity_audiences, random_audiences
from pipeline.config import RunParams

Strategy = Callable[..., Iterator[AudienceBlock]]
AUTO = "auto"  # not a strategy: "evaluate them all on the holdout and publish the best"


def _engagement(events: pd.DataFrame, users: pd.DataFrame, params: RunParams, products: np.ndarray,
                catalogue: pd.DataFrame | None = None) -> Iterator[AudienceBlock]:
    # engagement_audiences takes exclusions from every product in `events` (it assumes they are all
    # ranked); an evaluation ranks a subset, so only the ranked products' rows may exclude anyone.
    return engagement_audiences(events[events["product_id"].isin(products)], users, params, products)


def _affinity(*args, **kwargs) -> Iterator[AudienceBlock]:
    from pipeline.strategies.affinity import affinity_audiences
    return affinity_audiences(*args, **kwargs)


def _als(*args, **kwargs) -> Iterator[AudienceBlock]:
    from pipeline.strategies.als import als_audiences
    return als_audiences(*args, **kwargs)


STRATEGIES: dict[str, Strategy] = {
    "engagement": _engagement,
    "affinity": _affinity,
    "als": _als,
    "activity": activity_audiences,
    "random": random_audiences,
}

DESCRIPTIONS: dict[str, str] = {
    "engagement": (
        "Engagement ranks every user by one score built from five signals: how many interactions they "
        "had (35%), how many different products (25%), how strong their events were on average "
        "(purchase 5, cart 3, rating 2.5, wishlist 2, search 1; 20%), how often they came back per active "
        "day (15%) and how recently they were seen (5%, fading over 90 days). Each product's audience is "
        "that list minus the users the exclusion rule leaves out, so it favours loyal, active customers "
        "but is the same for every product apart from the exclusions."),
    "affinity": (
        "Affinity looks for users who are likely to come back and who care about this product. Who comes "
        "back is learned from the data itself: the run splits its own past once more and measures how "
        "often users of each kind (how many interactions, on one day or on several) returned. What they "
        "care about comes from three signals: the products this product is bought and carted together "
        "with (users who touched its nearest neighbours), the user's own earlier cart or wishlist of this "
        "product without a purchase (only when the exclusion rule lets such users in, e.g. --exclude "
        "purchased), and the share of the user's activity in the product's category when a product "
        "catalogue is given. A user's score is their chance of coming back times how strongly these "
        "signals tie them to the product; users with no tie at all follow in engagement order, so every "
        "audience is full."),
    "als": (
        "ALS (here a truncated SVD, the same low-rank idea) compresses the whole interaction history into "
        "a few hidden 'taste' dimensions: every event counts with its weight (purchase 5 … search 1) and "
        "fades with age (the run's decay days). A user's score for a product is how well their taste "
        "vector matches the product's. Only users who touched at least two different products have a "
        "taste of their own, so they are the ones it ranks; the rest of each audience follows in "
        "engagement order. It is here because collaborative filtering deserves an honest trial on this "
        "data, not a straw man."),
    "activity": (
        "Activity is the ranking the earlier prototype served: interactions in the last 30 days divided "
        "by (days since the user was last seen + 1). It rewards bursts of recent activity and ignores "
        "what the product is, so every audience is the same list apart from the exclusions."),
    "random": (
        "Random draws each product's audience uniformly from the users the exclusion rule allows "
        "(reproducible from the run's seed). It is the floor: a strategy that does not beat it clearly "
        "has learned nothing. Its scores are all 0."),
}


def get_strategy(name: str) -> Strategy:
    from store.errors import InputError
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)} "
                         f"(or leave --strategy out to evaluate them all and publish the best)")
    return STRATEGIES[name]
