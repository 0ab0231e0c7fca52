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
    """Entries sorted by score, best first, cut into `bins` equal-count runs (empty runs left out), each
    summed along its run rather than by a pandas group-by (2.2M entries, a one-off timing: 0.42-0.48 s
    against 0.63-0.70 s; the table took 8.3 s per call in a cProfile of the 5M bench)."""
    order = np.argsort(-scores, kind="stable")
    ranked, hit = scores[order], outcomes[order].astype(float)
    decile = np.arange(scores.size) * bins // max(scores.size, 1)
    starts = np.flatnonzero(np.r_[True, decile[1:] != decile[:-1]]) if scores.size else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], scores.size].astype(np.int64)
    expected = np.add.reduceat(ranked, starts) if scores.size else np.zeros(0)
    observed = np.add.reduceat(hit, starts) if scores.size else np.zeros(0)
    table = pd.DataFrame({"decile": decile[starts] + 1, "entries": ends - starts, "expected": expected,
                          "observed": observed, "min_score": ranked[ends - 1] if scores.size else np.zeros(0),
                          "max_score": ranked[starts]})
    table["observed_over_expected"] = table["observed"] / table["expected"].where(table["expected"] > 0)
    return table


def gain_curve(hits: np.ndarray, truth_size: int) -> np.ndarray:
    """Share of a product's later engagements captured by its top N, N = 1..len(hits)."""
    return np.cumsum(hits) / max(truth_size, 1)


def users_for_share(curve: np.ndarray, share: float) -> int | None:
    """How many users of the list reach `share` of the engagements (None: the list never does)."""
    reached = np.flatnonzero(curve >= share)
    return int(reached[0]) + 1 if reached.size else None
