"""Publish gates: a finished run replaces the served one automatically only if it is not clearly worse.

A run is compared with the run being served (the current run). It is *held* (succeeded, not published,
the reasons stored in ``runs.held``) when

* its clean rows, users or products fall below ``min_share`` of the current run's (default 50%);
* cleaning dropped more than ``max_dropped`` of the rows it read (default 20%);
* the holdout recall@100 of the strategy it would publish is significantly below the current run's
  (one-sided two-proportion z-test on hits / truth pairs, level ``recall_alpha``, default 0.05);
* a statistic is out of its sane range (NaN or infinite, sparsity outside [0, 1], a percentage outside
  [0, 100], a negative count).

The first run of a database (nothing served yet) has nothing to compare with and publishes.
`python -m pipeline publish --run ID` publishes a held run anyway.

The functions on `RunFigures` are pure (tested with hand-worked tables); `run_figures` reads them from
the database, for the run being finished and for the current run alike.
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass

from store import queries
from store.names import published_label

RECALL_K = 100  # the headline cut-off: the strategy to publish is chosen by recall@100
# Statistics that count things: never negative.
COUNT_STATS = ("total_interactions", "unique_users", "unique_products", "early_period_users",
               "late_period_users", "returning_users", "early_period_products", "late_period_products",
               "new_products_in_test")


@dataclass(frozen=True)
class RunFigures:
    """What the gates look at, for one run."""
    rows_read: int
    rows_clean: int
    users: int
    products: int
    stats: dict[str, float]
    recall_hits: int | None = None    # hits of the run's strategy at k=100 on its holdout (None: no holdout)
    recall_truth: int | None = None   # truth pairs of that holdout


@dataclass(frozen=True)
class Thresholds:
    min_share: float = 0.5
    max_dropped: float = 0.2
    recall_alpha: float = 0.05


def share_reasons(new: RunFigures, current: RunFigures, min_share: float) -> list[str]:
    """Clean rows, users and products each at least min_share of the current run's."""
    reasons = []
    for label, mine, theirs in (("clean rows", new.rows_clean, current.rows_clean),
                                ("users", new.users, current.users),
                                ("products", new.products, current.products)):
        if mine < min_share * theirs:
            reasons.append(f"{label} {mine:,} are {_pct(mine / theirs)} of the published run's {theirs:,} "
                           f"(at least {_pct(min_share)} required)")
    return reasons


def dropped_reasons(new: RunFigures, max_dropped: float) -> list[str]:
    """Cleaning may drop at most max_dropped of the rows read (unknown events are kept, not dropped)."""
    dropped = new.rows_read - new.rows_clean
    if new.rows_read and dropped / new.rows_read > max_dropped:
        return [f"cleaning dropped {dropped:,} of {new.rows_read:,} rows ({_pct(dropped / new.rows_read)}, "
                f"at most {_pct(max_dropped)} allowed); see the data_quality checks"]
    return []


def two_proportion_z(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """z statistic of hits_a/n_a - hits_b/n_b with the pooled variance (0 when it cannot be told apart)."""
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return 0.0 if se == 0 else (hits_a / n_a - hits_b / n_b) / se


def lower_tail_p(z: float) -> float:
    """P(Z <= z) for a standard normal Z."""
    return 0.5 * math.erfc(-z / math.sqrt(2))


def recall_reasons(new: RunFigures, current: RunFigures, alpha: float) -> list[str]:
    """Held when the new recall@100 is below the current one with one-sided p < alpha.

    Truth pairs of one user are not independent, so the test is a screen for a clear drop, not an exact
    level; a run or a current run without a holdout has nothing to test and passes."""
    if not new.recall_truth or not current.recall_truth or new.recall_hits is None \
            or current.recall_hits is None:
        return []
    z = two_proportion_z(new.recall_hits, new.recall_truth, current.recall_hits, current.recall_truth)
    p = lower_tail_p(z)
    if p >= alpha:
        return []
    return [f"holdout recall@{RECALL_K} {_pct(new.recall_hits / new.recall_truth, 2)} "
            f"({new.recall_hits:,}/{new.recall_truth:,}) is significantly below the published run's "
            f"{_pct(current.recall_hits / current.recall_truth, 2)} "
            f"({current.recall_hits:,}/{current.recall_truth:,}): one-sided two-proportion z-test "
            f"z = {z:.2f}, p = {p:.3g} < {alpha:g}"]


def stat_reasons(stats: dict[str, float]) -> list[str]:
    """Statistics outside the range their definition allows (a sign of a bug or of broken input)."""
    reasons = []
    for name, value in stats.items():
        if not math.isfinite(value):
            reasons.append(f"stat {name} is {value}")
        elif name == "sparsity" and not 0 <= value <= 1:
            reasons.append(f"stat sparsity is {value:g}, outside [0, 1]")
        elif (name.endswith("_pct") or name.startswith("event_pct_")) and not 0 <= value <= 100:
            reasons.append(f"stat {name} is {value:g}, outside [0, 100]")
        elif name in COUNT_STATS and value < 0:
            reasons.append(f"stat {name} is {value:g}, a count below 0")
    return reasons


def gate_reasons(new: RunFigures, current: RunFigures | None, limits: Thresholds) -> list[str]:
    """Every gate the new run fails against the current run ([] = publish). No current run: publish."""
    if current is None:
        return []
    return (share_reasons(new, current, limits.min_share) + dropped_reasons(new, limits.max_dropped)
            + recall_reasons(new, current, limits.recall_alpha) + stat_reasons(new.stats))


def _pct(share: float, digits: int = 1) -> str:
    return f"{100 * share:.{digits}f}%"


# --- reading the figures ----------------------------------------------------------------------------


def run_figures(con: sqlite3.Connection, run_id: int) -> RunFigures:
    """A run's figures from its data_quality, stats, params and evaluation rows (kept for pruned runs)."""
    checks = dict(con.execute('SELECT "check", rows FROM data_quality WHERE run_id = ?', [run_id]).fetchall())
    stats = queries.stats(con, run_id)
    hits, truth = _recall_counts(con, run_id, stats)
    return RunFigures(rows_read=int(checks.get("rows_read", 0)), rows_clean=int(checks.get("rows_clean", 0)),
                      users=int(stats.get("unique_users", 0)), products=int(stats.get("unique_products", 0)),
                      stats=stats, recall_hits=hits, recall_truth=truth)


def _recall_counts(con: sqlite3.Connection, run_id: int, stats: dict[str, float]) -> tuple[int | None, int | None]:
    """(hits, truth pairs) at k=100 of the rows that score the run's own audiences (store.names'
    published_label: its strategy, under its cap when evaluated so): recall_micro x truth pairs."""
    row = con.execute("SELECT params FROM runs WHERE run_id = ?", [run_id]).fetchone()
    params = json.loads(row[0]) if row and row[0] else {}
    rows = queries.evaluation(con, run_id)
    truth = stats.get("holdout_truth_pairs")
    if rows.empty or not truth:
        return None, None
    label = published_label(set(rows["label"]), params)
    recall = rows.loc[(rows["label"] == label) & (rows["k"] == RECALL_K) & (rows["metric"] == "recall_micro"),
                      "value"]
    if recall.empty or not 0 <= float(recall.iloc[0]) <= 1:  # NaN included: nothing to test on
        return None, None
    return round(float(recall.iloc[0]) * truth), int(truth)


def check(con: sqlite3.Connection, run_id: int, limits: Thresholds) -> list[str]:
    """The reasons to hold run_id instead of publishing it ([] = publish)."""
    current = queries.current_run_id(con)
    if current is None or current == run_id:
        return []
    return gate_reasons(run_figures(con, run_id), run_figures(con, current), limits)
