"""Ranking strategies by name: one entry per strategy, each a `base.Strategy` (fit, then rank).

`audiences(name, ...)` is how the pipeline uses one: fit on the events it may learn from, find the
excluded pairs once (the shared ranking code), rank the products.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator

import numpy as np
import pandas as pd

from pipeline.config import RunParams
from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import AudienceBlock, exclusions_for

AUTO = "auto"  # not a strategy: "choose on an inner split of the fitting period, publish the best"

# name -> "module:Class"; imported on first use so a run loads only what it ranks with.
STRATEGIES: dict[str, str] = {
    "propensity": "pipeline.strategies.propensity:Propensity",
    "affinity": "pipeline.strategies.affinity:Affinity",
    "als": "pipeline.strategies.als:ALS",
    "itemknn": "pipeline.strategies.itemknn:ItemKNN",
    "engagement": "pipeline.strategies.baselines:Engagement",
    "activity": "pipeline.strategies.baselines:Activity",
    "random": "pipeline.strategies.baselines:Random",
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
    "propensity": (
        "Propensity is a learned model in two stages, as production recommenders work. First it gathers "
        "candidates for each product from every source: users who carted or wishlisted it without buying "
        "(when the exclusion rule lets them in), users who buy what this product's buyers buy (item "
        "neighbours), users whose taste matches it (ALS), users loyal to its category (with a catalogue) "
        "and active users likely to come back. Then a gradient-boosted classifier, trained on the run's "
        "own past (features before an inner cut, what happened after it), scores each candidate from "
        "their activity, recency, own interest in the product, category share, neighbour strength, taste "
        "match and the product's popularity and age. The score is a calibrated probability that the user "
        "engages with the product within the horizon (the length of the holdout window): an audience's "
        "scores add up to the engagements it can be expected to bring."),
    "als": (
        "ALS is implicit's alternating least squares, the standard collaborative filter: it compresses the "
        "whole interaction history (every event with its weight, fading with age) into a few hidden "
        "'taste' dimensions for users and products. A user's score for a product is how well the two "
        "taste vectors match. Users it cannot score follow in engagement order. It is here as the "
        "library most teams would reach for first."),
    "itemknn": (
        "Item-kNN is implicit's BM25 item-item nearest neighbours: products are similar when the same "
        "users touched both. A user's score for a product is the similarity-weighted sum of what they "
        "touched among the product's 100 nearest neighbours: 'buys what this product's buyers buy'. "
        "Users with no tie follow in engagement order."),
    "activity": (
        "Activity is the ranking the earlier prototype served: interactions in the last 30 days divided "
        "by (days since the user was last seen + 1). It rewards bursts of recent activity and ignores "
        "what the product is, so every audience is the same list apart from the exclusions."),
    "random": (
        "Random draws each product's audience uniformly from the users the exclusion rule allows "
        "(reproducible from the run's seed). It is the floor: a strategy that does not beat it clearly "
        "has learned nothing. Its scores are all 0."),
}


def get_strategy(name: str) -> type[Strategy]:
    from store.errors import InputError
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)} "
                         f"(or leave --strategy out to evaluate them all and publish the best)")
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def fitted(name: str, events: pd.DataFrame, users: pd.DataFrame, params: RunParams,
           catalogue: pd.DataFrame | None = None) -> Strategy:
    return get_strategy(name)().fit(events, users, catalogue, params)


def audiences(name: str, events: pd.DataFrame, users: pd.DataFrame, params: RunParams, products: np.ndarray,
              catalogue: pd.DataFrame | None = None, depth: int | None = None) -> Iterator[AudienceBlock]:
    """Fit `name` on `events`, then rank `products` (sorted ids) under the run's exclusion rule."""
    model = fitted(name, events, users, params, catalogue)
    exclusions = exclusions_for(events, users, params.exclude, products)
    return model.rank(products, exclusions, depth or params.depth)
