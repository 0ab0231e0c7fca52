"""--engine spark: the same messy file gives the same published run as the in-process engine."""
from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.cli.parser import main
from pipeline.config import RunParams
from pipeline.data.ingest import read_events as read_local
from pipeline.run import execute
from pipeline.strategies import STRATEGIES
from store.packing import unpack_ids, unpack_scores

HEADER = " Customer_ID ,Product_Id,EVENT,event_date,extra"
# Worked by hand, bot limit 3: 21 rows read; missing fields 4 (rows 5, 6, 7, 19: empty id, product -4,
# empty event, id 'abc'); bad dates 3 (rows 8, 9, 21: text, 30 February, empty); duplicates 1 (row 2 is row 1:
# the same instant written with Z, event with spaces and capitals); bot rows 4 (user 5: four events on
# 2023-01-06); unknown events 1 (teleport, kept); 9 clean rows by users 1, 2, 3, 4, 6, 7, 8.
MESSY = [
    "1,10,purchased,2023-01-01T10:00:00,a",
    "1,10, Purchased ,2023-01-01 10:00:00Z,b",
    "2,10,cart,2023-01-02T00:00:00+02:00,c",
    "2.0,11,wishlist,2023-01-03,d",
    ",11,cart,2023-01-03,e",
    "3,-4,cart,2023-01-03,f",
    "3,12,,2023-01-03,g",
    "3,12,cart,not-a-date,h",
    "3,12,cart,2023-02-30,i",
    "3,12,teleport,2023-01-04T05:00:00,j",
    "4,12,rating,2023-01-05T00:00:00,k",
    "5,10,cart,2023-01-06T00:00:00,l",
    "5,11,cart,2023-01-06T01:00:00,m",
    "5,12,cart,2023-01-06T02:00:00,n",
    "5,13,cart,2023-01-06T03:00:00,o",
    "6,13,search_keyword,2023-01-07T12:30:00.5,p",
    "6,10,purchased,2023-01-08T00:00:00,q",
    "7,13,cart,2023-01-09T00:00:00,r",
    "abc,13,cart,2023-01-09,s",
    "+8,11,cart,2023-01-09T08:00:00,t",
    "8,12,cart,,u",
    "9,13,cart,2999-01-01T00:00:00,v",
    "9,13,cart,1999-12-31T23:59:59,w",
]
# Rows 22 and 23 (user 9): a date after the time of the run (future_dates 1) and one before 2000 (absurd_dates 1).
COUNTS = {"rows_read": 23, "missing_fields": 4, "bad_dates": 3, "future_dates": 1, "absurd_dates": 1,
          "duplicates": 1, "bot_rows": 4,
          "unknown_events": 1, "rows_clean": 9}
PARAMS = dict(depth=3, exclude="purchased", bot_daily_limit=3, holdout=0.2, strategy="engagement")
# Every table of a run, with the order that makes two runs comparable row by row.
TABLES = {"data_quality": "position", "stats": "name", "cohort_retention": "cohort_month, months_since",
          "daily_events": "day, event", "activity_histogram": "interactions", "product_months": "month",
          "top_products": "rank", "products": "product_id", "user_features": "customer_id",
          "fallback_audience": "rank", "evaluation": "strategy, metric, k", "gain": "strategy, n"}


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    path = tmp_path / "messy.csv"
    path.write_text("\n".join([HEADER] + MESSY) + "\n")
    return path


def _table(db: Path, table: str, order: str) -> pd.DataFrame:
    with sqlite3.connect(db) as con:
        frame = pd.read_sql(f'SELECT * FROM "{table}" ORDER BY {order}', con)
    return frame.drop(columns=["run_id"])


def _assert_same_tables(inprocess: Path, sparked: Path) -> None:
    """Every table equal; of the evaluation, the rows of engagement (the in-process engine scores every
    strategy, the Spark engine the one it ranks with), and of the stats, none about another strategy's
    fit (propensity_*)."""
    others = tuple(f"{name}_" for name in STRATEGIES if name != "engagement")
    for table, order in TABLES.items():
        a, b = _table(inprocess, table, order), _table(sparked, table, order)
        if "strategy" in a:
            a = a[a["strategy"] == "engagement"].reset_index(drop=True)
        if table == "stats":
            a = a[~a["name"].str.startswith(others)].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=0, atol=1e-12, obj=table)


def _audiences(db: Path) -> pd.DataFrame:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT product_id, size, id_width, score_width, customer_ids, scores "
                           "FROM audience_lists ORDER BY product_id").fetchall()
    return pd.DataFrame([(p, list(unpack_ids(i, w, n)), list(unpack_scores(s, sw, n)))
                         for p, n, w, sw, i, s in rows], columns=["product_id", "ids", "scores"])


def test_both_engines_publish_the_same_run(spark, messy_csv, tmp_path, capsys):
    inprocess, sparked = tmp_path / "inprocess.db", tmp_path / "spark.db"
    catalogue = tmp_path / "products.csv"  # product 12 is not in it: category 'unknown'
    catalogue.write_text("product_id,category\n10,Shoes\n11,Books\n13,Shoes\n99,Toys\n")
    local = execute(messy_csv, db=inprocess, params=RunParams(**PARAMS), products_path=catalogue)
    assert main(["run", "--input", str(messy_csv), "--products", str(catalogue), "--db", str(sparked),
                 "--depth", "3", "--exclude", "purchased",
                 "--bot-limit", "3", "--strategy", "engagement", "--engine", "spark",
                 "--spark-master", "local[2]"]) == 0
    assert "rows read 23  clean 9" in capsys.readouterr().out
    assert local.counts == COUNTS
    _assert_same_tables(inprocess, sparked)
    categories = _table(sparked, "products", "product_id")["category"].tolist()
    assert categories == ["Shoes", "Books", "unknown", "Shoes"]
    a, b = _audiences(inprocess), _audiences(sparked)
    assert a["product_id"].tolist() == b["product_id"].tolist() == [10, 11, 12, 13]
    assert a["ids"].tolist() == b["ids"].tolist()
    assert np.allclose(np.concatenate(a["scores"]), np.concatenate(b["scores"]), rtol=0, atol=1e-9)
    # Product 10 was bought by users 1 and 6 (excluded under 'purchased'); user 2 only carted it.
    assert 1 not in a["ids"][0] and 6 not in a["ids"][0] and 2 in a["ids"][0]


def _parquet_parts(csv: Path, folder: Path) -> Path:
    frame = read_local(csv)  # the four columns as text, as the in-process reader gives them
    folder.mkdir()
    for i, start in enumerate(range(0, len(frame), 7)):
        frame.iloc[start:start + 7].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def _gzipped(csv: Path, out: Path) -> Path:
    out.write_bytes(gzip.compress(csv.read_bytes()))
    return out


@pytest.mark.parametrize("make", [_parquet_parts, _gzipped], ids=["parquet-folder", "csv-gz"])
def test_spark_reads_parquet_parts_and_gzip_with_the_same_counts(spark, messy_csv, tmp_path, make):
    from pipeline.spark.clean import clean
    from pipeline.spark.ingest import read_events
    source = make(messy_csv, tmp_path / ("parts" if make is _parquet_parts else "messy.csv.gz"))
    events, counts, _ = clean(read_events(spark, str(source)), RunParams(**PARAMS))
    events.unpersist()
    assert counts == COUNTS


@pytest.mark.parametrize("seconds, holdout, expected", [
    ([0, 10, 20, 30, 40], 0.2, 32.0),   # index (5-1)*0.8 = 3.2: 30 + 0.2*(40-30)
    ([0, 10, 20, 30, 40], 0.5, 20.0),   # index 2.0: the middle one
    ([5, 5, 7], 0.2, 6.2),              # index 1.6: 5 + 0.6*(7-5)
    ([1, 2, 3, 4], 0.0, 4.0),           # no holdout: the last instant
])
def test_the_split_is_pandas_quantile_without_sorting_every_event(spark, seconds, holdout, expected):
    from pipeline.data.diagnostics import split_instant as local_split
    from pipeline.spark.diagnostics import split_instant
    start = pd.Timestamp("2023-01-01")
    dates = [start + pd.Timedelta(seconds=s) for s in seconds]
    events = spark.createDataFrame(pd.DataFrame({"event_date": dates}))
    split = split_instant(events, len(dates), holdout)
    assert split == local_split(pd.DataFrame({"event_date": dates}), holdout) == start + pd.Timedelta(seconds=expected)


# Rows at the edge of what Spark's expressions decide themselves: each goes to the in-process parser or
# not, and either way both engines must count and keep the same rows.
EDGES = [
    ("\t7", "10", "cart", "2023-01-05"),                   # a tab: trimmed by the in-process rules
    ("\u00a07", "11", "cart", "2023-01-05"),               # a non-breaking space
    ("\uff17", "12", "cart", "2023-01-05"),                # a full-width 7 is not a digit
    ("7", "13", "Caf\u00c9", "2023-01-05"),                # a non-ASCII event name, lower-cased
    ("7", "14", "cart", " 2023-01-05T10:00:00 "),          # a padded date
    ("7", "15", "cart", "2023-01-05T10:00"),               # no seconds
    ("7", "16", "cart", "20230105"),
    ("7", "17", "cart", "2023-01-05t10:00:00"),
    ("7", "18", "cart", "2023-01-05T10:00:00+0200"),
    ("7", "19", "cart", "2023-01-05T24:00:00"),
    ("7", "20", "cart", "2023-01-05T10:00:60"),
    ("7", "21", "cart", "1677-12-31T23:00:00Z"),
    ("7", "22", "cart", "2262-01-01"),
    ("7", "23", "cart", "05/01/2023 10:00"),
    ("+007.", "24", "cart", "2023-01-05T10:00:00.123456-05:30"),
    ("123456789012345678", "25", "cart", "2023-01-05 10:00:00.1"),
    ("1234567890123456789", "26", "cart", "2023-01-05"),  # 19 digits: more than an id may have
]


def test_both_cleaners_count_and_keep_the_same_rows(spark, tmp_path):
    from pipeline.data.clean import clean as clean_local
    from pipeline.spark.clean import clean as clean_spark
    from pipeline.spark.ingest import read_events
    from tests.test_clean import ROWS, RUN_TIME
    path = tmp_path / "edges.csv"
    path.write_text("\n".join(["customer_id,product_id,event,event_date"] +
                              [",".join(row) for row in [*ROWS, *EDGES]]) + "\n", encoding="utf-8")
    params = RunParams(bot_daily_limit=3)
    local = clean_local(read_local(path), params, now=RUN_TIME)
    events, counts, _ = clean_spark(read_events(spark, str(path)), params, now=RUN_TIME)
    assert counts == local.counts
    key = ["customer_id", "product_id", "event", "event_date"]
    got = events.select(*key).toPandas().sort_values(key).reset_index(drop=True)
    want = local.events[key].assign(event=local.events["event"].astype(str)).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_both_engines_evaluate_engagement_alike(spark, tmp_path):
    """The holdout as Spark jobs (pipeline/spark/holdout.py) scores engagement as the in-process holdout does,
    on both splits, on a generated market (bot limit 8: some users are bots on early days, some only late)
    plus user 9999999, who turns into a bot on the last day: the fitting part takes their early rows back."""
    from pipeline.demo.generate import generate
    folder = tmp_path / "market"
    generate(rows=4000, seed=2, out_dir=folder)
    source = folder / "interactions.csv"
    market = pd.read_csv(source, dtype=str)  # an export's columns: index, customer_id, product_id, event, event_date
    last_day = pd.to_datetime(market["event_date"], errors="coerce", format="mixed", utc=True).max().date()
    product = market["product_id"].iloc[0]
    late_bot = [f"x,9999999,{product},cart,2022-10-02T10:00:00"] + \
               [f"x,9999999,{product},cart,{last_day}T0{h}:00:00" for h in range(9)]
    lines = source.read_text().splitlines()
    source.write_text("\n".join(lines + late_bot) + "\n")
    inprocess, sparked = tmp_path / "inprocess.db", tmp_path / "spark.db"
    params = dict(depth=5, exclude="all", bot_daily_limit=8, holdout=0.25, strategy="engagement")
    execute(source, db=inprocess, params=RunParams(**params))
    assert main(["run", "--input", str(source), "--db", str(sparked), "--depth", "5", "--exclude", "all",
                 "--bot-limit", "8", "--holdout", "0.25", "--strategy", "engagement", "--engine", "spark",
                 "--spark-master", "local[2]"]) == 0
    evaluation = _table(sparked, "evaluation", "metric, k").set_index(["metric", "k"])["value"]
    assert evaluation[("recall_micro", 100)] > 0 and evaluation[("inner_recall_micro", 100)] > 0  # hits to compare
    _assert_same_tables(inprocess, sparked)


def _run_both(source: Path, tmp_path: Path, *flags: str) -> tuple[Path, Path]:
    """The same command line with either engine; returns (in-process db, Spark db)."""
    dbs = tmp_path / "inprocess.db", tmp_path / "spark.db"
    for db, engine in zip(dbs, (["--engine", "inprocess"], ["--engine", "spark", "--spark-master", "local[2]"])):
        assert main(["run", "--input", str(source), "--db", str(db), *flags, *engine]) == 0
    return dbs


def test_both_engines_choose_and_publish_the_same_default_run(spark, tmp_path, assert_same_runs):
    """Without --strategy, the Spark engine's driver collects the clean events (they fit) and runs the
    in-process model stages on them: the same strategy chosen on the inner split, every strategy's
    evaluation, the audiences, their reasons and the category audiences, table for table."""
    from pipeline.demo.generate import generate
    generate(rows=6000, seed=3, out_dir=tmp_path)
    inprocess, sparked = _run_both(tmp_path / "interactions.csv", tmp_path, "--products",
                                   str(tmp_path / "products.csv"), "--exclude", "purchased", "--depth", "20")
    tables = assert_same_runs(inprocess, sparked)
    assert tables["evaluation"]["strategy"].nunique() >= 7  # every strategy scored, not engagement alone
    assert len(tables["category_audiences"]) > 0


def test_a_market_too_big_for_the_driver_ranks_engagement_as_spark_jobs(spark, messy_csv, tmp_path, monkeypatch):
    """Without --strategy and with no room on the driver, the Spark engine ranks and evaluates engagement as
    Spark jobs, and the run says why."""
    from pipeline import memory
    monkeypatch.setattr(memory, "available_bytes", lambda: memory.GB // 2)
    db = tmp_path / "spark.db"
    assert main(["run", "--input", str(messy_csv), "--db", str(db), "--depth", "3", "--bot-limit", "3",
                 "--engine", "spark", "--spark-master", "local[2]"]) == 0
    with sqlite3.connect(db) as con:
        params = json.loads(con.execute("SELECT params FROM runs").fetchone()[0])
        strategies = {r[0] for r in con.execute("SELECT DISTINCT strategy FROM evaluation")}
    assert params["strategy"] == "engagement" and strategies == {"engagement"}
    assert params["strategy_selection"] == ("engagement: 9 events need ~0.8 GB on the driver, 0.5 GB are free to "
                                            "score every strategy, so the Spark engine ranks and evaluates "
                                            "engagement as Spark jobs")
