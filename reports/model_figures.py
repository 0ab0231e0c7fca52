"""Figures of the propensity model: calibration (expected vs observed engagements per score decile on the
holdout), the holdout gain curves of the strategies, and an audience's gain curve. Each takes a small
precomputed table (or one audience's scores) and returns a plotly figure."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.figures import _layout
from reports.gain import expected_share, reach_table
from reports.tables import calibration_view

MARK_COLOR = "#54A24B"


def calibration_figure(table: pd.DataFrame) -> go.Figure:
    """Bars of expected (sum of scores) and observed engagements per decile (1 = highest scores); the
    whiskers on the expected bars span the counts chance alone gives a calibrated model (19 times in 20)."""
    view = calibration_view(table)
    whiskers = dict(type="data", symmetric=False, array=view["chance_high"] - view["expected"],
                    arrayminus=view["expected"] - view["chance_low"], color="#30507A")
    fig = go.Figure([go.Bar(name="expected (sum of probabilities), whiskers: chance range", x=view["decile"],
                            y=view["expected"], error_y=whiskers, marker_color="#4C78A8"),
                     go.Bar(name="observed on the holdout", x=view["decile"], y=view["observed"],
                            marker_color="#F58518")])
    return _layout(fig, "Calibration: expected vs observed engagements per score decile", barmode="group",
                   xaxis_title="score decile (1 = highest)", yaxis_title="engagements")


def gain_figure(scores: np.ndarray, holdout: pd.DataFrame | None = None, probabilities: bool = True) -> go.Figure:
    """Expected share of an audience's engagements reached by its top N (its scores are probabilities),
    with the strategy's measured curve on the holdout (gain rows: n, share_of_list) when given, and the N
    reaching 50 / 70 / 90% marked."""
    scores = np.asarray(scores, dtype=float)
    share = expected_share(scores)
    fig = go.Figure(go.Scatter(x=np.arange(1, scores.size + 1), y=share, mode="lines", line_color="#4C78A8",
                               name="this audience (expected)" if probabilities else "this audience (score mass)"))
    if holdout is not None and not holdout.empty:
        fig.add_trace(go.Scatter(x=holdout["n"], y=holdout["share_of_list"], mode="lines",
                                 line=dict(color="#F58518", dash="dash"), name="measured on the holdout"))
    for level, n in reach_table(share).items():
        if n is not None:
            fig.add_trace(go.Scatter(x=[n], y=[share[n - 1]], mode="markers+text", text=[f"{level:.0%}: {n}"],
                                     textposition="bottom right", marker=dict(color=MARK_COLOR, size=8),
                                     showlegend=False, hovertemplate=f"{level:.0%} reached with the top {n}"
                                     "<extra></extra>"))
    title = (f"Gain: {scores.sum():.2f} expected engagements in this audience" if probabilities
             else "Gain: share of the audience's score mass in its top N")
    return _layout(fig, title, xaxis_title="users targeted (top N)", yaxis_title="share captured",
                   yaxis_tickformat=".0%")


def holdout_gain_figure(gain: pd.DataFrame, highlight: str | None = None, of_list: bool = False) -> go.Figure:
    """Every strategy's recall at N on the holdout (gain rows: strategy, n, share_of_truth), N up to the
    evaluation depth: how much of the products' later engagements the top N caught. of_list: the share of
    what the full lists caught instead (share_of_list), with 50 / 70 / 90% marked for `highlight`."""
    column = "share_of_list" if of_list else "share_of_truth"
    fig = go.Figure()
    for name, rows in gain.groupby("strategy", sort=True):
        fig.add_trace(go.Scatter(x=rows["n"], y=rows[column], mode="lines", name=name,
                                 line=dict(width=3 if name == highlight else 1.5)))
        if of_list and name == highlight:
            for level, n in reach_table(rows[column].to_numpy()).items():
                if n is not None:
                    fig.add_trace(go.Scatter(x=[n], y=[rows[column].iloc[n - 1]], mode="markers+text",
                                             text=[f"{level:.0%}: {n}"], textposition="bottom right",
                                             marker=dict(color=MARK_COLOR, size=8), showlegend=False))
    title = ("Gain on the holdout: share of what the full lists caught, by the top N" if of_list
             else "Gain on the holdout: share of later engagements caught by the top N")
    return _layout(fig, title, xaxis_title="users targeted per product (top N)",
                   yaxis_title="share captured" if of_list else "share of later engagements",
                   yaxis_tickformat=".1%", height=380)
