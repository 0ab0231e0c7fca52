"""The interface every strategy implements, in the spirit of implicit's RecommenderBase.

    model = Strategy().fit(events, users, catalogue, params)     # learn from events before a cut-off
    blocks = model.rank(products, exclusions, depth)             # score users for products

``events`` are all a strategy may learn from (in an evaluation, only the part before the split) and
``users`` the features of exactly those events (the candidates, sorted by customer_id). ``rank`` yields
AudienceBlocks in the order of ``products``, each audience best first and as deep as ``depth`` allows.
The exclusion rule is not the strategy's business: the shared code finds the excluded pairs once
(`ranking.exclusions_for`) and `ranking.assemble` keeps them out; the exposure cap is applied afterwards
by `pipeline.evaluation.cap` to whatever the strategy ranked.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import pandas as pd

from pipeline.config import RunParams
from pipeline.data.features import engagement_places
from pipeline.strategies.ranking import AudienceBlock, Exclusions


class Strategy(ABC):
    """Fit once, rank any products. Subclasses keep what they learned as attributes."""

    name: str = ""
    # True when fitting on every event reuses what the evaluation's fits kept (propensity trains on the
    # outer split's early part, whose signals and ALS factors the evaluation built); else they are dropped.
    reuses_evaluation_fits: bool = False

    def fit(self, events: pd.DataFrame, users: pd.DataFrame, catalogue: pd.DataFrame | None,
            params: RunParams) -> Strategy:
        self.events, self.users, self.catalogue, self.params = events, users, catalogue, params
        self.ids = users["customer_id"].to_numpy()
        self.eng_rank = engagement_places(users)
        return self

    @classmethod
    def prefetch(cls, events: pd.DataFrame, users: pd.DataFrame, params: RunParams) -> bool:
        """Start, in the background, the slow part of a later `fit` on these events (ALS factors), so
        an evaluation that fits several splits overlaps them; True when it started something. Most
        strategies have nothing to start."""
        return False

    def learned_from(self) -> tuple[int, int, int] | None:
        """A learned ranker's (engaged pairs, training pairs, model families fitted), for the run's stats;
        None for a strategy that learns no ranker."""
        return None

    @abstractmethod
    def rank(self, products: np.ndarray, exclusions: Exclusions, depth: int) -> Iterator[AudienceBlock]:
        """Audiences of `products` (sorted ids), leaving out `exclusions`, `depth` users deep."""
