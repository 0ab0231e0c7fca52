"""Disk and places: file retention, `gc`, VACUUM, demo folders named by rows and seed, `make up`'s ports."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import retention
from pipeline.cli import main, ports
from store import queries, writer

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400
NOW = 1_800_000_000.0  # a fixed "now" for the retention tests (2027-01-15)


def touch(path: Path, days_old: float, now: float = NOW) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("x" * 100)
    os.utime(path, (now - days_old * DAY, now - days_old * DAY))
    return path


@pytest.fixture
def data_folder(tmp_path) -> tuple[Path, writer.sqlite_utils.Database]:
    """A data folder the way the app fills it, and its database with one run that read an upload."""
    wdb = writer.connect(tmp_path / "audiences.db")
    used = touch(tmp_path / "uploads" / "20270101-101010-events.csv", 30)
    run_id = writer.start_run(wdb, {}, str(used))
    writer.finish_run(wdb, run_id, {})
    return tmp_path, wdb


RETENTION_CASES = {
    # path under the data folder: (age in days, removed after 7 days?)
    "exports/audiences-run1-20270101-101010.csv": (8, True),
    "exports/audiences-run1-20270110-101010.csv.gz": (6.9, False),   # younger than the retention
    "exports/my-own-notes.txt": (30, False),                         # not a name the app gives: not ours
    "uploads/20270101-101010-events.csv": (30, False),               # a succeeded run read it
    "uploads/20270101-101011-broken.csv": (8, True),                 # rejected: no succeeded run read it
    "logs/retrain-20270101-101010-1234.log": (8, True),
    "logs/retrain-20270114-101010-1234.log": (1, False),
    "demo-500400-s42/interactions.csv": (30, False),                 # demo data is never expired
}


def test_retention_removes_only_old_files_the_app_wrote_and_no_run_needs(data_folder):
    folder, wdb = data_folder
    for name, (age, _) in RETENTION_CASES.items():
        touch(folder / name, age)
    scratch = folder / ".demo-demo-500-s1.tmp-4242"   # left by a demo killed while generating
    touch(scratch / "interactions.csv", 8)
    os.utime(scratch, (NOW - 8 * DAY, NOW - 8 * DAY))

    removed = retention.remove_expired(folder, 7, wdb.conn, now=NOW)

    gone = {str(p.relative_to(folder)) for p in removed.files}
    assert gone == {n for n, (_, expired) in RETENTION_CASES.items() if expired} | {scratch.name}
    assert removed.bytes == 3 * 100 + 100   # three 100-byte files and the scratch folder's one
    assert all((folder / n).exists() != expired for n, (_, expired) in RETENTION_CASES.items())


def test_gc_prunes_old_runs_and_reports(tmp_path, four_users_csv, capsys):
    db = tmp_path / "audiences.db"
    for _ in range(3):
        assert main(["run", "--input", str(four_users_csv), "--db", str(db)]) == 0
    old = touch(tmp_path / "exports" / "audiences-run1-20200101-000000.csv", 30, now=time.time())
    capsys.readouterr()
    assert main(["gc", "--db", str(db), "--keep-runs", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "gc: removed 1 file(s) older than 7 days (0.0 MB)" and out[1] == f"  {old}"
    assert out[2] == "gc: pruned the audiences of 2 old run(s): 1, 2"
    assert out[-1].startswith(f"gc: database {db.stat().st_size / 2**20:.1f} MB, {tmp_path} ")
    con = queries.connect(db)
    assert [queries.has_audiences(con, r) for r in (1, 2, 3)] == [False, False, True] and not old.exists()


def test_vacuum_only_when_a_tenth_of_the_file_is_free(tmp_path):
    wdb = writer.connect(tmp_path / "a.db")
    assert writer.vacuum_if_worthwhile(wdb) == 0          # a fresh database has no free pages
    with wdb.conn:
        wdb.execute("CREATE TABLE junk (b BLOB)")
        wdb.conn.executemany("INSERT INTO junk VALUES (?)", ((os.urandom(4000),) for _ in range(500)))
    with wdb.conn:
        wdb.execute("DROP TABLE junk")                    # ~2 MB of pages now free inside the file
    free, total = writer.free_bytes(wdb)
    assert free >= 0.1 * total
    assert writer.vacuum_if_worthwhile(wdb) == free       # every free page given back to the disk
    assert writer.free_bytes(wdb) == (0, total - free)


# --- demo data folders ---------------------------------------------------------------------------------


def test_demo_data_goes_beside_the_database_in_a_folder_named_by_rows_and_seed(tmp_path, capsys):
    db = tmp_path / "elsewhere" / "a.db"
    assert main(["demo", "--rows", "3000", "--seed", "7", "--holdout", "0", "--db", str(db)]) == 0
    folder = tmp_path / "elsewhere" / "demo-3000-s7"
    assert sorted(p.name for p in folder.iterdir()) == ["demo.json", "interactions.csv", "products.csv"]
    assert json.loads((folder / "demo.json").read_text()) == {"rows": 3000, "seed": 7}
    assert str(folder) in queries.run(queries.connect(db), 1)["source"]
    assert [p.name for p in (tmp_path / "elsewhere").iterdir() if p.name.startswith(".")] == []  # no scratch left
    read = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    capsys.readouterr()

    assert main(["demo", "--rows", "3000", "--seed", "7", "--holdout", "0", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith(f"reusing {folder} (generated earlier with rows 3,000, seed 7)")
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()} == read  # not rewritten

    assert main(["demo", "--rows", "3000", "--seed", "8", "--holdout", "0", "--db", str(db)]) == 0
    assert (tmp_path / "elsewhere" / "demo-3000-s8" / "interactions.csv").is_file()
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()} == read


@pytest.mark.parametrize("existing, message", [
    ({"interactions.csv": "customer_id\n1\n"}, "holds other data (files it did not write)"),
    ({"demo.json": '{"rows": 500, "seed": 1}', "interactions.csv": "x", "products.csv": "y"},
     "holds other data (rows 500, seed 1)"),
    ({"demo.json": "{not json", "interactions.csv": "x"}, "holds other data (files it did not write)"),
])
def test_demo_never_overwrites_a_folder_with_other_data(tmp_path, capsys, existing, message):
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in existing.items():
        (out / name).write_text(text)
    argv = ["demo", "--rows", "3000", "--seed", "7", "--out", str(out), "--db", str(tmp_path / "a.db")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out} already holds other data") and message in err and err.count("\n") == 1
    assert {p.name: p.read_text() for p in out.iterdir()} == existing


# --- make up's ports -----------------------------------------------------------------------------------


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_busy_port_is_named_with_the_setting_that_moves_it(busy_port, capsys):
    assert ports.main([f"APP_PORT={busy_port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: port {busy_port} (APP_PORT) is busy: another program listens on it; stop it, "
                          f"or choose another port: make up APP_PORT=")
    suggested = int(err.rsplit("=", 1)[1])
    assert suggested > busy_port and not ports.is_busy(suggested)


@pytest.mark.parametrize("argv, message", [
    (["APP_PORT=http"], "APP_PORT='http' is not a port number"),
    (["APP_PORT=70000"], "APP_PORT='70000' is not a port number"),
    (["APP_PORT=8600", "API_PORT=8600"], "API_PORT=8600 is the port of another setting"),
])
def test_port_settings_that_cannot_work(argv, message, capsys):
    assert ports.main(argv) == 2 and message in capsys.readouterr().err


def test_make_up_stops_at_a_busy_port_before_building_anything(busy_port, tmp_path):
    venv = Path(sys.executable).parents[1]
    done = subprocess.run(["make", "-s", "-o", f"{venv}/.installed", "up", f"VENV={venv}",
                           f"API_PORT={busy_port}", f"AUDIENCE_DB={tmp_path / 'never.db'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"error: port {busy_port} (API_PORT) is busy" in done.stderr and "make up API_PORT=" in done.stderr
    assert not (tmp_path / "never.db").exists()
