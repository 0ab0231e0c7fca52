"""Figures of the propensity model: calibration (expected vs observed engagements per score decile on the
holdout) and an audience's gain curve. Each takes a small precomputed table and returns a plotly figure."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.figures import _layout


def calibration_figure(table: pd.DataFrame) -> go.Figure:
    """Bars of expected (sum of scores) and observed engagements per decile (1 = highest scores)."""
    fig = go.Figure([go.Bar(name="expected (sum of probabilities)", x=table["decile"], y=table["expected"],
                            marker_color="#4C78A8"),
                     go.Bar(name="observed on the holdout", x=table["decile"], y=table["observed"],
                            marker_color="#F58518")])
    return _layout(fig, "Calibration: expected vs observed engagements per score decile", barmode="group",
                   xaxis_title="score decile (1 = highest)", yaxis_title="engagements")


def gain_figure(scores: np.ndarray) -> go.Figure:
    """Expected share of an audience's engagements reached by its top N (its scores are probabilities)."""
    scores = np.asarray(scores, dtype=float)
    share = np.cumsum(scores) / max(scores.sum(), 1e-12)
    fig = go.Figure(go.Scatter(x=np.arange(1, scores.size + 1), y=share, mode="lines", line_color="#4C78A8"))
    return _layout(fig, f"Gain: {scores.sum():.2f} expected engagements in this audience",
                   xaxis_title="users targeted (top N)", yaxis_title="share of expected engagements",
                   yaxis_tickformat=".0%")
