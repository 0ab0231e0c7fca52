"""Every chart of the workbench, one function each: the app pages and the HTML report draw these.

Each function takes the small precomputed tables of a run (store.queries) and returns a plotly figure;
none reads the database or aggregates raw events.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from store.names import COMPONENT_COLUMNS

EVENT_COLORS = {"cart": "#4C78A8", "purchased": "#F58518", "wishlist": "#54A24B", "rating": "#B279A2",
                "search_keyword": "#9D755D"}
OTHER_COLOR = "#BAB0AC"
# Component weight name (runs.params["component_weights"]) -> (label, user_features column, colour).
COMPONENTS = {name: (label, COMPONENT_COLUMNS[name], color) for name, label, color in (
    ("total", "Interactions", "#4C78A8"), ("unique", "Distinct products", "#72B7B2"),
    ("avg_event", "Event strength", "#F58518"), ("frequency", "Frequency", "#54A24B"),
    ("recency", "Recency", "#B279A2"))}
PLOT_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def _layout(fig: go.Figure, title: str, height: int = 340, **kwargs) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, xanchor="left", font=dict(size=15)), height=height,
                      margin=dict(l=10, r=10, t=50, b=10), template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
                      **kwargs)
    return fig


def event_color(event: str) -> str:
    return EVENT_COLORS.get(event, OTHER_COLOR)


def users_by_interactions(histogram: pd.DataFrame) -> go.Figure:
    """activity_histogram (interactions, users): how many users had 1, 2, 3 … interactions."""
    fig = go.Figure(go.Bar(x=histogram["interactions"], y=histogram["users"], marker_color="#4C78A8",
                           hovertemplate="%{x} interactions: %{y:,} users<extra></extra>"))
    fig.update_yaxes(type="log", title="users (log scale)")
    fig.update_xaxes(title="interactions per user")
    return _layout(fig, "Users by number of interactions", bargap=0.15)


def cohort_retention(cohorts: pd.DataFrame) -> go.Figure:
    """cohort_retention: share of each monthly cohort active N months after its first month."""
    grid = cohorts.pivot(index="cohort_month", columns="months_since", values="share").sort_index()
    sizes = cohorts[cohorts["months_since"] == 0].set_index("cohort_month")["cohort_users"]
    labels = [f"{month} ({int(sizes.get(month, 0)):,})" for month in grid.index]
    pct = grid.to_numpy() * 100
    later = pct[:, 1:]
    top = float(np.nanmax(later)) if later.size and not np.isnan(later).all() else 10.0
    fig = go.Figure(go.Heatmap(
        z=pct, x=[f"+{m}" for m in grid.columns], y=labels, colorscale="Blues", zmin=0, zmax=max(top, 1.0),
        # month 0 is 100% by definition: the colour scale follows the later months, where the story is
        text=np.where(np.isnan(pct), "", np.char.add(np.round(np.nan_to_num(pct), 1).astype(str), "%")),
        texttemplate="%{text}", hovertemplate="cohort %{y}, month %{x}: %{z:.2f}% active<extra></extra>",
        colorbar=dict(title="% active", ticksuffix="%")))
    fig.update_yaxes(autorange="reversed", title="first month (users)")
    fig.update_xaxes(title="months since first activity", side="bottom")
    return _layout(fig, "Monthly cohort retention")


def daily_interactions(daily: pd.DataFrame) -> go.Figure:
    """daily_events (day, event, interactions), stacked by event."""
    wide = daily.pivot_table(index="day", columns="event", values="interactions", aggfunc="sum", fill_value=0)
    order = wide.sum().sort_values(ascending=False).index
    fig = go.Figure([go.Scatter(x=pd.to_datetime(wide.index), y=wide[event], name=event, stackgroup="events",
                                mode="lines", line=dict(width=0.5, color=event_color(event)),
                                hovertemplate="%{x|%Y-%m-%d} " + event + ": %{y:,}<extra></extra>")
                     for event in order])
    fig.update_yaxes(title="interactions")
    return _layout(fig, "Daily interactions by event", hovermode="x unified")


def product_months(months: pd.DataFrame) -> go.Figure:
    """product_months: products active each month, first seen that month or seen before."""
    fig = go.Figure([
        go.Bar(x=months["month"], y=months["continuing_products"], name="continuing", marker_color="#4C78A8"),
        go.Bar(x=months["month"], y=months["new_products"], name="new", marker_color="#F58518"),
    ])
    fig.update_yaxes(title="active products")
    fig.update_xaxes(type="category")
    return _layout(fig, "New vs continuing products by month", barmode="stack")


def event_mix(stats: Mapping[str, float]) -> go.Figure:
    """The event_pct_<event> stats as one sorted horizontal bar."""
    shares = pd.Series({k.removeprefix("event_pct_"): v for k, v in stats.items()
                        if k.startswith("event_pct_")}).sort_values()
    fig = go.Figure(go.Bar(x=shares.to_numpy(), y=shares.index, orientation="h",
                           marker_color=[event_color(e) for e in shares.index],
                           text=[f"{v:.2f}%" for v in shares], textposition="auto",
                           hovertemplate="%{y}: %{x:.2f}%<extra></extra>"))
    fig.update_xaxes(title="share of interactions", ticksuffix="%")
    return _layout(fig, "Event mix")


def data_quality(checks: pd.DataFrame) -> go.Figure:
    """data_quality (check, rows): rows read, dropped per rule, kept."""
    fig = go.Figure(go.Bar(x=checks["rows"], y=checks["check"], orientation="h", marker_color="#4C78A8",
                           text=[f"{r:,}" for r in checks["rows"]], textposition="auto",
                           hovertemplate="%{y}: %{x:,} rows<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(type="log", title="rows (log scale)")
    return _layout(fig, "Data quality: rows per cleaning rule", height=300)


def top_products(top: pd.DataFrame, n: int = 20) -> go.Figure:
    """top_products: the most active products of the run."""
    head = top.nsmallest(n, "rank")
    fig = go.Figure(go.Bar(x=head["interactions"], y=head["product_id"].astype(str), orientation="h",
                           marker_color="#72B7B2", customdata=head[["users", "category"]],
                           hovertemplate="product %{y} (%{customdata[1]}): %{x:,} interactions, "
                                         "%{customdata[0]:,} users<extra></extra>"))
    fig.update_yaxes(type="category", autorange="reversed", title="product")
    fig.update_xaxes(title="interactions")
    return _layout(fig, f"Most active products (top {len(head)})", height=max(300, 22 * len(head) + 80))


def score_components(users: pd.DataFrame, weights: Mapping[str, float]) -> go.Figure:
    """Why each user ranks where they do: engagement score split into weight x normalized component.

    users: rank, customer_id and the norm_* columns of user_features, in the order to draw them.
    """
    labels = [f"#{r} · {c}" for r, c in zip(users["rank"], users["customer_id"])]
    fig = go.Figure([go.Bar(y=labels, x=weights.get(name, 0.0) * users[column], name=label, orientation="h",
                            marker_color=color,
                            hovertemplate="%{y}: " + label + " %{x:.4f}<extra></extra>")
                     for name, (label, column, color) in COMPONENTS.items()])
    fig.update_yaxes(type="category", autorange="reversed", title=None)
    fig.update_xaxes(title="engagement score = Σ weight × normalized component")
    return _layout(fig, "Why these users: score by component", height=max(220, 20 * len(users) + 140),
                   barmode="stack", legend_traceorder="normal")


def stage_seconds(seconds: Mapping[str, float]) -> go.Figure:
    """runs.summary["seconds"]: wall time of each pipeline stage."""
    fig = go.Figure(go.Bar(x=list(seconds.values()), y=list(seconds), orientation="h", marker_color="#54A24B",
                           text=[f"{s:.2f} s" for s in seconds.values()], textposition="auto",
                           hovertemplate="%{y}: %{x:.2f} s<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="seconds")
    return _layout(fig, f"Seconds per stage (total {sum(seconds.values()):.1f} s)",
                   height=max(240, 22 * len(seconds) + 90))


PREFERRED_METRICS = ("recall_micro", "hit_rate", "ndcg", "recall_macro", "precision_micro")


def default_metric(metrics: list[str]) -> str:
    return next((m for m in PREFERRED_METRICS if m in metrics), sorted(metrics)[0])


def evaluation(table: pd.DataFrame, metric: str | None = None) -> go.Figure:
    """evaluation (strategy, k, metric, value): strategies side by side, one bar per k.

    Without `metric`, every metric is drawn and a dropdown picks the one shown (so the static report can
    switch metrics too); the default is the pipeline's headline, recall_micro.
    """
    metrics = [metric] if metric else sorted(table["metric"].unique())
    shown = metric or default_metric(metrics)
    ks = sorted(table["k"].unique())
    palette = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#72B7B2"]
    fig = go.Figure()
    for m in metrics:
        part = table[table["metric"] == m]
        for i, k in enumerate(ks):
            rows = part[part["k"] == k].sort_values("label")
            fig.add_trace(go.Bar(x=rows["label"], y=rows["value"], name=f"k = {k}", visible=m == shown,
                                 marker_color=palette[i % len(palette)], legendgroup=f"k{k}",
                                 text=[f"{v:.3g}" for v in rows["value"]], textposition="outside",
                                 hovertemplate="%{x}, k=" + str(k) + ": %{y:.4f}<extra>" + m + "</extra>"))
    if len(metrics) > 1:
        buttons = [dict(label=m, method="update",
                        args=[{"visible": [t == m for t in metrics for _ in ks]}, {"yaxis.title.text": m}])
                   for m in metrics]
        fig.update_layout(updatemenus=[dict(buttons=buttons, active=metrics.index(shown), x=1, xanchor="right",
                                            y=1.12, yanchor="bottom", direction="down", showactive=True)])
    fig.update_yaxes(title=shown, rangemode="tozero")
    fig.update_xaxes(title="strategy")
    _layout(fig, "Offline evaluation on the temporal holdout" if metric is None else f"{metric} by strategy",
            height=400, barmode="group")
    # The metric menu takes the top right: the legend goes under the chart.
    fig.update_layout(margin=dict(t=80), legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0))
    return fig


def score_agreement(scores: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Engagement scores of users present in two runs (a sample of them), one point per user."""
    fig = go.Figure(go.Scattergl(x=scores["score_a"], y=scores["score_b"], mode="markers",
                                 marker=dict(size=4, opacity=0.4, color="#4C78A8"),
                                 hovertemplate="%{x:.4f} → %{y:.4f}<extra></extra>"))
    top = float(max(scores["score_a"].max(), scores["score_b"].max(), 0.0)) if len(scores) else 1.0
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dot", color="#888"),
                             showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(title=f"engagement score, {label_a}")
    fig.update_yaxes(title=f"engagement score, {label_b}")
    return _layout(fig, "Engagement scores of common users", showlegend=False)


# --- Offline evaluation: recall against reach, and lift over random -------------------------------------

STRATEGY_COLORS = {"affinity": "#F58518", "als": "#B279A2", "engagement": "#4C78A8", "activity": "#72B7B2",
                   "random": "#9D755D"}


def _metric_at(table: pd.DataFrame, metric: str, k: int) -> pd.Series:
    """One metric at one k, indexed by the label people see (a strategy and its cap, if any)."""
    rows = table[(table["metric"] == metric) & (table["k"] == k)]
    return rows.set_index("label")["value"]


def recall_vs_coverage(table: pd.DataFrame, k: int = 100, published: str | None = None) -> go.Figure:
    """evaluation rows: recall_micro@k against user_coverage@k, one point per strategy (capped variants
    hollow, joined to their uncapped run by a dotted line), with the reachable ceiling drawn in: no
    ranking of known users gets above it. Recall is on a log axis because the strategies sit orders of
    magnitude below the ceiling; a zero recall is drawn on the axis floor as a downward triangle. The
    menu switches to a linear axis, where the distance to the ceiling shows as it is."""
    recall, coverage = _metric_at(table, "recall_micro", k), _metric_at(table, "user_coverage", k)
    ceiling = _metric_at(table, "reachable_ceiling", k)
    top = float(ceiling.max()) if len(ceiling) else float(recall.max()) if len(recall) else 0.0
    positive = recall[recall > 0]
    floor = float(positive.min()) / 3 if len(positive) else max(top, 1e-6) / 1e4
    drawn = recall.where(recall > 0, floor)
    base_of = dict(zip(table["label"], table["strategy"]))
    names = sorted(set(recall.index) & set(coverage.index), key=lambda n: (base_of[n], n))
    fig = go.Figure()
    for name in names:
        base = base_of[name]
        capped = name != base
        color = STRATEGY_COLORS.get(base, OTHER_COLOR)
        if capped and base in names:
            fig.add_trace(go.Scatter(x=[coverage[base], coverage[name]], y=[drawn[base], drawn[name]],
                                     mode="lines", line=dict(color=color, dash="dot", width=1),
                                     showlegend=False, hoverinfo="skip"))
        symbol = "triangle-down" if recall[name] <= 0 else ("diamond" if name == published else "circle")
        fig.add_trace(go.Scatter(
            x=[coverage[name]], y=[drawn[name]], name=f"{name} (published)" if name == published else name,
            mode="markers+text" if name == published else "markers", text=[name],
            textposition="top left" if coverage[name] > 0.5 else "top right",
            marker=dict(size=16 if name == published else 12, color="white" if capped else color,
                        line=dict(color=color, width=2), symbol=symbol),
            hovertemplate=f"{name}<br>coverage %{{x:.2%}}<br>recall@{k} {recall[name]:.4%}<extra></extra>"))
    # A trace rather than add_hline: its label stays put when the menu switches the axis type.
    fig.add_trace(go.Scatter(x=[-0.03, 1.05], y=[top, top], mode="lines+text", name="reachable ceiling",
                             line=dict(color="#C0392B", dash="dash"), text=[f"reachable ceiling {top:.2%}", ""],
                             textposition="bottom right", textfont=dict(color="#C0392B"),
                             hovertemplate=f"reachable ceiling {top:.4%}<extra></extra>"))
    log_range = [np.log10(floor) - 0.3, np.log10(max(top, floor)) + 0.5]
    fig.update_xaxes(title=f"user coverage (share of users in any top {k})", tickformat=".0%",
                     range=[-0.03, 1.05])
    fig.update_yaxes(title=f"recall@{k} (micro), log scale", tickformat=".3~%", type="log", range=log_range)
    fig.update_layout(updatemenus=[dict(
        buttons=[dict(label="log recall", method="relayout",
                      args=[{"yaxis.type": "log", "yaxis.range": log_range,
                             "yaxis.title.text": f"recall@{k} (micro), log scale"}]),
                 dict(label="linear recall", method="relayout",
                      args=[{"yaxis.type": "linear", "yaxis.range": [0, top * 1.1],
                             "yaxis.title.text": f"recall@{k} (micro)"}])],
        x=1, xanchor="right", y=1.12, yanchor="bottom", direction="down", showactive=True)])
    _layout(fig, f"Recall@{k} against reach, with the reachable ceiling", height=440)
    fig.update_layout(margin=dict(t=80), legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0))
    return fig


def lift_over_random(table: pd.DataFrame) -> go.Figure:
    """evaluation rows: lift_over_random per strategy and k, with 1 (no better than chance) marked."""
    rows = table[table["metric"] == "lift_over_random"]
    ks = sorted(rows["k"].unique())
    order = (rows[rows["k"] == max(ks)].sort_values("value")["label"].tolist() if ks else [])
    palette = ["#4C78A8", "#F58518", "#54A24B"]
    fig = go.Figure([go.Bar(y=order, x=_metric_at(table, "lift_over_random", k).reindex(order).to_numpy(),
                            name=f"k = {k}", orientation="h", marker_color=palette[i % len(palette)],
                            text=[f"{v:.1f}×" for v in _metric_at(table, "lift_over_random", k).reindex(order)],
                            textposition="outside",
                            hovertemplate="%{y}, k=" + str(k) + ": %{x:.2f}× random<extra></extra>")
                     for i, k in enumerate(ks)])
    fig.add_vline(x=1, line=dict(color="#C0392B", dash="dash"), annotation_text="random = 1×",
                  annotation_position="top")
    fig.update_xaxes(title="recall ÷ recall of random audiences (expected)",
                     range=[0, 1.2 * max(float(rows["value"].max()) if len(rows) else 1.0, 1.0)])  # label room
    fig.update_yaxes(type="category", title=None)
    return _layout(fig, "Lift over random", height=max(260, 18 * len(order) * max(len(ks), 1) + 120),
                   barmode="group")


def recall_certainty(certain: pd.DataFrame, scored_as: str) -> go.Figure:
    """reports.tables.certainty_view as dots with 95% whiskers: each strategy's difference in recall@100 to the
    run's strategy (percentage points; the run's own dot sits at 0 with its own interval). A whisker that
    crosses zero is a difference chance alone could give."""
    rows = certain.iloc[::-1]  # best at the top
    own = rows["strategy"] == scored_as
    whisker = rows["versus_run_pm"].where(~own, rows["recall_pm"]).fillna(0)
    fig = go.Figure(go.Scatter(
        x=rows["versus_run"], y=rows["strategy"], mode="markers",
        marker=dict(size=10, color=np.where(own, "#F58518", "#4C78A8")),
        error_x=dict(type="data", array=whisker, color="#30507A"), customdata=whisker,
        hovertemplate="%{y}: %{x:+.3f} pp ± %{customdata:.3f}<extra></extra>"))
    fig.add_vline(x=0, line_dash="dot", line_color="#888")
    return _layout(fig, f"Recall@100 against {scored_as}, with 95% intervals", height=90 + 34 * max(len(rows), 3),
                   xaxis_title="difference in recall@100 (percentage points)", yaxis_title=None, showlegend=False)
