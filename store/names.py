"""The store's basic rules, importable without pandas or sqlite-utils (the API workers' startup and RSS
depend on that): where the database is, which run is current, how scores are scaled, how deep a run goes,
which user_features columns hold the engagement components, and how a moment is written."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_DB = "data/audiences.db"
SCORE_SCALE = 1_000_000_000  # scores are stored as integers of 1e-9 (store.format prints 9 decimals)
MAX_DEPTH = 1000  # the deepest audience a run may keep (the `ranks` table of the audiences view)
CURRENT_RUN_SQL = ("SELECT run_id FROM runs WHERE status = 'succeeded' AND published_at IS NOT NULL "
                   "ORDER BY published_at DESC, run_id DESC LIMIT 1")
# Engagement component (the keys of runs.params["component_weights"]) -> its normalized user_features column.
COMPONENT_COLUMNS = {"total": "norm_total", "unique": "norm_unique", "avg_event": "norm_avg_event",
                     "frequency": "norm_frequency", "recency": "norm_recency"}


def utc_now() -> str:
    """Now, as every timestamp in the store is written: ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def strategy_label(strategy: str, cap: int | None) -> str:
    """How a strategy's identity (its name and the exposure cap it was scored under) is shown to people."""
    return strategy if cap is None or cap != cap else f"{strategy} (cap {int(cap)})"


def published_label(labels: set[str], params: dict) -> str:
    """The label of the rows that score a run's own audiences: its strategy under its cap when the run was
    evaluated under that cap, else the uncapped strategy."""
    strategy = params.get("strategy", "engagement")
    capped = strategy_label(strategy, params.get("max_audiences_per_user"))
    return capped if capped in labels else strategy


def db_path(path: str | os.PathLike | None = None) -> Path:
    """The database path: the argument, else $AUDIENCE_DB, else data/audiences.db."""
    return Path(path or os.environ.get("AUDIENCE_DB") or DEFAULT_DB)
