"""The SQLite schema every part of the workbench relies on (see ../shared/DESIGN.md).

The contract tables keep the names and columns of DESIGN.md. Two tables are ours:

* ``audience_lists`` holds one packed row per (run, product): the ranked customer ids and scores as
  fixed-width ASCII fields. Writing 20M plain rows costs 40-50 s; one packed row per product costs 2-3 s.
* ``audiences`` is the contract's view over it, expanded with the tiny ``ranks`` table, so a plain
  ``SELECT ... FROM audiences WHERE run_id = ? AND product_id = ?`` stays an index lookup.
"""
from __future__ import annotations

import sqlite_utils

from store.names import COMPONENT_COLUMNS, MAX_DEPTH, SCORE_SCALE

TABLES: dict[str, dict] = {
    "runs": dict(
        columns={"run_id": int, "created_at": str, "finished_at": str, "status": str, "stage": str,
                 "progress": float, "published_at": str, "params": str, "source": str, "error": str,
                 "summary": str, "pid": int, "held": str},
        pk="run_id"),
    "stats": dict(columns={"run_id": int, "name": str, "value": float}, pk=("run_id", "name")),
    "data_quality": dict(columns={"run_id": int, "check": str, "rows": int, "position": int},
                         pk=("run_id", "check")),
    "user_features": dict(
        columns={"run_id": int, "customer_id": int, "total_interactions": int, "unique_products": int,
                 "avg_event_score": float, "interaction_frequency": float, "recency_days": int,
                 "engagement_score": float, "days_active": int, "last_event": str,
                 **{column: float for column in COMPONENT_COLUMNS.values()},
                 "engagement_rank": int, "audience_count": int},
        pk=("run_id", "customer_id")),
    "audience_lists": dict(
        columns={"run_id": int, "product_id": int, "size": int, "id_width": int, "score_width": int,
                 "customer_ids": bytes, "scores": bytes},
        pk=("run_id", "product_id")),
    "fallback_audience": dict(columns={"run_id": int, "rank": int, "customer_id": int, "score": float},
                              pk=("run_id", "rank")),
    # strategy is the base name; cap is NULL or the per-user exposure cap the row was scored under.
    "evaluation": dict(columns={"run_id": int, "strategy": str, "cap": int, "k": int, "metric": str,
                                "value": float}, pk=None),
    # Propensity scores on the outer holdout: expected (sum of scores) vs observed engagements per decile.
    "calibration": dict(
        columns={"run_id": int, "decile": int, "entries": int, "expected": float, "observed": float,
                 "min_score": float, "max_score": float, "observed_over_expected": float},
        pk=("run_id", "decile")),
    # The holdout's gain curve of each strategy: hits of the top n of every evaluated audience (n up to the
    # evaluation depth), as a share of all later engagements of those products and of the hits at full depth.
    "gain": dict(columns={"run_id": int, "strategy": str, "n": int, "hits": int, "share_of_truth": float,
                          "share_of_list": float}, pk=("run_id", "strategy", "n")),
    # "Why this user": per product of a propensity run, its entries' packed facts (store/reasons.py).
    "audience_reasons": dict(columns={"run_id": int, "product_id": int, "size": int, "reasons": bytes},
                             pk=("run_id", "product_id")),
    # With a catalogue: the audience of each category, and every catalogue product's category.
    "category_audiences": dict(columns={"run_id": int, "category": str, "rank": int, "customer_id": int,
                                        "score": float}, pk=("run_id", "category", "rank")),
    "catalogue_products": dict(columns={"run_id": int, "product_id": int, "category": str},
                               pk=("run_id", "product_id")),
    "products": dict(
        columns={"run_id": int, "product_id": int, "category": str, "interactions": int, "users": int,
                 "first_seen": str, "last_seen": str},
        pk=("run_id", "product_id")),
    # Chart tables: small, precomputed by the pipeline so no page aggregates raw events.
    "cohort_retention": dict(
        columns={"run_id": int, "cohort_month": str, "months_since": int, "cohort_users": int,
                 "active_users": int, "share": float},
        pk=("run_id", "cohort_month", "months_since")),
    "daily_events": dict(columns={"run_id": int, "day": str, "event": str, "interactions": int},
                         pk=("run_id", "day", "event")),
    "activity_histogram": dict(columns={"run_id": int, "interactions": int, "users": int},
                               pk=("run_id", "interactions")),
    "product_months": dict(
        columns={"run_id": int, "month": str, "new_products": int, "continuing_products": int},
        pk=("run_id", "month")),
    "top_products": dict(
        columns={"run_id": int, "rank": int, "product_id": int, "interactions": int, "users": int,
                 "category": str},
        pk=("run_id", "rank")),
    "stress_runs": dict(
        columns={"stress_id": int, "run_id": int, "started_at": str, "finished_at": str, "users": int,
                 "duration_s": float, "requests": int, "failures": int, "rps": float, "p50_ms": float,
                 "p95_ms": float, "p99_ms": float, "report_html": str, "per_endpoint": str},
        pk="stress_id"),
}

# Per-run bulk tables: pruned for old runs (see store.writer.prune_runs); the rest is kept forever.
BULK_TABLES = ("audience_lists", "user_features", "products", "category_audiences", "catalogue_products",
               "audience_reasons")

AUDIENCES_VIEW = f"""
SELECT l.run_id AS run_id, l.product_id AS product_id, r.rank AS rank,
       CAST(substr(l.customer_ids, (r.rank - 1) * l.id_width + 1, l.id_width) AS INTEGER) AS customer_id,
       CAST(substr(l.scores, (r.rank - 1) * l.score_width + 1, l.score_width) AS INTEGER)
           / {SCORE_SCALE}.0 AS score
FROM audience_lists AS l JOIN ranks AS r ON r.rank <= l.size
"""


def _migrate_evaluation(db: sqlite_utils.Database) -> None:
    """Databases written before the cap column named capped rows 'strategy+capK': split that into data."""
    if "cap" in db["evaluation"].columns_dict:
        return
    db["evaluation"].transform(types={"run_id": int}, pk=None)
    db["evaluation"].add_column("cap", int)
    db.execute("UPDATE evaluation SET cap = CAST(substr(strategy, instr(strategy, '+cap') + 4) AS INTEGER), "
               "strategy = substr(strategy, 1, instr(strategy, '+cap') - 1) WHERE instr(strategy, '+cap') > 0")


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create every table, index and view that does not exist yet (idempotent)."""
    for name, spec in TABLES.items():
        if not db[name].exists():
            db[name].create(spec["columns"], pk=spec["pk"])
    _add_missing_columns(db)
    if not db["ranks"].exists():
        db["ranks"].create({"rank": int}, pk="rank")
        db["ranks"].insert_all({"rank": r} for r in range(1, MAX_DEPTH + 1))
    db["runs"].create_index(["status", "published_at"], if_not_exists=True)
    _migrate_evaluation(db)
    db["evaluation"].create_index(["run_id"], if_not_exists=True)
    # No index on engagement_rank: nothing looks users up by rank, and keeping one costs random B-tree
    # inserts for every user of every run (most of user_features' 50 s write at 5M rows).
    db.execute("DROP INDEX IF EXISTS idx_user_features_run_id_engagement_rank")
    db.execute("DROP INDEX IF EXISTS idx_products_run_id_interactions")  # unused; the same random inserts
    db.create_view("audiences", AUDIENCES_VIEW, ignore=True)


# Columns added after databases were already in use: a database written by an older version gets them
# with ALTER TABLE ADD COLUMN (additive: old rows read NULL, old readers ignore the new column).
ADDED_COLUMNS = {"runs": ("held",)}


def _add_missing_columns(db: sqlite_utils.Database) -> None:
    for table, names in ADDED_COLUMNS.items():
        have = set(db[table].columns_dict)
        for name in names:
            if name not in have:
                db[table].add_column(name, TABLES[table]["columns"][name])
