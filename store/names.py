"""The store's basic rules, importable without pandas or sqlite-utils (the API workers' startup and RSS
depend on that): where the database is, which run is current, how scores are scaled."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "data/audiences.db"
SCORE_SCALE = 1_000_000_000  # scores are stored as integers of 1e-9
CURRENT_RUN_SQL = ("SELECT run_id FROM runs WHERE status = 'succeeded' AND published_at IS NOT NULL "
                   "ORDER BY published_at DESC, run_id DESC LIMIT 1")


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
