"""Reading a gain curve: how many users to target to reach a share of what a list captures. numpy only,
so the API workers can use it (reports/model_figures.py draws the curves)."""
from __future__ import annotations

import numpy as np

from reports.words import GAIN_SHARES


def users_for_share(curve, share: float) -> int | None:
    """The smallest N whose top N reaches `share` (curve[N - 1] >= share); None: the list never does."""
    reached = np.flatnonzero(np.asarray(curve, dtype=float) >= share - 1e-12)
    return int(reached[0]) + 1 if reached.size else None


def reach_table(curve) -> dict[float, int | None]:
    """{0.5: N, 0.7: N, 0.9: N}: users to target to reach each share of what the list captures."""
    return {share: users_for_share(curve, share) for share in GAIN_SHARES}


def expected_share(scores) -> np.ndarray:
    """The share of an audience's summed scores held by its top N, N = 1..len(scores) (zeros: no mass)."""
    scores = np.clip(np.asarray(scores, dtype=float), 0, None)
    total = scores.sum()
    return np.cumsum(scores) / total if total > 0 else np.zeros(scores.size)
