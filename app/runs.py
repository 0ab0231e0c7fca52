"""The Runs page's history table and the choice of what to publish or roll back to."""
from __future__ import annotations

from datetime import datetime

import pandas as pd

KEY_STATS = ["total_interactions", "unique_users", "unique_products", "sparsity", "one_time_users_pct",
             "retention_rate_pct", "new_products_pct", "mean_interactions_per_user"]


def _seconds(run: dict) -> float | None:
    if not run.get("finished_at"):
        return None
    return (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["created_at"])).total_seconds()


def history(runs: list[dict], current_id: int | None) -> pd.DataFrame:
    """One row per run, newest first: status, whether published, duration, key counts and source."""
    table = pd.DataFrame([{
        "run": r["run_id"],
        "status": r["status"],
        "published": "● current" if r["run_id"] == current_id else ("was published" if r["published_at"] else ""),
        "created (UTC)": r["created_at"][:19].replace("T", " "),
        "seconds": _seconds(r),
        "rows read": r["summary"].get("rows_read"),
        "rows clean": r["summary"].get("rows_clean"),
        "users": r["summary"].get("users"),
        "products": r["summary"].get("products"),
        "strategy": r["params"].get("strategy"),
        "source": r["source"],
        "stage": r["stage"] if r["status"] == "running" else "",
        "error": r["error"] or "",
    } for r in runs])
    # A running stage or an error column only when some run has one.
    return table.drop(columns=[c for c in ("stage", "error") if not table[c].astype(bool).any()])


def rollback_target(runs: list[dict], current_id: int | None) -> dict | None:
    """The run published before the current one: what "roll back" goes back to."""
    earlier = [r for r in runs if r["published_at"] and r["status"] == "succeeded" and r["run_id"] != current_id]
    return max(earlier, key=lambda r: r["published_at"]) if earlier else None
