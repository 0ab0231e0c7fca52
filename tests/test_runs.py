"""Runs: one writer, atomic publishing, failed runs that change nothing, pruning of old audiences."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from pipeline.config import RunParams
from pipeline.data.clean import CHECKS
from pipeline.run import execute
from store import queries, writer
from store.errors import InputError, RunInProgressError, RunNotFoundError
from tests.conftest import FOUR_USERS, skip_unless_ci, write_events


def test_a_failed_run_leaves_the_published_run_current(published_db, tmp_path):
    bad = write_events(tmp_path / "header_only.csv", [])
    with pytest.raises(InputError, match="no data rows"):
        execute(bad, db=published_db)
    con = queries.connect(published_db)
    assert queries.current_run_id(con) == 1
    failed = queries.run(con, 2)
    assert failed["status"] == "failed" and "no data rows" in failed["error"]
    assert not queries.has_audiences(con, 2)


def test_runs_record_stages_and_summary(published_db):
    run = queries.run(queries.connect(published_db), 1)
    assert (run["status"], run["stage"], run["progress"]) == ("succeeded", "done", 1)
    assert run["summary"]["rows_clean"] == len(FOUR_USERS) and run["summary"]["users"] == 4
    assert run["params"]["depth"] == 3 and run["finished_at"] >= run["created_at"]


def test_a_concurrent_run_is_refused(published_db, four_users_csv):
    with writer.RunLock(published_db):
        with pytest.raises(RunInProgressError, match="another run is in progress"):
            execute(four_users_csv, db=published_db)
    assert len(queries.runs(queries.connect(published_db))) == 1   # the refused run left no row


def test_no_publish_then_publish_and_roll_back(published_db, four_users_csv):
    second = execute(four_users_csv, db=published_db, publish=False).run_id
    con = queries.connect(published_db)
    assert queries.current_run_id(con) == 1
    wdb = writer.connect(published_db)
    writer.publish(wdb, second)
    assert queries.current_run_id(con) == second
    writer.publish(wdb, 1)   # rollback: an older run becomes current again
    assert queries.current_run_id(con) == 1


def test_a_reader_during_publish_sees_exactly_one_run(tmp_path, four_users_csv):
    db = tmp_path / "a.db"
    first = execute(four_users_csv, db=db, params=RunParams(depth=2)).run_id
    second = execute(four_users_csv, db=db, params=RunParams(depth=3, exclude="none")).run_id
    size = {first: 2, second: 3}   # product 1's audience size tells which run a row came from
    seen, problems, stop = set(), [], threading.Event()

    def read():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        while not stop.is_set():
            rows = con.execute("SELECT run_id FROM audiences WHERE product_id = 1 AND run_id = "
                               f"({queries.CURRENT_RUN_SQL})").fetchall()
            runs = {r[0] for r in rows}
            if len(runs) != 1 or len(rows) != size[runs.pop()]:
                problems.append(rows)
            seen.update(r[0] for r in rows)

    reader = threading.Thread(target=read)
    reader.start()
    wdb = writer.connect(db)
    for i in range(2000):   # until the reader has caught both runs current, at least 60 swaps
        writer.publish(wdb, (first, second)[i % 2])
        if i >= 60 and seen == {first, second}:
            break
        time.sleep(0.001)
    stop.set()
    reader.join()
    assert problems == [] and seen == {first, second}


def test_old_runs_audiences_are_pruned_but_their_stats_stay(tmp_path, four_users_csv):
    db = tmp_path / "a.db"
    ids = [execute(four_users_csv, db=db, params=RunParams(depth=2, keep_runs=2)).run_id for _ in range(3)]
    con = queries.connect(db)
    assert [queries.has_audiences(con, r) for r in ids] == [False, True, True]
    assert queries.stats(con, ids[0])["unique_users"] == 4
    assert len(queries.data_quality(con, ids[0])) == len(CHECKS)
    with pytest.raises(RunNotFoundError, match="pruned"):
        writer.publish(writer.connect(db), ids[0])


def test_publishing_a_failed_or_missing_run_is_refused(published_db, tmp_path):
    with pytest.raises(InputError):
        execute(tmp_path / "missing.csv", db=published_db)
    wdb = writer.connect(published_db)
    with pytest.raises(RunNotFoundError, match="only a succeeded run"):
        writer.publish(wdb, 2)
    with pytest.raises(RunNotFoundError, match="does not exist"):
        writer.publish(wdb, 99)


def test_the_database_keeps_the_contract(published_db):
    import subprocess
    import sys
    from pathlib import Path
    check = Path(__file__).resolve().parents[2] / "shared" / "contract_check.py"
    if not check.is_file():
        skip_unless_ci("../shared/contract_check.py is not beside the repository")
    done = subprocess.run([sys.executable, str(check), str(published_db)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_product_catalogue_is_joined(tmp_path, four_users_csv):
    catalogue = tmp_path / "products.csv"
    catalogue.write_text("Product_ID,category,title\n1,shoes,a\n2, bags ,b\nnot-an-id,x,c\n")
    db = tmp_path / "a.db"
    run_id = execute(four_users_csv, db=db, products_path=catalogue,
                     params=RunParams(strategy="engagement")).run_id
    products = queries.products(queries.connect(db), run_id).set_index("product_id")
    assert products["category"].to_dict() == {1: "shoes", 2: "bags", 3: "unknown"}
    assert products.loc[1, ["interactions", "users"]].tolist() == [3, 2]


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("1", pytest.fail.Exception),
                                         ("", pytest.skip.Exception), ("false", pytest.skip.Exception)])
def test_a_missing_outside_check_skips_only_outside_ci(ci, outcome, monkeypatch):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="contract_check.py is not beside the repository"):
        skip_unless_ci("../shared/contract_check.py is not beside the repository")
