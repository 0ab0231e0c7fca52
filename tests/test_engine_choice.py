"""Choosing the engine: bad choices end with one line and exit 2 before a run starts, and the in-process
engine refuses an input its memory estimate says this machine cannot hold."""
from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from pipeline import memory
from pipeline.cli.parser import main


def _closed_port() -> int:
    """A port nothing listens on: bind one, note it, release it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.parametrize("extra, message", [
    (["--engine", "hadoop"], "--engine must be one of inprocess, spark, got 'hadoop'"),
    (["--spark-master", "local[2]"], "--spark-master needs --engine spark"),
    (["--engine", "spark", "--spark-master", "http://x"], "is not a Spark master URL"),
    (["--engine", "spark", "--spark-master", "spark://127.0.0.1:{port}"], "cannot reach the Spark master at 127.0.0.1:"),
])
def test_a_bad_engine_choice_is_one_line_and_exit_2(extra, message, four_users_csv, tmp_path, capsys):
    db = tmp_path / "a.db"
    extra = [e.format(port=_closed_port()) for e in extra]
    assert main(["run", "--input", str(four_users_csv), "--db", str(db), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert _runs(db) == 0  # refused before a run row exists


def test_the_calibration_reproduces_the_measured_peaks():
    assert memory.needed_bytes(500_000) / memory.GB == pytest.approx(1494 / 1024)
    assert memory.needed_bytes(5_000_000) / memory.GB == pytest.approx(7637 / 1024)
    # Between them the line: 2.75M events halfway, so halfway in memory (1.459 and 7.458 GiB).
    assert memory.needed_bytes(2_750_000) / memory.GB == pytest.approx(4.4585, abs=1e-3)


def test_rows_are_estimated_from_a_sample_of_a_large_csv(tmp_path, four_users_csv):
    path = tmp_path / "big.csv"
    line = "1234567,7654321,cart,2023-01-01T00:00:00\n"  # 42 bytes a row
    path.write_text("customer_id,product_id,event,event_date\n" + line * 60_000)
    assert abs(memory.estimate_rows(path) - 60_000) <= 60  # the sample of 1 MiB holds ~25K rows
    assert memory.estimate_rows(four_users_csv) == 8  # read whole: exact


def test_in_process_run_refused_when_the_machine_is_too_small(monkeypatch, four_users_csv, tmp_path, capsys):
    db = tmp_path / "a.db"
    monkeypatch.setattr(memory, "machine_bytes", lambda: memory.GB // 2)
    assert main(["run", "--input", str(four_users_csv), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    # 8 rows: the fixed 0.79 GB dominates; 80% of 0.5 GB is what a run may take.
    assert "needs ~0.8 GB in process, this machine has 0.5 GB; use --engine spark" in err
    assert _runs(db) == 0
    monkeypatch.setattr(memory, "machine_bytes", lambda: 2 * memory.GB)
    assert main(["run", "--input", str(four_users_csv), "--db", str(db)]) == 0
    assert _runs(db) == 1


@pytest.mark.parametrize("extra, wanted", [
    (["--strategy", "als"], "--strategy als"),
    (["--max-audiences-per-user", "3"], "--max-audiences-per-user"),
])
def test_a_spark_run_the_driver_cannot_hold_is_refused_before_it_starts(extra, wanted, monkeypatch, four_users_csv,
                                                                        tmp_path, capsys):
    """ALS (any strategy but engagement) and the cap run on the Spark driver: with 0.5 GB free there, the
    8 rows' ~0.8 GB (the fixed part dominates) are refused at once, not after the Spark stages."""
    db = tmp_path / "a.db"
    monkeypatch.setattr(memory, "available_bytes", lambda: memory.GB // 2)
    assert main(["run", "--input", str(four_users_csv), "--db", str(db), "--engine", "spark", *extra]) == 2
    err = capsys.readouterr().err
    assert f"{wanted} ranks on the Spark driver, and 8 events need ~0.8 GB on the driver, 0.5 GB are free; " \
           "use --strategy engagement" in err and err.count("\n") == 1
    assert _runs(db) == 0
