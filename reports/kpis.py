"""KPI cards of a run (Overview page and report): value and change since the previous run."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    delta: str | None
    delta_color: str  # st.metric: "normal" (up is good), "inverse" (up is bad)
    help: str


# stat name -> (label, kind, delta colour, help); kind: "count", "mean", "pct" (already in %), "share" (0..1)
KPIS = {
    "total_interactions": ("Interactions", "count", "normal", "Rows left after cleaning."),
    "unique_users": ("Users", "count", "normal", "Distinct customers."),
    "unique_products": ("Products", "count", "normal", "Distinct products."),
    "sparsity": ("Sparsity", "share", "inverse", "Share of the user × product matrix with no interaction."),
    "mean_interactions_per_user": ("Interactions per user", "mean", "normal", "Mean interactions per user."),
    "one_time_users_pct": ("One-time users", "pct", "inverse", "Users with exactly one interaction."),
    "retention_rate_pct": ("Retention", "pct", "normal",
                           "Users active before the holdout split who came back after it."),
    "new_products_pct": ("New products", "pct", "inverse",
                         "Products active after the split that were never seen before it."),
}


def _format(kind: str, v: float, change: bool = False) -> str:
    """A KPI value, or (change=True) a signed change in it; shares and percentages change in points."""
    sign, unit = ("+", " pp") if change else ("", "%")
    if kind == "count":
        return f"{v:{sign},.0f}"
    if kind == "mean":
        return f"{v:{sign}.2f}"
    return f"{100 * v if kind == 'share' else v:{sign}.{4 if kind == 'share' else 2}f}{unit}"


def kpis(stats: Mapping[str, float], previous: Mapping[str, float] | None) -> list[Kpi]:
    out = []
    for name, (label, kind, color, help_text) in KPIS.items():
        now = stats.get(name)
        if now is None:
            continue
        before = None if previous is None else previous.get(name)
        out.append(Kpi(label, _format(kind, now), None if before is None else _format(kind, now - before, change=True),
                       color, help_text))
    return out
