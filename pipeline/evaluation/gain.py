"""The gain curve of each strategy on the outer holdout: how many of the evaluated products' later
engagements the top n of their audiences caught, for n = 1 .. the evaluation depth. Computed once at
evaluation time (the truth is only known there) and stored in `gain`; the app, the report and /metrics
read it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import Truth, hits_of

COLUMNS = ["strategy", "n", "hits", "share_of_truth", "share_of_list"]


def gain_curve_rows(name: str, positions: np.ndarray, sizes: np.ndarray, truth: Truth,
                    cells: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """One strategy's rows: hits in the top n summed over products, as a share of every later engagement
    of those products (newcomers' included: the recall@n) and of the hits at full depth (what the list
    can capture). `cells`: hits_of of these audiences, when known."""
    _, hits = cells if cells is not None else hits_of(positions, sizes, truth)
    caught = np.cumsum(hits.sum(axis=0)) if hits.size else np.zeros(0, np.int64)
    total = int(truth.truth_size.sum())
    at_depth = int(caught[-1]) if caught.size else 0
    return pd.DataFrame({"strategy": name, "n": np.arange(1, caught.size + 1), "hits": caught.astype(np.int64),
                         "share_of_truth": caught / total if total else 0.0,
                         "share_of_list": caught / at_depth if at_depth else 0.0})


def gain_rows(scored: list) -> pd.DataFrame:
    """Rows of every uncapped scored strategy (pipeline.evaluation.holdout.Scored) with a gain curve."""
    frames = [s.gain for s in scored if s.cap is None and s.gain is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
