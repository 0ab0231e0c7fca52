"""Ranking strategies by name: one entry per strategy, each a `base.Strategy` (fit, then rank).

`audiences(name, ...)` is how the pipeline uses one: fit on the events it may learn from, find the
excluded pairs once (the shared ranking code), rank the products.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd

from pipeline.config import RunParams
from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import AudienceBlock, exclusions_for

FORCED = "forced with --strategy"  # runs.params.strategy_selection of a run told which strategy to publish
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

# What each strategy does in words for analysts lives in reports/words.py (DESCRIPTIONS).


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


# Modules that keep fits for a later fit on the same events, each with a `forget()`.
CACHING_MODULES = ("pipeline.strategies.als", "pipeline.strategies.propensity_data")


def forget_fits() -> None:
    """Drop what the evaluation's fits kept for later fits on the same events (ALS factors, propensity's
    signals). A run calls it once the strategy it publishes is known not to reuse them: from then on they
    are only memory (at 5M rows, GBs held through the audiences stage)."""
    for module in CACHING_MODULES:
        if module in sys.modules:  # never imported: nothing kept
            sys.modules[module].forget()
