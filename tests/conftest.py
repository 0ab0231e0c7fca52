"""Shared test helpers: tiny event files written in the test, and a small published database."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

pytest_plugins = ["pytester"]  # test_app_e2e.py runs the chromium rule in a pytest of its own

HEADER = "customer_id,product_id,event,event_date"

# Four users, three products; worked by hand in test_features.py and test_audiences.py.
FOUR_USERS = [
    (1, 1, "purchased", "2023-01-01T00:00:00"),
    (1, 2, "cart", "2023-01-03T12:00:00"),
    (1, 1, "cart", "2023-01-11T00:00:00"),
    (2, 3, "wishlist", "2023-01-21T00:00:00"),
    (3, 1, "rating", "2023-01-30T00:00:00"),
    (3, 3, "search_keyword", "2023-01-30T23:00:00"),
    (4, 2, "cart", "2023-01-31T00:00:00"),
    (4, 2, "cart", "2023-01-31T06:00:00"),
]

# The workbench tests' run (app, browser, report): 14 rows read, one exact duplicate and one bad date
# dropped, so 12 clean interactions by 7 users on 6 products; product 10 is the most active (4 interactions).
# Worked by hand: events cart 6, purchased 3, wishlist, search_keyword and rating 1 each; users 3, 4, 5 and
# 7 have one interaction; the holdout split (80% quantile of event time) falls between 03-10 and 03-12, so
# the late part is 6,10 / 6,14 / 7,15: late users 6 and 7 were never seen before (retention 0%), and of the
# late products 10, 14 and 15 only 15 is new (33.33%).
WORKBENCH_EVENTS = """customer_id,product_id,event,event_date
1,10,purchased,2023-01-05T10:00:00
1,11,cart,2023-01-20T10:00:00
1,12,cart,2023-02-03T10:00:00
1,10,cart,2023-03-01T10:00:00
2,10,cart,2023-01-06T10:00:00
2,13,wishlist,2023-02-10T10:00:00
3,11,purchased,2023-01-10T10:00:00
4,12,search_keyword,2023-02-15T10:00:00
5,14,rating,2023-03-10T10:00:00
6,10,cart,2023-03-12T10:00:00
6,14,purchased,2023-03-15T10:00:00
7,15,cart,2023-03-20T10:00:00
2,10,cart,2023-01-06T10:00:00
8,11,cart,not-a-date
"""


def skip_unless_ci(reason: str) -> None:
    """A check that cannot run here (a tool or file outside the repository is missing): skipped on a
    developer's machine, a failure under CI (CI=true), where a silently skipped check would pass unseen."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(f"{reason}; under CI this check must run", pytrace=False)
    pytest.skip(reason)


def day(d: int, hour: int = 10) -> str:
    return f"2023-01-{d:02d}T{hour:02d}:00:00"


# Two communities that never touch each other's products. Users 1-3 take 10 and 11, user 4 takes 11 and
# 12; users 5-7 take 20 and 21 (three events each: more engaged), user 8 takes 21 and 22.
COMMUNITIES = (
    [(u, 10, "cart", day(u)) for u in (1, 2, 3)] + [(u, 11, "purchased", day(u + 10)) for u in (1, 2, 3)]
    + [(4, 11, "cart", day(5)), (4, 12, "purchased", day(15))]
    + [(u, 20, "cart", day(u)) for u in (5, 6, 7)] + [(u, 21, "purchased", day(u + 10)) for u in (5, 6, 7)]
    + [(u, 21, "rating", day(u + 12)) for u in (5, 6, 7)]
    + [(8, 21, "cart", day(6)), (8, 22, "purchased", day(16))]
)


def write_events(path: Path, rows, header: str = HEADER) -> Path:
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def four_users_csv(tmp_path: Path) -> Path:
    return write_events(tmp_path / "four_users.csv", FOUR_USERS)


@pytest.fixture
def published_db(tmp_path: Path, four_users_csv: Path) -> Path:
    """A database whose current run is the four-user example at depth 3."""
    from pipeline.config import RunParams
    from pipeline.run import execute
    db = tmp_path / "audiences.db"
    execute(four_users_csv, db=db, params=RunParams(depth=3, strategy="engagement"))
    return db


# --- The serving API's small run (worked by hand in tests/test_api.py) -------------------------------------
# All events on one day: engagement order is users 1..5, the fallback is [1, 2, 3, 4, 5] with scores
# 0.975, 0.6, 0.125, 0.075, 0.025, and excluding whoever touched the product, product 10 -> [3, 4, 5],
# product 11 -> [4, 5], product 12 -> [2, 3].
API_EVENTS = [(1, 10, "purchased", "09:00"), (1, 11, "purchased", "09:10"), (1, 12, "purchased", "09:20"),
              (2, 10, "purchased", "10:00"), (2, 11, "purchased", "10:10"), (3, 11, "cart", "11:00"),
              (4, 12, "wishlist", "12:00"), (5, 12, "search_keyword", "13:00")]
API_DEPTH = 5


@pytest.fixture(scope="session")
def build_api_db():
    """A factory: build_api_db(folder, events=API_EVENTS, extra=(), publish=True, name=...) -> (db, run_id), a
    run of the real pipeline at depth 5 on events (plus extra) given as (customer, product, event, HH:MM on
    2023-01-05)."""
    def build(folder: Path, events=API_EVENTS, extra=(), publish: bool = True,
              name: str = "audiences.db") -> tuple[Path, int]:
        events = [*events, *extra]
        from pipeline.config import RunParams
        from pipeline.run import execute
        db = folder / name
        source = write_events(folder / f"{name}.csv", [(c, p, e, f"2023-01-05T{t}:00") for c, p, e, t in events])
        result = execute(source, db=db, params=RunParams(depth=API_DEPTH, holdout=0.2), publish=publish)
        return db, result.run_id
    return build


@pytest.fixture(scope="session")
def api_client():
    """A factory: api_client(db, reload_seconds=2.0) -> a TestClient of the API on that database."""
    def client(db: Path, reload_seconds: float = 2.0):
        from fastapi.testclient import TestClient

        from api.main import create_app
        from api.settings import Settings
        return TestClient(create_app(Settings(db=db, reload_seconds=reload_seconds)))
    return client


@pytest.fixture(scope="session")
def workbench_events() -> str:
    return WORKBENCH_EVENTS


@pytest.fixture(scope="session")
def make_workbench_db():
    """Build a database from WORKBENCH_EVENTS with the real pipeline (depth 5, holdout 0.2): a function of
    (folder, exclude, publish, db), so a test can add a second run to the same database."""
    def build(folder: Path, exclude: str = "all", publish: bool = True, db: Path | None = None) -> Path:
        from pipeline.config import RunParams
        from pipeline.run import execute
        db = db or folder / "wb.db"
        events = folder / "events.csv"
        events.write_text(WORKBENCH_EVENTS)
        execute(events, db=db, params=RunParams(depth=5, holdout=0.2, exclude=exclude), publish=publish)
        return db
    return build


@pytest.fixture
def fresh_db(tmp_path, make_workbench_db) -> Path:
    """A workbench database of its own for a test that writes (retrain, publish)."""
    return make_workbench_db(tmp_path)


# --- the workbench through streamlit.testing.v1.AppTest (tests/test_app*.py) ----------------------------

APP = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")


@pytest.fixture(scope="session")
def open_app():
    """open_app(db, page=None, **session_state) -> an AppTest that ran the workbench on that page."""
    from streamlit.testing.v1 import AppTest

    def open_(db: Path, page: str | None = None, **state):
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["db_path"] = str(db)
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        if page:
            at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.message for e in at.exception]
        return at
    return open_


@pytest.fixture(scope="session")
def texts():
    """texts(elements) -> the values of AppTest elements (at.error, at.success …) as one string."""
    return lambda elements: " ".join(str(e.value) for e in elements)


@pytest.fixture(scope="session")
def wait_for_job():
    """wait_for_job(at) -> at, rerun until the Retrain page's background pipeline has ended."""
    import time

    def wait(at, seconds: float = 90):
        deadline = time.monotonic() + seconds
        while at.session_state["rt_job"].running():
            assert time.monotonic() < deadline, "the pipeline did not finish in time"
            time.sleep(0.3)
            at.run()
        return at.run()
    return wait


@pytest.fixture(scope="session")
def hold():
    """hold(db, run_id, reasons): what the publish gates leave on a held run, runs.held as a JSON list
    (the column is added when the schema does not have it yet)."""
    import json
    import sqlite3

    def hold_(db: Path, run_id: int, reasons: list[str]) -> None:
        con = sqlite3.connect(db)
        if "held" not in [row[1] for row in con.execute("PRAGMA table_info(runs)")]:
            con.execute("ALTER TABLE runs ADD COLUMN held TEXT")
        con.execute("UPDATE runs SET held = ? WHERE run_id = ?", [json.dumps(reasons), run_id])
        con.commit()
        con.close()
    return hold_


# --- Debian's chromium for the browser tests: under CI a missing browser fails, it never skips ------------

@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium Playwright drives ($WORKBENCH_CHROMIUM, default Debian's /usr/bin/chromium). Missing:
    a skip on a laptop, a failure under CI=true, where a skipped browser test would pass unseen."""
    path = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
    if Path(path).exists():
        return path
    skip_unless_ci(f"needs Debian's chromium at {path}: apt-get install -y chromium")


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for every Spark test (a JVM start costs seconds); a run asked for
    --spark-master local[2] reuses it."""
    from pipeline.spark.session import spark_session
    with spark_session("local[2]") as session:
        # Test tables have a few rows: one shuffle partition per core instead of four.
        session.conf.set("spark.sql.shuffle.partitions", "2")
        yield session


# --- A propensity run with a catalogue (why this user, calibration, gain, category audiences) --------------
# WORKBENCH_EVENTS under --exclude purchased with this catalogue. By hand: the data ends 2023-03-20; user 6
# carted product 10 on 03-12 (8 days before), user 2 carted it on 01-06 (73 days) and wishlisted 13 on 02-10
# (38 days); user 1 bought 10, so is left out of its audience.
WORKBENCH_CATALOGUE = 'product_id,category\n10,Shoes\n11,Shoes\n12,Bags\n13,Bags\n14,Shoes\n15,"Hats, caps"\n'


@pytest.fixture(scope="session")
def propensity_db(tmp_path_factory) -> Path:
    """The workbench events ranked by propensity (depth 5, holdout 0.2) with WORKBENCH_CATALOGUE, published."""
    from pipeline.config import RunParams
    from pipeline.run import execute
    folder = tmp_path_factory.mktemp("propensity")
    (folder / "events.csv").write_text(WORKBENCH_EVENTS)
    (folder / "products.csv").write_text(WORKBENCH_CATALOGUE)
    db = folder / "p.db"
    execute(folder / "events.csv", db=db, products_path=folder / "products.csv",
            params=RunParams(depth=5, holdout=0.2, exclude="purchased", strategy="propensity"))
    return db


@pytest.fixture(scope="session")
def without_model_tables():
    """without_model_tables(db, folder) -> a copy of db as a database written before calibration, gain and
    reasons were stored (the tables dropped)."""
    import sqlite3

    def strip(db: Path, folder: Path) -> Path:
        copy = folder / f"old-{db.name}"
        src = sqlite3.connect(db)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        for table in ("calibration", "gain", "audience_reasons"):
            dst.execute(f"DROP TABLE {table}")
        dst.commit()
        dst.close()
        return copy
    return strip


class RecordingStorage(MemoryMediaFileStorage):
    """AppTest's media storage, keeping every stored file so a test can read a download button's bytes."""
    files: dict[str, bytes] = {}

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
        file_id = super().load_and_get_id(path_or_data, mimetype, kind, filename)
        RecordingStorage.files[file_id] = self.get_file(file_id).content
        return file_id


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", RecordingStorage)
    RecordingStorage.files.clear()
    return RecordingStorage.files


# Every table a run writes from the events, with an order that makes two runs comparable row by row.
RUN_TABLES = {"stats": "name", "data_quality": "position", "user_features": "customer_id", "products": "product_id",
              "audience_lists": "product_id", "audience_reasons": "product_id", "fallback_audience": "rank",
              "evaluation": "strategy, metric, k", "calibration": "decile", "gain": "strategy, n",
              "category_audiences": "category", "cohort_retention": "cohort_month, months_since",
              "daily_events": "day, event", "activity_histogram": "interactions", "product_months": "month",
              "top_products": "rank"}


@pytest.fixture(scope="session")
def assert_same_runs():
    """Assert that two databases' latest runs wrote equal tables (RUN_TABLES) and ranked with the same
    strategy, chosen the same way."""
    import json
    import sqlite3

    import pandas as pd

    def latest(db: Path) -> tuple[dict[str, pd.DataFrame], dict]:
        with sqlite3.connect(db) as con:
            run_id, params = con.execute("SELECT run_id, params FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
            tables = {t: pd.read_sql(f'SELECT * FROM "{t}" WHERE run_id = ? ORDER BY {o}', con, params=[run_id])
                      .drop(columns="run_id") for t, o in RUN_TABLES.items()}
        return tables, json.loads(params)

    def same(first: Path, second: Path) -> dict[str, pd.DataFrame]:
        (a, pa), (b, pb) = latest(first), latest(second)
        assert (pa["strategy"], pa["strategy_selection"]) == (pb["strategy"], pb["strategy_selection"])
        for table in RUN_TABLES:
            pd.testing.assert_frame_equal(a[table], b[table], obj=table)
        return a
    return same
