"""The workbench pages through streamlit.testing.v1.AppTest, on small databases built by the real pipeline.

The tiny events file below has answers worked out by hand: 14 rows read, one exact duplicate and one bad
date dropped, so 12 clean interactions by 7 users on 6 products; product 10 was touched by users 1, 2 and 6,
so its audience (exclusion rule "all") is the other four users.
"""
from __future__ import annotations

import http.server
import io
import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from app import compare
from pipeline.config import RunParams
from pipeline.run import execute
from reports.kpis import kpis
from reports.tables import format_stat
from store import queries, writer
from tests.conftest import WORKBENCH_EVENTS as EVENTS

APP = str(Path(__file__).resolve().parents[1] / "app" / "workbench.py")


def build_db(tmp: Path, exclude: str = "all", publish: bool = True, db: Path | None = None) -> Path:
    db = db or tmp / "wb.db"
    events = tmp / "events.csv"
    events.write_text(EVENTS)
    execute(events, db=db, params=RunParams(depth=5, holdout=0.2, exclude=exclude), publish=publish)
    return db


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> Path:
    return build_db(tmp_path_factory.mktemp("small"))


@pytest.fixture
def fresh_db(tmp_path) -> Path:
    return build_db(tmp_path)


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


def download_bytes(files: dict[str, bytes], button) -> bytes:
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    return files[file_id]


def open_app(db: Path, page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["db_path"] = str(db)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def con_of(db: Path) -> sqlite3.Connection:
    return queries.connect(db)


def audience_rows(db: Path, run_id: int, product_id: int) -> pd.DataFrame:
    return pd.read_sql_query("SELECT product_id, rank, customer_id, score FROM audiences WHERE run_id = ? "
                             "AND product_id = ? ORDER BY rank", con_of(db), params=[run_id, product_id])


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


# --- Overview --------------------------------------------------------------------------------------------

def test_overview_shows_the_database_figures(small_db):
    at = open_app(small_db)
    con = con_of(small_db)
    run_id = queries.current_run_id(con)
    stats = queries.stats(con, run_id)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Interactions"] == "12" and shown["Users"] == "7" and shown["Products"] == "6"  # by hand
    assert shown == {k.label: k.value for k in kpis(stats, None)}
    assert shown["One-time users"] == f"{100 * 4 / 7:.2f}%"  # users 3, 4, 5 and 7 have one row each
    quality = at.dataframe[0].value
    assert quality.to_dict("list") == queries.data_quality(con, run_id).to_dict("list")
    assert dict(zip(quality["check"], quality["rows"]))["duplicates"] == 1
    assert len(at.get("plotly_chart")) == 5
    assert "collaborative filtering" in texts(at.markdown).lower()


def test_run_picker_switches_every_figure_to_that_run(tmp_path):
    db = build_db(tmp_path)
    (tmp_path / "more.csv").write_text(EVENTS + "9,16,cart,2023-03-25T10:00:00\n")
    execute(tmp_path / "more.csv", db=db, params=RunParams(depth=5), publish=False)
    at = open_app(db)
    assert {m.label: m.value for m in at.metric}["Interactions"] == "12"  # the published run is the default
    at.sidebar.selectbox[0].set_value(2).run()
    shown = {m.label: (m.value, m.delta) for m in at.metric}
    assert shown["Interactions"] == ("13", "+1") and shown["Products"] == ("7", "+1")


def test_pages_without_a_database_say_what_to_do(tmp_path):
    for page in (None, "audiences", "runs", "retrain", "service"):
        at = open_app(tmp_path / "missing.db", page)
        assert not at.exception
    at = open_app(tmp_path / "missing.db")
    assert "pipeline demo" in texts(at.info)


# --- Audiences -------------------------------------------------------------------------------------------

def test_audience_table_and_download_equal_the_audiences_rows(small_db, downloads):
    at = open_app(small_db, "audiences")
    assert at.selectbox(key="pick_top").value == 10  # the most active product (4 interactions)
    at.number_input(key="audience_n").set_value(5).run()
    expected = audience_rows(small_db, 1, 10)
    assert expected["customer_id"].tolist() == [c for c in expected["customer_id"] if c not in (1, 2, 6)]
    assert len(expected) == 4
    table = at.dataframe[0].value
    assert table["customer_id"].tolist() == expected["customer_id"].tolist()
    features = queries.user_features(con_of(small_db), 1, expected["customer_id"]).set_index("customer_id")
    assert table["total_interactions"].tolist() == features.loc[expected["customer_id"], "total_interactions"].tolist()
    assert table["other_audiences"].tolist() == (features.loc[expected["customer_id"], "audience_count"] - 1).tolist()
    got = pd.read_csv(io.BytesIO(download_bytes(downloads, at.get("download_button")[0])))
    assert got.columns.tolist() == ["product_id", "rank", "customer_id", "score"]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-9)
    assert len(at.get("plotly_chart")) == 1


def test_unknown_product_gets_the_fallback_with_a_notice(small_db, downloads):
    at = open_app(small_db, "audiences", pick_how="By id")
    at.number_input(key="pick_id").set_value(999).run()
    assert "fallback audience" in texts(at.warning)
    fallback = queries.fallback(con_of(small_db), 1, 5)
    assert at.dataframe[0].value["customer_id"].tolist() == fallback["customer_id"].tolist()
    got = pd.read_csv(io.BytesIO(download_bytes(downloads, at.get("download_button")[0])))
    assert set(got["product_id"]) == {999} and got["customer_id"].tolist() == fallback["customer_id"].tolist()


def test_random_product_is_one_of_the_run(small_db):
    at = open_app(small_db, "audiences", pick_how="Random")
    drawn = at.session_state["pick_random"][1]
    assert drawn in queries.product_ids(con_of(small_db), 1)
    expected = audience_rows(small_db, 1, drawn)["customer_id"].tolist()[:5]
    assert at.dataframe[0].value["customer_id"].tolist() == expected


def test_bulk_export_streams_the_audiences_and_the_fallback(small_db):
    at = open_app(small_db, "audiences", export_source="Paste ids")
    at.text_area(key="export_text").set_value("11\n999, 10").run()
    next(b for b in at.button if b.label == "Build export").click().run()
    assert not at.exception and not at.error
    result = at.session_state["export"][1]
    got = pd.read_csv(result.path)
    con = con_of(small_db)
    fallback = queries.fallback(con, 1, 5).assign(product_id=999)
    expected = pd.concat([audience_rows(small_db, 1, 10), audience_rows(small_db, 1, 11),
                          fallback[["product_id", "rank", "customer_id", "score"]]], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-9)
    assert result.unknown == [999] and "999" in texts(at.warning)


def test_bulk_export_from_an_uploaded_list(small_db):
    at = open_app(small_db, "audiences", export_source="Upload a list")
    at.file_uploader(key="export_file").set_value(("ids.csv", b"product_id,note\n11,x\n12,y\n", "text/csv")).run()
    next(b for b in at.button if b.label == "Build export").click().run()
    got = pd.read_csv(at.session_state["export"][1].path)
    expected = pd.concat([audience_rows(small_db, 1, 11), audience_rows(small_db, 1, 12)], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-9)


def test_bulk_export_of_every_product_and_bad_ids(small_db):
    at = open_app(small_db, "audiences", export_source="All products")
    next(b for b in at.button if b.label == "Build export").click().run()
    path = at.session_state["export"][1].path
    assert path.suffix == ".gz"  # every product: gzipped by default
    got = pd.read_csv(path)
    every = pd.read_sql_query("SELECT product_id, rank, customer_id, score FROM audiences WHERE run_id = 1 "
                              "ORDER BY product_id, rank", con_of(small_db))
    pd.testing.assert_frame_equal(got, every, check_dtype=False, atol=1e-9)
    at = open_app(small_db, "audiences", export_source="Paste ids")
    at.text_area(key="export_text").set_value("10, abc").run()
    next(b for b in at.button if b.label == "Build export").click().run()
    assert "abc" in texts(at.error) and not at.exception


def test_user_lookup_shows_features_and_the_audiences_that_hold_the_user(small_db):
    at = open_app(small_db, "audiences")
    at.number_input(key="lookup_id").set_value(3).run()
    con = con_of(small_db)
    user = queries.user(con, 1, 3)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Engagement rank (of 7)"] == f"{user['engagement_rank']:,}"
    assert shown["Audiences"] == str(user["audience_count"])
    held = pd.read_sql_query("SELECT product_id, rank FROM audiences WHERE run_id = 1 AND customer_id = 3 "
                             "ORDER BY rank, product_id", con)
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["product_id", "rank"])
    assert table.to_dict("list") == held.to_dict("list") and len(held) == user["audience_count"]
    at.number_input(key="lookup_id").set_value(424242).run()
    assert "424242" in texts(at.warning)


# --- Retrain ---------------------------------------------------------------------------------------------

def wait_for_job(at: AppTest, seconds: float = 90) -> AppTest:
    deadline = time.monotonic() + seconds
    while at.session_state["rt_job"].running():
        assert time.monotonic() < deadline, "the pipeline did not finish in time"
        time.sleep(0.3)
        at.run()
    return at.run()


def retrain_button(at: AppTest):
    return next(b for b in at.button if b.label == "Retrain")


def test_retrain_with_the_generator_ends_in_a_succeeded_run_the_page_shows(fresh_db):
    at = open_app(fresh_db, "retrain", rt_rows=3000, rt_seed=7)
    retrain_button(at).click().run()
    assert at.session_state["rt_job"].running()
    retrain_button(at).click().run()  # a second press while the first run goes is refused
    assert "already in progress" in texts(at.error)
    wait_for_job(at)
    con = con_of(fresh_db)
    assert queries.current_run_id(con) == 2 and queries.run(con, 2)["status"] == "succeeded"
    assert "Run 2 succeeded and is published" in texts(at.success)
    summary = queries.run(con, 2)["summary"]
    assert {m.label: m.value for m in at.metric}["Rows clean"] == f"{summary['rows_clean']:,}"
    assert "rows=3000" in queries.run(con, 2)["source"]


def test_retrain_is_refused_while_another_run_is_in_progress(fresh_db):
    wdb = writer.connect(fresh_db)
    run_id = writer.start_run(wdb, {}, "another session")  # a 'running' row whose pid (this test) is alive
    try:
        at = open_app(fresh_db, "retrain")
        retrain_button(at).click().run()
        assert f"run {run_id}" in texts(at.error) and "already in progress" in texts(at.error)
        assert "rt_job" not in at.session_state
    finally:
        writer.fail_run(wdb, run_id, "test over")


def test_the_pipeline_lock_refusal_is_shown(fresh_db):
    with writer.RunLock(fresh_db):  # held as if a run had started a moment ago, before its row exists
        at = open_app(fresh_db, "retrain", rt_source="Path on the server")
        events = Path(fresh_db).parent / "events.csv"
        at.text_input(key="rt_path").set_value(str(events)).run()
        retrain_button(at).click().run()
        wait_for_job(at)
    assert "another run is in progress" in texts(at.error)
    assert queries.current_run_id(con_of(fresh_db)) == 1


def test_an_uploaded_parquet_file_is_run_then_published_from_the_page(fresh_db):
    buffer = io.BytesIO()
    pd.read_csv(io.StringIO(EVENTS), dtype=str).to_parquet(buffer, index=False)
    at = open_app(fresh_db, "retrain", rt_source="Upload a file", rt_publish=False)
    at.file_uploader(key="rt_upload").set_value(("events.parquet", buffer.getvalue(), "application/octet-stream"))
    at.run()
    retrain_button(at).click().run()
    wait_for_job(at)
    con = con_of(fresh_db)
    assert queries.run(con, 2)["summary"]["rows_clean"] == 12 and "uploads" in queries.run(con, 2)["source"]
    assert "Run 2 succeeded (not published)" in texts(at.success) and queries.current_run_id(con) == 1
    at.button(key="rt_publish_now").click().run()
    assert queries.current_run_id(con) == 2 and "Run 2 succeeded and is published" in texts(at.success)


@pytest.mark.parametrize("name, content, message", [
    ("bad.csv", b"foo,bar\n1,2\n", "missing column(s) customer_id"),
    ("bad.parquet", b"this is not parquet", "not a readable Parquet file"),
    ("empty.csv", b"", "is empty"),
])
def test_a_bad_upload_shows_an_error_box(fresh_db, name, content, message):
    at = open_app(fresh_db, "retrain", rt_source="Upload a file")
    at.file_uploader(key="rt_upload").set_value((name, content, "application/octet-stream")).run()
    assert not at.exception and message in texts(at.error)
    assert (Path(fresh_db).parent / "uploads").is_dir()  # kept under data/uploads/ next to the database
    retrain_button(at).click().run()
    assert "rt_job" not in at.session_state


def test_a_failed_run_shows_its_error_and_the_published_run_stays(fresh_db):
    bad = Path(fresh_db).parent / "no_valid_rows.csv"
    bad.write_text("customer_id,product_id,event,event_date\nx,10,cart,2023-01-01T00:00:00\n")
    at = open_app(fresh_db, "retrain", rt_source="Path on the server")
    at.text_input(key="rt_path").set_value(str(bad)).run()
    retrain_button(at).click().run()
    wait_for_job(at)
    con = con_of(fresh_db)
    assert queries.run(con, 2)["status"] == "failed"
    assert queries.run(con, 2)["error"] in texts(at.error)
    assert queries.current_run_id(con) == 1


# --- Runs ------------------------------------------------------------------------------------------------

def two_runs(tmp: Path) -> Path:
    db = build_db(tmp)
    build_db(tmp, exclude="none", publish=False, db=db)
    return db


def test_runs_history_publish_and_roll_back(tmp_path):
    db = two_runs(tmp_path)
    at = open_app(db, "runs")
    history = at.dataframe[0].value.set_index("run")
    con = con_of(db)
    for run in queries.runs(con):
        assert history.loc[run["run_id"], "rows clean"] == run["summary"]["rows_clean"]
        assert history.loc[run["run_id"], "status"] == run["status"]
    assert history.loc[1, "published"] == "● current"
    next(b for b in at.button if b.label == "Publish run 2").click().run()
    assert queries.current_run_id(con) == 2 and "run 2 is now the published run" in texts(at.success)
    next(b for b in at.button if b.label == "Roll back to run 1").click().run()
    assert queries.current_run_id(con) == 1


def test_compare_two_runs_matches_a_direct_computation(tmp_path):
    db = two_runs(tmp_path)
    at = open_app(db, "runs")
    at.toggle(key="cmp_deep").set_value(True).run()
    assert not at.exception
    con = con_of(db)
    a, b = at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value
    rows = pd.read_sql_query("SELECT run_id, product_id, customer_id, rank FROM audiences", con)
    shown = {m.label: m.value for m in at.metric}
    for k in (10, 100):
        lists = {r: rows[(rows.run_id == r) & (rows["rank"] <= k)].groupby("product_id")["customer_id"].apply(set)
                 for r in (a, b)}
        common = lists[a].index.intersection(lists[b].index)
        jaccards = [len(lists[a][p] & lists[b][p]) / len(lists[a][p] | lists[b][p]) for p in common]
        assert shown[f"Mean Jaccard@{k}"] == f"{np.mean(jaccards):.3f}"
    scores = {r: queries.user_features(con, r, range(1, 10)).set_index("customer_id")["engagement_score"]
              for r in (a, b)}
    rho = pd.concat(scores, axis=1).rank().corr().iloc[0, 1]
    assert shown["Spearman ρ of engagement scores"] == f"{rho:.3f}"
    deltas = at.dataframe[1].value.set_index("statistic")
    assert deltas.loc["total_interactions", "run A"] == format_stat("total_interactions", 12)


def test_jaccard_known_answers():
    a = np.array([[1, 2, 3], [5, 6, 7]])
    b = np.array([[2, 3, 4], [7, 8, 9]])
    assert compare.jaccard(a, np.array([3, 3]), b, np.array([3, 3]), 3).tolist() == [0.5, 0.2]
    # sizes cut the lists: {1, 2} vs {2} -> 1/2; padding never matches
    assert compare.jaccard(a, np.array([2, 0]), b, np.array([1, 0]), 3).tolist() == [0.5, 1.0]


# --- Service ---------------------------------------------------------------------------------------------

class FakeApi(http.server.BaseHTTPRequestHandler):
    answers = {"/health": {"status": "healthy", "run_id": 1, "products": 6, "loaded_at": "2023-04-01T00:00:00"},
               "/metrics": {"run_id": 1, "counts": {"products": 6, "users": 7}, "stats": {"unique_users": 7.0},
                            "evaluation": []}}

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps(self.answers.get(self.path, {"detail": "not found"})).encode()
        self.send_response(200 if self.path in self.answers else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_service_page_reads_health_metrics_and_the_latest_stress_run(fresh_db):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    writer.add_stress_run(writer.connect(fresh_db), {
        "run_id": 1, "started_at": "2023-04-01T00:00:00", "finished_at": "2023-04-01T00:01:00", "users": 50,
        "duration_s": 60.0, "requests": 12000, "failures": 0, "rps": 200.0, "p50_ms": 4.0, "p95_ms": 9.0,
        "p99_ms": 15.0, "report_html": "stress.html",
        "per_endpoint": json.dumps({"endpoints": [{"name": "/recommend", "requests": 12000}]})})
    try:
        at = open_app(fresh_db, "service", api_url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    shown = {m.label: m.value for m in at.metric}
    assert shown["Serving run"] == "1" and shown["Products"] == "6" and shown["Status"] == "healthy"
    assert shown["Requests"] == "12,000" and shown["Requests/s"] == "200.0" and shown["p99"] == "15 ms"
    assert not at.info and not at.exception


def test_service_page_says_clearly_when_the_api_is_down(fresh_db):
    at = open_app(fresh_db, "service", api_url="http://127.0.0.1:9")  # the discard port: nothing listens
    assert "not reachable" in texts(at.info) and not at.exception and not at.error


def test_api_url_comes_from_the_environment(fresh_db, monkeypatch):
    monkeypatch.setenv("WORKBENCH_API_URL", "http://127.0.0.1:9/")
    at = open_app(fresh_db, "service")
    assert "http://127.0.0.1:9/health" in texts(at.info)
