"""Publish gates: each rule on hand-worked figures, how the figures are read, and a held run end to end."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from pipeline import gates
from pipeline.cli import main
from pipeline.gates import RunFigures, Thresholds
from store import queries, writer
from tests.conftest import write_events

CURRENT = RunFigures(rows_read=1000, rows_clean=1000, users=100, products=50, stats={},
                     recall_hits=150, recall_truth=1000)


def figures(rows_read=1000, rows_clean=1000, users=100, products=50, hits=150, truth=1000, stats=None):
    return RunFigures(rows_read, rows_clean, users, products, stats or {}, hits, truth)


@pytest.mark.parametrize("new, min_share, expected", [
    (figures(rows_clean=500, users=50, products=25), 0.5, []),                 # exactly half passes
    (figures(rows_clean=499), 0.5,
     ["clean rows 499 are 49.9% of the published run's 1,000 (at least 50.0% required)"]),
    (figures(users=10, products=5), 0.5,
     ["users 10 are 10.0% of the published run's 100 (at least 50.0% required)",
      "products 5 are 10.0% of the published run's 50 (at least 50.0% required)"]),
    (figures(rows_clean=1, users=1, products=1), 0.0, []),                     # --min-share 0: no floor
    (figures(rows_clean=5000, users=900, products=80), 0.5, []),               # more data is never held
])
def test_share_gate(new, min_share, expected):
    assert gates.share_reasons(new, CURRENT, min_share) == expected


@pytest.mark.parametrize("rows_read, rows_clean, expected", [
    (1000, 800, []),                                                           # 20.0% dropped: at the limit
    (1000, 799, ["cleaning dropped 201 of 1,000 rows (20.1%, at most 20.0% allowed); see the data_quality checks"]),
    (400, 1, ["cleaning dropped 399 of 400 rows (99.8%, at most 20.0% allowed); see the data_quality checks"]),
    (1, 1, []),
])
def test_dropped_gate(rows_read, rows_clean, expected):
    assert gates.dropped_reasons(figures(rows_read=rows_read, rows_clean=rows_clean), 0.2) == expected


@pytest.mark.parametrize("hits_a, n_a, hits_b, n_b, z", [
    # pooled 270/2000 = 0.135; se = sqrt(0.135 * 0.865 * (1/1000 + 1/1000)) = 0.0152823; z = -0.03 / se
    (120, 1000, 150, 1000, -1.96305),
    # pooled 0.25; se = sqrt(0.25 * 0.75 * 0.02) = 0.0612372; z = 0.10 / se
    (30, 100, 20, 100, 1.63299),
    (50, 100, 50, 100, 0.0),
    (0, 100, 0, 100, 0.0),     # no hits on either side: nothing to tell apart (no division by zero)
])
def test_two_proportion_z(hits_a, n_a, hits_b, n_b, z):
    assert gates.two_proportion_z(hits_a, n_a, hits_b, n_b) == pytest.approx(z, abs=1e-5)


@pytest.mark.parametrize("z, p", [(0.0, 0.5), (-1.959964, 0.025), (-1.644854, 0.05), (1.644854, 0.95)])
def test_lower_tail_p(z, p):
    assert gates.lower_tail_p(z) == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize("hits, truth, alpha, held", [
    (120, 1000, 0.05, True),    # z = -1.963, p = 0.0248 < 0.05
    (120, 1000, 0.01, False),   # the same drop is not significant at the 1% level
    (140, 1000, 0.05, False),   # pooled 0.145, se 0.0157464, z = -0.635, p = 0.263
    (200, 1000, 0.05, False),   # better than the current run
    (12, 100, 0.05, False),     # 12% on a tenth of the pairs: pooled 162/1100, se 0.0372, z = -0.81, p = 0.21
    (None, None, 0.05, False),  # no holdout to compare on
])
def test_recall_gate(hits, truth, alpha, held):
    reasons = gates.recall_reasons(figures(hits=hits, truth=truth), CURRENT, alpha)
    assert bool(reasons) == held


def test_the_recall_reason_names_the_counts_and_the_test():
    [reason] = gates.recall_reasons(figures(hits=120), CURRENT, 0.05)
    assert reason == ("holdout recall@100 12.00% (120/1,000) is significantly below the published run's 15.00% "
                      "(150/1,000): one-sided two-proportion z-test z = -1.96, p = 0.0248 < 0.05")


@pytest.mark.parametrize("stats, expected", [
    ({"sparsity": 0.999994, "one_time_users_pct": 88.78, "event_pct_cart": 60.99, "unique_users": 4}, []),
    ({"sparsity": 0.0, "power_users_pct": 100.0, "returning_users": 0}, []),      # the bounds themselves
    ({"sparsity": 1.2}, ["stat sparsity is 1.2, outside [0, 1]"]),
    ({"retention_rate_pct": 100.5}, ["stat retention_rate_pct is 100.5, outside [0, 100]"]),
    ({"event_pct_cart": -1.0}, ["stat event_pct_cart is -1, outside [0, 100]"]),
    ({"unique_users": -3.0}, ["stat unique_users is -3, a count below 0"]),
    ({"mean_interactions_per_user": math.nan}, ["stat mean_interactions_per_user is nan"]),
    ({"median_interactions_per_user": math.inf}, ["stat median_interactions_per_user is inf"]),
])
def test_stat_bounds_gate(stats, expected):
    assert gates.stat_reasons(stats) == expected


def test_nothing_served_yet_means_nothing_to_hold():
    awful = figures(rows_read=400, rows_clean=1, users=1, products=1, hits=0, stats={"sparsity": 7.0})
    assert gates.gate_reasons(awful, None, Thresholds()) == []
    assert len(gates.gate_reasons(awful, CURRENT, Thresholds())) == 6


# --- reading the figures -------------------------------------------------------------------------------


def _stored_run(wdb, params: dict, evaluation: list[tuple]) -> int:
    run_id = writer.start_run(wdb, params, "test")
    writer.write_frame(wdb, "data_quality", run_id, pd.DataFrame(
        {"check": ["rows_read", "rows_clean"], "rows": [120, 100], "position": [0, 1]}))
    writer.write_frame(wdb, "stats", run_id, pd.DataFrame(
        {"name": ["unique_users", "unique_products", "holdout_truth_pairs"], "value": [40.0, 7.0, 80.0]}))
    writer.write_frame(wdb, "evaluation", run_id, pd.DataFrame(
        evaluation, columns=["strategy", "cap", "k", "metric", "value"]).astype({"cap": object}))
    return run_id


@pytest.mark.parametrize("params, hits", [
    ({"strategy": "affinity", "max_audiences_per_user": None}, 20),   # 0.25 x 80 truth pairs
    ({"strategy": "affinity", "max_audiences_per_user": 5}, 16),      # its capped rows: 0.20 x 80
    ({"strategy": "affinity", "max_audiences_per_user": 9}, 20),      # not evaluated under cap 9: uncapped
    ({"strategy": "engagement", "max_audiences_per_user": None}, 8),  # 0.10 x 80
    ({"strategy": "als", "max_audiences_per_user": None}, None),      # a NaN recall: nothing to test on
    ({"strategy": "activity", "max_audiences_per_user": None}, None),  # not evaluated at all
])
def test_run_figures_read_the_recall_of_the_runs_own_strategy(tmp_path, params, hits):
    wdb = writer.connect(tmp_path / "a.db")
    run_id = _stored_run(wdb, params, [
        ("affinity", None, 100, "recall_micro", 0.25), ("affinity", 5, 100, "recall_micro", 0.20),
        ("affinity", None, 10, "recall_micro", 0.05), ("engagement", None, 100, "recall_micro", 0.10),
        ("als", None, 100, "recall_micro", math.nan)])
    got = gates.run_figures(wdb.conn, run_id)
    assert (got.rows_read, got.rows_clean, got.users, got.products) == (120, 100, 40, 7)
    assert (got.recall_hits, got.recall_truth) == ((hits, 80) if hits is not None else (None, None))


# --- end to end ----------------------------------------------------------------------------------------


def test_a_tiny_run_is_held_shown_and_can_still_be_published(published_db, tmp_path, capsys):
    one_row = write_events(tmp_path / "one.csv", [(1, 2, "cart", "2023-01-01T10:00:00Z")])
    assert main(["run", "--input", str(one_row), "--db", str(published_db)]) == 0
    out = capsys.readouterr().out
    # the four-user run has 8 clean rows, 4 users, 3 products: 1/8, 1/4 and 1/3 are below half
    assert "run 2 succeeded but held (not published)" in out
    assert "held: clean rows 1 are 12.5% of the published run's 8 (at least 50.0% required)" in out
    assert f"python -m pipeline publish --run 2 --db {published_db}" in out
    con = queries.connect(published_db)
    assert queries.current_run_id(con) == 1 and queries.run(con, 2)["status"] == "succeeded"
    assert [r.split(" are ")[0] for r in queries.held_reasons(con, 2)] == ["clean rows 1", "users 1", "products 1"]

    assert main(["runs", "--db", str(published_db)]) == 0
    assert "held: clean rows 1 are 12.5%" in capsys.readouterr().out
    assert main(["publish", "--run", "2", "--db", str(published_db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("note: published although the publish gates held it: clean rows 1")
    assert lines[-1].startswith("run 2 is now the published run")
    assert queries.current_run_id(con) == 2
    assert main(["runs", "--db", str(published_db)]) == 0
    assert "<- published  published anyway, was held: clean rows 1 are 12.5%" in capsys.readouterr().out


@pytest.mark.parametrize("flags, published", [([], False), (["--no-gates"], True), (["--min-share", "0.1"], True)])
def test_gate_flags(published_db, tmp_path, flags, published):
    two_users = write_events(tmp_path / "two.csv", [(1, 1, "cart", "2023-01-01"), (2, 2, "cart", "2023-01-02")])
    # 2/8 clean rows = 25%, 2/4 users = 50%, 2/3 products = 67%: held at the default 50%, not at 10%
    assert main(["run", "--input", str(two_users), "--db", str(published_db), *flags]) == 0
    con = queries.connect(published_db)
    assert (queries.current_run_id(con) == 2) == published
    assert json.loads(con.execute("SELECT params FROM runs WHERE run_id = 2").fetchone()[0])["gates"] == \
        ("--no-gates" not in flags)


def test_the_first_run_of_an_empty_database_publishes(tmp_path):
    one_row = write_events(tmp_path / "one.csv", [(1, 2, "cart", "2023-01-01T10:00:00Z")])
    assert main(["run", "--input", str(one_row), "--db", str(tmp_path / "new.db")]) == 0
    con = queries.connect(tmp_path / "new.db")
    assert queries.current_run_id(con) == 1 and queries.held_reasons(con, 1) == []


@pytest.mark.parametrize("flag, value, message", [
    ("--min-share", "1.5", "--min-share is a share between 0 and 1, got 1.5"),
    ("--max-dropped", "-0.1", "--max-dropped is a share between 0 and 1, got -0.1"),
    ("--recall-alpha", "0", "--recall-alpha is a significance level between 0 and 1, got 0"),
])
def test_gate_thresholds_are_checked(published_db, four_users_csv, capsys, flag, value, message):
    assert main(["run", "--input", str(four_users_csv), "--db", str(published_db), flag, value]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_a_database_from_before_the_held_column_gets_it(published_db):
    import sqlite3
    with sqlite3.connect(published_db) as con:
        con.execute("ALTER TABLE runs DROP COLUMN held")
    assert queries.runs(queries.connect(published_db))[0]["held"] == []   # readers cope before the migration
    writer.connect(published_db)
    with sqlite3.connect(published_db) as con:
        assert "held" in [r[1] for r in con.execute("PRAGMA table_info(runs)")]
        assert con.execute("SELECT count(*) FROM runs WHERE held IS NULL").fetchone()[0] == 1
