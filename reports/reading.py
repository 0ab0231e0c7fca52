"""A plain-language reading of a run's churn and sparsity statistics, for the app and the report."""
from __future__ import annotations

from collections.abc import Mapping

from reports.kpis import format_stat


def reading(stats: Mapping[str, float]) -> list[str]:
    """Short paragraphs (Markdown) on what the figures mean for targeting."""
    s = {k: float(v) for k, v in stats.items()}
    users, products = s.get("unique_users", 0.0), s.get("unique_products", 0.0)
    cells = users * products
    f = {name: format_stat(name, s.get(name, 0.0)) for name in (
        "one_time_users_pct", "power_users_pct", "sparsity", "retention_rate_pct", "new_products_pct",
        "total_interactions", "unique_users")}
    return [
        f"**Most users have almost no history.** {f['one_time_users_pct']} of the {f['unique_users']} users "
        f"interacted exactly once and the median user has {s.get('median_interactions_per_user', 0):g} "
        f"interaction(s); only {f['power_users_pct']} have more than five. Collaborative filtering "
        "learns a user's taste from their past; here most pasts are a single row.",
        f"**The user × product matrix is almost empty.** {f['total_interactions']} interactions fill "
        f"{s.get('total_interactions', 0) / cells if cells else 0:.6%} of its {cells:,.0f} cells "
        f"(sparsity {f['sparsity']}). Two users rarely share even one product, so “users like you” "
        "has very little overlap to stand on.",
        f"**Both sides churn.** Only {f['retention_rate_pct']} of the users active before the holdout "
        f"split came back after it, and {f['new_products_pct']} of the products active after it had "
        "never been seen before. The people and products of the next period are mostly new: cold start is the "
        "rule, not the exception.",
        "**What this means for targeting.** Rank users by signals every user has — how much, how varied, how "
        "strong, how often and how recently they engage (the engagement score) — leave out those who already "
        "interacted with the product, and serve the fallback audience to products the run has not seen. Judge "
        "any change on the temporal holdout, not on the period it was fitted on.",
    ]
