"""Reading input: gzip, the one pre-run check the app shares, and catalogues with repeated product ids."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.data.ingest import check_events_file, check_products_file, read_catalogue, read_events
from store import queries
from store.errors import InputError
from tests.conftest import FOUR_USERS, HEADER, write_events

GOOD = "\n".join([HEADER] + [",".join(map(str, r)) for r in FOUR_USERS]) + "\n"


@pytest.mark.parametrize("name, write", [
    ("events.csv.gz", lambda p: p.write_bytes(gzip.compress(GOOD.encode()))),
    ("events.csv", lambda p: p.write_bytes(gzip.compress(GOOD.encode()))),   # gzip known by content, not name
    ("events.csv", lambda p: p.write_text(GOOD)),
])
def test_gzip_input_reads_like_plain_csv(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    frame = read_events(path)
    assert frame.shape == (8, 4) and frame.iloc[0].tolist() == ["1", "1", "purchased", "2023-01-01T00:00:00"]


def test_a_gzip_run_is_the_same_run(tmp_path, capsys):
    (tmp_path / "events.csv.gz").write_bytes(gzip.compress(GOOD.encode()))
    assert main(["run", "--input", str(tmp_path / "events.csv.gz"), "--db", str(tmp_path / "a.db")]) == 0
    assert "rows read 8  clean 8" in capsys.readouterr().out


def _parquet(path: Path) -> None:
    pd.DataFrame({"customer_id": [1], "product_id": [2], "event": ["cart"],
                  "event_date": pd.to_datetime(["2023-01-01"])}).to_parquet(path)


@pytest.mark.parametrize("name, write, message", [
    ("e.csv", lambda p: p.write_text(GOOD), None),
    ("e.csv.gz", lambda p: p.write_bytes(gzip.compress(GOOD.encode())), None),
    ("e.parquet", _parquet, None),
    ("missing.csv", None, "events file not found: {path}; check the path"),
    ("e.csv", lambda p: p.write_bytes(b""), "events file {path} is empty; export the data again"),
    ("e.csv", lambda p: p.write_text(GOOD.replace(",", ";")),
     "events file {path} looks ';'-separated; save it comma-separated (CSV with ',')"),
    ("e.tsv", lambda p: p.write_text(GOOD.replace(",", "\t")),
     "events file {path} looks tab-separated; save it comma-separated (CSV with ',')"),
    ("e.csv", lambda p: p.write_text("customer_id,product_id,event\n1,2,cart\n"),
     "events file {path} is missing column(s) event_date; columns found: customer_id, product_id, event"),
    ("e.csv", lambda p: p.write_bytes(GOOD.encode() + b"5,6,cart,2023-01-0\xe9\n"),
     # the bad byte follows the good text and "5,6,cart,2023-01-0" (18 bytes)
     "events file {path} is not UTF-8 (byte 0xe9 at offset " + str(len(GOOD) + 18) + "); re-export it as UTF-8"),
    ("e.parquet", lambda p: p.write_text("not parquet"), "events file {path} is not a readable Parquet file"),
])
def test_the_pre_run_check_says_what_the_run_would(tmp_path, name, write, message):
    path = tmp_path / name
    if write:
        write(path)
    if message is None:
        assert check_events_file(path) is None
        return
    with pytest.raises(InputError) as raised:
        check_events_file(str(path))
    assert str(raised.value).startswith(message.format(path=path))
    with pytest.raises(InputError) as by_the_run:
        read_events(path)
    assert str(by_the_run.value) == str(raised.value)


@pytest.mark.parametrize("text, message", [
    ("product_id,category\n1,shoes\n", None),
    ("product_id,title\n1,a\n", "is missing column(s) category; columns found: product_id, title"),
    ("sku;category\n1;shoes\n", "looks ';'-separated"),
    ("", "is empty"),
])
def test_the_catalogue_check(tmp_path, text, message):
    path = tmp_path / "products.csv"
    path.write_text(text)
    if message is None:
        assert check_products_file(path) is None
    else:
        with pytest.raises(InputError, match=re.escape(message)):
            check_products_file(path)


def test_repeated_catalogue_ids_are_counted_and_the_first_row_wins(tmp_path):
    (tmp_path / "p.csv").write_text("product_id,category\n1,shoes\n2,bags\n1,hats\n 2 ,belts\n3,\n")
    listed = read_catalogue(tmp_path / "p.csv")
    assert listed.duplicates == 2
    assert listed.products.set_index("product_id")["category"].to_dict() == {1: "shoes", 2: "bags", 3: "unknown"}


def test_repeated_catalogue_ids_are_reported_and_stored(tmp_path, capsys):
    events = write_events(tmp_path / "e.csv", FOUR_USERS)
    (tmp_path / "p.csv").write_text("product_id,category\n1,shoes\n2,bags\n1,hats\n3,toys\n3,toys\n")
    assert main(["run", "--input", str(events), "--products", str(tmp_path / "p.csv"),
                 "--db", str(tmp_path / "a.db")]) == 0
    assert "catalogue: 2 repeated product id(s); the first row of each was used" in capsys.readouterr().out
    stats = queries.stats(queries.connect(tmp_path / "a.db"), 1)
    assert (stats["catalogue_products"], stats["catalogue_duplicate_ids"]) == (3, 2)
