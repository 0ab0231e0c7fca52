"""Ranking strategies by name. Each turns the clean events and user features into audience blocks."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from pipeline.audiences import AudienceBlock, engagement_audiences
from pipeline.config import RunParams

Strategy = Callable[[pd.DataFrame, pd.DataFrame, RunParams, np.ndarray], Iterator[AudienceBlock]]

STRATEGIES: dict[str, Strategy] = {
    "engagement": engagement_audiences,
}

DESCRIPTIONS: dict[str, str] = {
    "engagement": (
        "Engagement ranks every user by one score built from five signals: how many interactions they "
        "had (35%), how many different products (25%), how strong their events were on average "
        "(purchase 5, cart 3, rating 2.5, wishlist 2, search 1; 20%), how often they came back per active "
        "day (15%) and how recently they were seen (5%, fading over 90 days). Each product's audience is "
        "that list minus the users the exclusion rule leaves out, so it favours loyal, active customers "
        "but is the same for every product apart from the exclusions."),
}


def get_strategy(name: str) -> Strategy:
    from store.errors import InputError
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
