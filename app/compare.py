"""Compare two runs: stat deltas, audience overlap (mean Jaccard at k) and rank correlation of scores.

All vectorized: audiences are compared a block of products at a time as (P, k) id matrices.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.evaluation.overlap import jaccard
from store import queries

KS = (10, 100)
BLOCK = 50_000  # products compared at once: bounds memory at 2 x BLOCK x k ids


@dataclass(frozen=True)
class Overlap:
    k: int
    mean_jaccard: float
    products: int  # common products compared


def stat_deltas(a: Mapping[str, float], b: Mapping[str, float]) -> pd.DataFrame:
    """One row per statistic of either run: value in A, in B, and B − A."""
    names = sorted(set(a) | set(b))
    frame = pd.DataFrame({"statistic": names, "run A": [a.get(n, np.nan) for n in names],
                          "run B": [b.get(n, np.nan) for n in names]})
    frame["change"] = frame["run B"] - frame["run A"]
    return frame


def audience_overlap(con, run_a: int, run_b: int, ks: tuple[int, ...] = KS) -> list[Overlap]:
    """Mean Jaccard at each k over the products both runs have audiences for."""
    common = np.intersect1d(queries.product_ids(con, run_a), queries.product_ids(con, run_b))
    sums, kmax = np.zeros(len(ks)), max(ks)
    for start in range(0, len(common), BLOCK):
        block = common[start:start + BLOCK]
        pa_, sa, ia = queries.audience_id_block(con, run_a, int(block[0]), int(block[-1]), kmax)
        pb_, sb, ib = queries.audience_id_block(con, run_b, int(block[0]), int(block[-1]), kmax)
        keep_a, keep_b = np.isin(pa_, block), np.isin(pb_, block)
        for i, k in enumerate(ks):
            sums[i] += jaccard(ia[keep_a], sa[keep_a], ib[keep_b], sb[keep_b], k).sum()
    n = len(common)
    return [Overlap(k, float(sums[i] / n) if n else float("nan"), n) for i, k in enumerate(ks)]


@dataclass(frozen=True)
class ScoreAgreement:
    spearman: float
    users: int            # users in both runs
    sample: pd.DataFrame  # score_a, score_b of up to SAMPLE of them, for a scatter plot


def score_agreement(con, run_a: int, run_b: int, sample: int = 5000) -> ScoreAgreement:
    """Spearman rank correlation of engagement scores over the users both runs scored."""
    from scipy.stats import spearmanr  # imported here: scipy costs ~1 s and only this needs it
    a = queries.engagement_scores(con, run_a)
    b = queries.engagement_scores(con, run_b)
    both = a.merge(b, on="customer_id", suffixes=("_a", "_b")).rename(
        columns={"engagement_score_a": "score_a", "engagement_score_b": "score_b"})
    rho = float(spearmanr(both["score_a"], both["score_b"]).statistic) if len(both) > 1 else float("nan")
    shown = both.sample(min(sample, len(both)), random_state=0) if len(both) else both
    return ScoreAgreement(rho, len(both), shown[["score_a", "score_b"]].reset_index(drop=True))
