"""Is a propensity score a probability? Expected vs observed engagements per score decile, and the gain
curve of an audience: pure functions over ranked audiences and the holdout truth."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import CONFIDENCE, Truth, hits_of

DECILES = 10
TOLERANCE = 0.25  # the acceptance: observed within +-25% of expected ...
TOP_DECILES = 5   # ... in each of the top five deciles


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
    ranked = scores[order]
    n = scores.size
    # entry i is in bin i * bins // n: bin b starts at ceil(b * n / bins) (equal starts: an empty bin)
    starts = np.unique((np.arange(bins, dtype=np.int64) * n + bins - 1) // bins) if n else np.zeros(0, np.int64)
    starts = starts[starts < n]
    ends = np.r_[starts[1:], n][:starts.size].astype(np.int64)
    table = pd.DataFrame({"decile": starts * bins // max(n, 1) + 1, "entries": ends - starts,
                          "expected": np.add.reduceat(ranked, starts) if n else np.zeros(0),
                          "observed": np.add.reduceat(outcomes[order], starts, dtype=float) if n else np.zeros(0),
                          "min_score": ranked[ends - 1], "max_score": ranked[starts]})
    table["observed_over_expected"] = table["observed"] / table["expected"].where(table["expected"] > 0)
    return table


def chance_range(expected: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The engagements a perfectly calibrated model would show `confidence` of the time: each entry is a
    small, independent chance, so the count is Poisson with the expected engagements as its mean (a decile
    expecting 10 may see 4 to 17). Users who engage with several products make the real spread wider."""
    from scipy.stats import poisson
    expected = np.asarray(expected, dtype=float)
    tail = (1 - confidence) / 2
    mean = np.maximum(expected, 1e-12)
    low = np.where(expected > 0, poisson.ppf(tail, mean), 0.0)
    high = np.where(expected > 0, poisson.ppf(1 - tail, mean), 0.0)
    return low.astype(np.int64), high.astype(np.int64)


def pooled(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several holdouts' decile tables (each cut on its own scores) summed decile by decile: independent
    markets, so the counts add and the spread of the ratio shrinks as 1 / sqrt(engagements)."""
    frame = pd.concat(tables, ignore_index=True)
    table = frame.groupby("decile", as_index=False)[["entries", "expected", "observed"]].sum()
    table["observed_over_expected"] = table["observed"] / table["expected"].where(table["expected"] > 0)
    table["chance_low"], table["chance_high"] = chance_range(table["expected"].to_numpy())
    return table


def within_tolerance(table: pd.DataFrame, tolerance: float = TOLERANCE, top: int = TOP_DECILES) -> np.ndarray:
    """Per decile of the top `top`: is observed within +-tolerance of expected? (False where nothing is
    expected.)"""
    ratio = table.loc[table["decile"] <= top, "observed_over_expected"].to_numpy(dtype=float)
    return np.abs(np.nan_to_num(ratio, nan=np.inf) - 1) <= tolerance + 1e-12


def gain_curve(hits: np.ndarray, truth_size: int) -> np.ndarray:
    """Share of a product's later engagements captured by its top N, N = 1..len(hits)."""
    return np.cumsum(hits) / max(truth_size, 1)


def users_for_share(curve: np.ndarray, share: float) -> int | None:
    """How many users of the list reach `share` of the engagements (None: the list never does)."""
    reached = np.flatnonzero(curve >= share)
    return int(reached[0]) + 1 if reached.size else None
