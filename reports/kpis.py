"""A run's statistics as people read them: the one formatter (app pages and the HTML report), and the KPI
cards of the Overview page and the report (value and change since the previous run)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def format_stat(name: str, value: float | None, signed: bool = False) -> str:
    """A statistic as people read it: counts with thousands separators, percentages to 2 decimals (a change
    in points), sparsity as the share it is to 1e-6 (the published 0.999994), means to 2 decimals.
    `signed` spells a change (+/−). Missing or NaN: an empty string."""
    if value is None or value != value:
        return ""
    sign = "+" if signed else ""
    if name == "sparsity":
        return f"{value:{sign}.6f}"
    if name.endswith("_pct") or name.startswith("event_pct_"):
        return f"{value:{sign}.2f}" + (" pp" if signed else "%")
    if name.endswith("_per_user"):
        return f"{value:{sign}.2f}"
    return f"{value:{sign},.0f}"


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    delta: str | None
    delta_color: str  # st.metric: "normal" (up is good), "inverse" (up is bad)
    help: str


# stat name -> (label, delta colour, help)
KPIS = {
    "total_interactions": ("Interactions", "normal", "Rows left after cleaning."),
    "unique_users": ("Users", "normal", "Distinct customers."),
    "unique_products": ("Products", "normal", "Distinct products."),
    "sparsity": ("Sparsity", "inverse", "Share of the user × product matrix with no interaction."),
    "mean_interactions_per_user": ("Interactions per user", "normal", "Mean interactions per user."),
    "one_time_users_pct": ("One-time users", "inverse", "Users with exactly one interaction."),
    "retention_rate_pct": ("Retention", "normal", "Users active before the holdout split who came back after it."),
    "new_products_pct": ("New products", "inverse", "Products active after the split that were never seen before it."),
}


def kpis(stats: Mapping[str, float], previous: Mapping[str, float] | None) -> list[Kpi]:
    out = []
    for name, (label, color, help_text) in KPIS.items():
        now = stats.get(name)
        if now is None:
            continue
        before = None if previous is None else previous.get(name)
        delta = None if before is None else format_stat(name, now - before, signed=True)
        out.append(Kpi(label, format_stat(name, now), delta, color, help_text))
    return out
