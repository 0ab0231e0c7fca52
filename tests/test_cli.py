"""The command line: every bad input ends with exit 2, one line on stderr, a failed run row and the
published run untouched; export writes exactly the audiences."""
from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from store import queries
from tests.conftest import FOUR_USERS, HEADER, write_events

GOOD = "\n".join([HEADER] + [",".join(map(str, r)) for r in FOUR_USERS]) + "\n"


def _wrong_parquet(path: Path) -> None:
    pd.DataFrame({"customer_id": pd.to_datetime(["2023-01-01"]), "product_id": [1], "event": ["cart"],
                  "event_date": ["2023-01-01"]}).to_parquet(path)


BAD_INPUTS = {
    # name: (how to make the events file, products file text or None, expected message fragment)
    "missing file": (None, None, "not found"),
    "empty file": (lambda p: p.write_bytes(b""), None, "is empty"),
    "header only": (lambda p: p.write_text(HEADER + "\n"), None, "no data rows"),
    "missing column": (lambda p: p.write_text("customer_id,product_id,event\n1,2,cart\n"), None,
                       "missing column(s) event_date; columns found: customer_id, product_id, event"),
    "semicolons": (lambda p: p.write_text(HEADER.replace(",", ";") + "\n1;2;cart;2023-01-01\n"), None,
                   "';'-separated"),
    "not utf-8": (lambda p: p.write_bytes(GOOD.encode() + b"5,6,cart,2023-01-0\xe9\n"), None,
                  "not UTF-8 (byte 0xe9"),
    "nothing valid": (lambda p: p.write_text(HEADER + "\n,1,cart,2023-01-01\n2,2,cart,never\n"), None,
                      "no valid row left after cleaning"),
    "parquet wrong types": (_wrong_parquet, None, "column customer_id has Parquet type timestamp"),
    "products without product_id": (lambda p: p.write_text(GOOD), "sku,category\n1,shoes\n",
                                    "products file"),
    "a directory": (lambda p: p.mkdir(), None, "is a directory"),
    "catalogue without category": (lambda p: p.write_text(GOOD), "product_id,title\n1,shoes\n",
                                   "is missing column(s) category; columns found: product_id, title"),
    "tab-separated": (lambda p: p.write_text(GOOD.replace(",", "\t")), None,
                      "looks tab-separated; save it comma-separated"),
    "broken gzip": (lambda p: p.write_bytes(b"\x1f\x8b" + b"not really gzip" * 4), None,
                    "is not a readable gzip file"),
    "gzip cut short": (lambda p: p.write_bytes(gzip.compress(GOOD.encode())[:30]), None,
                       "is not a readable gzip file"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, published_db, tmp_path, capsys):
    make, products_text, message = BAD_INPUTS[case]
    events = tmp_path / ("events.parquet" if "parquet" in case else "events.csv")
    if make:
        make(events)
    argv = ["run", "--input", str(events), "--db", str(published_db)]
    if products_text:
        (tmp_path / "products.csv").write_text(products_text)
        argv += ["--products", str(tmp_path / "products.csv")]
    before = queries.audience(queries.connect(published_db), 1, 1)

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    con = queries.connect(published_db)
    failed = queries.runs(con)[0]
    assert failed["status"] == "failed" and message in failed["error"]
    assert queries.current_run_id(con) == 1
    assert queries.audience(con, 1, 1).equals(before)


def test_products_without_product_id_names_what_it_found(published_db, tmp_path, capsys):
    (tmp_path / "p.csv").write_text("sku,category\n1,shoes\n")
    write_events(tmp_path / "e.csv", FOUR_USERS)
    assert main(["run", "--input", str(tmp_path / "e.csv"), "--products", str(tmp_path / "p.csv"),
                 "--db", str(published_db)]) == 2
    assert "missing column(s) product_id; columns found: sku, category" in capsys.readouterr().err


def test_a_run_refused_while_another_holds_the_lock_exits_2(published_db, four_users_csv):
    from store.writer import RunLock
    with RunLock(published_db):
        done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--input", str(four_users_csv),
                               "--db", str(published_db)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: another run is in progress") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["run", "--input", "x.csv", "--depth", "0"], "--depth must be between 1"),
    (["run", "--input", "x.csv", "--holdout", "1.5"], "--holdout must be in [0, 1)"),
    (["run", "--input", "x.csv", "--event-weights", "cart"], "--event-weights takes name=value"),
    (["publish", "--run", "7"], "run 7 does not exist"),
    (["export", "--all", "--out", "x.csv", "--n", "50"], "--n must be between 1 and the run's depth 3"),
    (["run", "--input", "x.csv", "--event-weights", "cart=-1"], "--event-weights must not be negative, got cart=-1"),
    (["run", "--input", "x.csv", "--component-weights", "recency=-0.05"],
     "--component-weights must not be negative, got recency=-0.05"),
])
def test_argument_mistakes(argv, message, published_db, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--db", str(published_db)]) == 2
    assert message in capsys.readouterr().err


def test_export_all_equals_the_audiences_view(published_db, tmp_path):
    out = tmp_path / "all.csv"
    assert main(["export", "--db", str(published_db), "--all", "--out", str(out)]) == 0
    exported = pd.read_csv(out)
    con = queries.connect(published_db)
    expected = pd.read_sql_query("SELECT product_id, rank, customer_id, score FROM audiences WHERE run_id = 1 "
                                 "ORDER BY product_id, rank", con)
    assert list(exported.columns) == ["product_id", "rank", "customer_id", "score"]
    pd.testing.assert_frame_equal(exported, expected, check_exact=False, rtol=1e-9)
    assert exported.groupby("product_id").size().tolist() == [2, 2, 2]


def test_export_products_with_n_and_an_unknown_product_gets_the_fallback(published_db, tmp_path, capsys):
    out = tmp_path / "some.csv"
    assert main(["export", "--db", str(published_db), "--product", "3", "77", "--n", "1", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["product_id,rank,customer_id,score",
                                            "3,1,1,0.800000000", "77,1,1,0.800000000"]
    assert "fallback audience: 77" in capsys.readouterr().err


def test_runs_lists_the_published_run(published_db, capsys):
    assert main(["runs", "--db", str(published_db)]) == 0
    assert "<- published" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["generate", "run", "demo", "export", "runs", "publish", "gc", "bench"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage: python -m pipeline " + command in capsys.readouterr().out


def test_export_to_a_directory_says_to_name_a_file(published_db, tmp_path, capsys):
    assert main(["export", "--db", str(published_db), "--all", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: --out {tmp_path} is a directory; give the file to write, "
                                       f"e.g. {tmp_path / 'audiences.csv'}\n")


def test_export_under_a_file_says_which_is_in_the_way(published_db, tmp_path, capsys):
    (tmp_path / "report.csv").write_text("mine")
    assert main(["export", "--db", str(published_db), "--all", "--out", str(tmp_path / "report.csv" / "a.csv")]) == 2
    assert capsys.readouterr().err == (f"error: --out {tmp_path / 'report.csv' / 'a.csv'}: {tmp_path / 'report.csv'} "
                                       "is a file, not a folder; choose another place for the export\n")


@pytest.mark.parametrize("argv", [["runs"], ["publish", "--run", "1"], ["export", "--all", "--out", "x.csv"],
                                  ["run", "--input", "x.csv"], ["gc"]])
def test_a_directory_as_db_says_to_name_the_file(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--db", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: --db {tmp_path} is a directory; pass the database file inside "
                                       f"it, e.g. {tmp_path / 'audiences.db'}\n")


@pytest.mark.parametrize("argv", [["runs"], ["publish", "--run", "1"], ["export", "--all", "--out", "x.csv"],
                                  ["run", "--input", "events.csv"]])
def test_a_file_that_is_not_a_database_says_how_to_recover(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_events(tmp_path / "events.csv", FOUR_USERS)
    (tmp_path / "notes.db").write_text("these are my notes, not a database\n" * 200)
    assert main(argv + ["--db", "notes.db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: database notes.db is not a usable workbench database (file is not a database); ")
    assert "mv notes.db notes.db.broken" in err and "python -m pipeline demo --db notes.db" in err
    assert err.count("\n") == 1
    assert (tmp_path / "notes.db").read_text().startswith("these are my notes")   # left as it was


def test_runs_into_a_closed_pipe_ends_quietly(published_db):
    """`runs | head`: the reader goes away before the listing is written."""
    child = subprocess.Popen([sys.executable, "-m", "pipeline", "runs", "--db", str(published_db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # before the child has imported anything, let alone printed
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141
    assert err == ""   # no "unexpected BrokenPipeError", no "Exception ignored" from the interpreter
