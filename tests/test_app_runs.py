"""The Runs page through AppTest: history, publish, roll back, held runs, compare, disk use.

The database holds the workbench run of tests/conftest.py twice (run 1 published, run 2 with exclusion
rule "none", not published): 12 clean rows, 7 users, 6 products each.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.service import folder_bytes, size_text
from store import queries, writer


@pytest.fixture
def two_runs(tmp_path, make_workbench_db) -> Path:
    db = make_workbench_db(tmp_path)
    return make_workbench_db(tmp_path, exclude="none", publish=False, db=db)


def click(at, label: str):
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def options(at, key: str) -> list[str]:
    return list(at.selectbox(key=key).options)


def test_history_publish_and_a_rollback_whose_labels_follow_the_new_state(two_runs, open_app, texts):
    at = open_app(two_runs, "runs")
    history = at.dataframe[0].value.set_index("run")
    assert history.loc[[1, 2], "rows clean"].tolist() == ["12", "12"]
    assert history.loc[[1, 2], "status"].tolist() == ["succeeded", "succeeded"]
    assert history.loc[[1, 2], "published"].tolist() == ["● current", ""]
    click(at, "Publish run 2")
    assert queries.current_run_id(queries.connect(two_runs)) == 2 and "run 2 is now the published run" in texts(at.success)
    click(at, "Roll back to run 1")
    assert queries.current_run_id(queries.connect(two_runs)) == 1
    history = at.dataframe[0].value.set_index("run")
    assert history.loc[[1, 2], "published"].tolist() == ["● current", "was published"]
    labels = [b.label for b in at.button]
    assert "Roll back to run 2" in labels and "Publish run 2" in labels  # run 2 was published before run 1
    assert [o.split(" · ")[0] for o in options(at, "cmp_b")] == ["Run 2", "Run 1 (published)"]
    assert [o.split(" · ")[0] for o in at.sidebar.selectbox[0].options] == ["Run 2", "Run 1 (published)"]


def test_a_failed_run_shows_dashes_not_none(two_runs, open_app):
    wdb = writer.connect(two_runs)
    run_id = writer.start_run(wdb, {}, "events.csv")
    writer.fail_run(wdb, run_id, "events file events.csv is empty; export the data again")
    history = open_app(two_runs, "runs").dataframe[0].value.set_index("run")
    failed = history.loc[3]
    assert failed["status"] == "failed"
    assert failed[["rows read", "rows clean", "users", "products", "strategy"]].tolist() == ["—"] * 5
    assert failed["error"] == "events file events.csv is empty; export the data again"
    assert "None" not in history.astype(str).to_numpy().ravel().tolist()


def test_a_held_run_shows_its_reasons_and_publish_anyway_names_them(two_runs, open_app, texts, hold):
    reasons = ["users 40% of the published run's (gate 50%)", "rows dropped 31% (gate 20%)"]
    hold(two_runs, 2, reasons)
    at = open_app(two_runs, "runs")
    history = at.dataframe[0].value.set_index("run")
    assert history.loc[2, "published"] == "held"
    assert history.loc[2, "held because"] == "; ".join(reasons) and history.loc[1, "held because"] == ""
    button = f"Publish run 2 anyway, despite: {'; '.join(reasons)}"
    assert "Publish run 2" not in [b.label for b in at.button]  # no plain button for a held run
    click(at, button)
    assert queries.current_run_id(queries.connect(two_runs)) == 2  # through `python -m pipeline publish`
    assert "run 2 is now the published run" in texts(at.success)


def test_compare_two_runs_matches_a_direct_computation(two_runs, open_app):
    at = open_app(two_runs, "runs")
    at.toggle(key="cmp_deep").set_value(True).run()
    assert not at.exception
    con = queries.connect(two_runs)
    a, b = at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value
    rows = pd.read_sql_query("SELECT run_id, product_id, customer_id, rank FROM audiences", con)
    shown = {m.label: m.value for m in at.metric}
    for k in (10, 100):
        lists = {r: rows[(rows.run_id == r) & (rows["rank"] <= k)].groupby("product_id")["customer_id"].apply(set)
                 for r in (a, b)}
        common = lists[a].index.intersection(lists[b].index)
        jaccards = [len(lists[a][p] & lists[b][p]) / len(lists[a][p] | lists[b][p]) for p in common]
        assert shown[f"Mean Jaccard@{k}"] == f"{np.mean(jaccards):.3f}"
    # Same events, so the same engagement scores: a rank correlation of exactly 1.
    assert shown["Spearman ρ of engagement scores"] == "1.000"
    deltas = at.dataframe[1].value.set_index("statistic")
    assert deltas.loc["total_interactions", ["run A", "run B", "change"]].tolist() == ["12", "12", "+0"]
    assert deltas.loc["sparsity", "run A"] == "0.714286"  # 1 - 12 / (7 x 6)


@pytest.mark.parametrize("size, text", [(0, "0 B"), (999, "999 B"), (1_000, "1.0 kB"), (1_500_000, "1.5 MB"),
                                        (2_345_000_000, "2.3 GB")])
def test_sizes_read_as_people_read_them(size, text):
    assert size_text(size) == text


def test_the_runs_page_shows_the_database_and_data_folder_sizes(tmp_path, make_workbench_db, open_app):
    folder = tmp_path / "data"
    folder.mkdir()
    db = make_workbench_db(folder)
    (folder / "exports").mkdir()
    (folder / "exports" / "old.csv").write_bytes(b"x" * 3_000_000)
    assert folder_bytes(folder / "exports") == 3_000_000 and folder_bytes(tmp_path / "absent") == 0
    shown = {m.label: m.value for m in open_app(db, "runs").metric}
    database = sum(p.stat().st_size for p in folder.glob("wb.db*") if p.is_file())  # the file, its WAL and shm
    assert shown["Database"] == size_text(database)
    events = (folder / "events.csv").stat().st_size
    snapshot = sum(p.stat().st_size for p in folder.glob("wb.db.snapshots/*/*"))  # the API's serving arrays
    assert shown["Data folder data/"] == size_text(database + events + 3_000_000 + snapshot)
    assert float(shown["Data folder data/"].split()[0]) >= 3.0  # at least the 3 MB export, in MB
