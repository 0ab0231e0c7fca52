"""Faults: a run killed at every stage, a disk that fills up during a run, a damaged database file.

Each leaves the database intact and the published run as it was, and the next run starts.
"""
from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.run import STAGES, execute
from store import queries, writer

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI with writer.set_stage pausing once the run reaches the stage in argv[1], so the test can kill
# the process at exactly that point (a run of the four-user file takes well under a second).
PAUSE_AT_STAGE = """
import sys, time
from store import writer
target, real = sys.argv[1], writer.set_stage
def pausing(db, run_id, stage, progress):
    real(db, run_id, stage, progress)
    if stage == target:
        print("reached", stage, flush=True)
        time.sleep(600)
writer.set_stage = pausing
from pipeline.cli import main
sys.exit(main(sys.argv[2:]))
"""


def served(db: Path) -> tuple[int | None, list]:
    con = queries.connect(db)
    try:
        run_id = queries.current_run_id(con)
        return run_id, queries.audience(con, run_id, 1).values.tolist()
    finally:
        con.close()


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.parametrize("stage", list(STAGES))
def test_kill_9_at_every_stage_changes_nothing_served(stage, published_db, four_users_csv):
    before = served(published_db)
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSE_AT_STAGE, stage, "run", "--input", str(four_users_csv),
         "--db", str(published_db)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().split() == ["reached", stage]
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL

    assert integrity(published_db) == "ok"
    assert served(published_db) == before
    killed = queries.run(queries.connect(published_db), 2)
    assert (killed["status"], killed["stage"]) == ("running", stage)

    after = execute(four_users_csv, db=published_db).run_id   # the next run starts and finishes
    con = queries.connect(published_db)
    assert queries.run(con, 2)["status"] == "failed" and "interrupted" in queries.run(con, 2)["error"]
    assert after == 3 and queries.current_run_id(con) == 3


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _sqlite_full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")


@pytest.mark.parametrize("write, fault, stage", [
    ("write_frame", _no_space, "clean"),                  # the first write of a run: its data_quality rows
    ("write_audience_lists", _no_space, "audiences"),
    ("write_audience_lists", _sqlite_full, "audiences"),  # SQLite's own word for it
    ("set_held", _no_space, "publish"),
])
def test_a_full_disk_fails_the_run_with_one_clear_line(write, fault, stage, published_db, four_users_csv,
                                                       monkeypatch, capsys):
    before = served(published_db)
    monkeypatch.setattr(writer, write, fault)
    assert main(["run", "--input", str(four_users_csv), "--db", str(published_db)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: no space left on the disk during run 2 (stage {stage}); free some (`python -m "
                   "pipeline gc` removes old exports, uploads and old runs' rows) and run again; the published "
                   "run is unchanged\n")
    monkeypatch.undo()
    assert served(published_db) == before and integrity(published_db) == "ok"
    failed = queries.run(queries.connect(published_db), 2)
    assert failed["status"] == "failed" and failed["error"] == err.removeprefix("error: ").rstrip("\n")
    assert not queries.has_audiences(queries.connect(published_db), 2)


def _denied(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize("step, fault, note", [
    ("prune_runs", _sqlite_full, "note: old runs were not pruned (database or disk is full)"),
    ("data_folder", _denied, "note: expired files were not removed ([Errno 13] Permission denied)"),
])
def test_housekeeping_that_fails_after_publishing_leaves_the_run_published(step, fault, note, published_db,
                                                                           four_users_csv, monkeypatch, capsys):
    monkeypatch.setattr(writer, step, fault)
    assert main(["run", "--input", str(four_users_csv), "--db", str(published_db)]) == 0
    assert f"  {note}; the next run or `python -m pipeline gc` will" in capsys.readouterr().out
    monkeypatch.undo()
    con = queries.connect(published_db)
    assert queries.current_run_id(con) == 2 and queries.run(con, 2)["status"] == "succeeded"
    assert queries.has_audiences(con, 2)


def test_a_full_disk_during_an_export_leaves_no_half_file(published_db, tmp_path, monkeypatch, capsys):
    def half_then_full(db, run_id, products, n, out):
        out.write_text("product_id,rank,customer_id,score\n1,1,")
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    monkeypatch.setattr("pipeline.cli.commands.write_export", half_then_full)
    out = tmp_path / "all.csv"
    assert main(["export", "--db", str(published_db), "--all", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: no space left on the disk ({out}); free some (`python -m pipeline "
                                       "gc`) and try again (the published run is unchanged)\n")
    assert not out.exists()


def _checkpointed(db: Path) -> bytes:
    """The database as one file (WAL folded in), so damaging its bytes damages the database."""
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.read_bytes()


@pytest.mark.parametrize("damage, what", [
    (lambda data: b"\0" * 100 + data[100:], "file is not a database"),                 # header wiped
    (lambda data: data[:100] + bytes(b ^ 0x5A for b in data[100:4096]) + data[4096:],  # schema page scrambled
     "malformed"),
])
@pytest.mark.parametrize("argv", [["runs"], ["export", "--all", "--out", "x.csv"], ["publish", "--run", "1"],
                                  ["run", "--input", "events.csv"]])
def test_a_damaged_database_says_so_and_how_to_recover(damage, what, argv, published_db, four_users_csv,
                                                       tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.csv").write_bytes(four_users_csv.read_bytes())
    damaged = damage(_checkpointed(published_db))
    published_db.write_bytes(damaged)
    assert main(argv + ["--db", str(published_db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: database {published_db} is not a usable workbench database (")
    assert what in err and f"mv {published_db} {published_db}.broken" in err and err.count("\n") == 1
    assert published_db.read_bytes() == damaged   # nothing wrote over what is left of it
