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

from pipeline.config import RunParams
from pipeline.strategies.baselines import activity_audiences, random_audiences
from pipeline.strategies.ranking import AudienceBlock, engagement_audiences

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

# What each strategy does, in words for analysts: reports/words.py (DESCRIPTIONS).


def get_strategy(name: str) -> Strategy:
    from store.errors import InputError
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)} "
                         f"(or leave --strategy out to evaluate them all and publish the best)")
    return STRATEGIES[name]
