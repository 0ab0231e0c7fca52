"""Is a propensity score a probability? Expected vs observed engagements per score decile, and the gain
curve of an audience: pure functions over ranked audiences and the holdout truth."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import Truth, hits_of

DECILES = 10


def calibration_table(positions: np.ndarray, scores: np.ndarray, sizes: np.ndarray, truth: Truth,
                      cells: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Audience entries in ten equal-count bins by score (decile 1 = highest scores): entries, expected
    engagements (sum of scores), observed engagements (hits) and their ratio. `cells`: hits_of of these
    audiences, when known."""
    valid, hits = cells if cells is not None else hits_of(positions, sizes, truth)
    return calibration_bins(scores[valid], hits[valid])


def calibration_bins(scores: np.ndarray, outcomes: np.ndarray, bins: int = DECILES) -> pd.DataFrame:
    order = np.argsort(-scores, kind="stable")
    decile = np.empty(scores.size, dtype=np.int64)
    decile[order] = np.arange(scores.size) * bins // max(scores.size, 1)
    frame = pd.DataFrame({"decile": decile + 1, "score": scores, "hit": outcomes.astype(float)})
    table = frame.groupby("decile").agg(entries=("score", "size"), expected=("score", "sum"),
                                        observed=("hit", "sum"), min_score=("score", "min"),
                                        max_score=("score", "max")).reset_index()
    table["observed_over_expected"] = table["observed"] / table["expected"].where(table["expected"] > 0)
    return table


def gain_curve(hits: np.ndarray, truth_size: int) -> np.ndarray:
    """Share of a product's later engagements captured by its top N, N = 1..len(hits)."""
    return np.cumsum(hits) / max(truth_size, 1)


def users_for_share(curve: np.ndarray, share: float) -> int | None:
    """How many users of the list reach `share` of the engagements (None: the list never does)."""
    reached = np.flatnonzero(curve >= share)
    return int(reached[0]) + 1 if reached.size else None
