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
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import RunParams
from pipeline.run import execute
from store import queries, writer


@pytest.fixture(scope="module")
def small_db(tmp_path_factory, make_workbench_db) -> Path:
    return make_workbench_db(tmp_path_factory.mktemp("small"))


def download_bytes(files: dict[str, bytes], button) -> bytes:
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    return files[file_id]


def con_of(db: Path) -> sqlite3.Connection:
    return queries.connect(db)


def audience_rows(db: Path, run_id: int, product_id: int) -> pd.DataFrame:
    return pd.read_sql_query("SELECT product_id, rank, customer_id, score FROM audiences WHERE run_id = ? "
                             "AND product_id = ? ORDER BY rank", con_of(db), params=[run_id, product_id])


# --- Overview --------------------------------------------------------------------------------------------

def test_overview_shows_the_database_figures(small_db, open_app, texts):
    at = open_app(small_db)
    shown = {m.label: m.value for m in at.metric}
    # Worked by hand in tests/conftest.py: 12 rows, 7 users, 6 products; sparsity 1 - 12/42; 12/7 per user;
    # users 3, 4, 5, 7 one-time (4/7); nobody active before the split came back; 1 of 3 late products new.
    assert shown == {"Interactions": "12", "Users": "7", "Products": "6", "Sparsity": "0.714286",
                     "Interactions per user": "1.71", "One-time users": "57.14%", "Retention": "0.00%",
                     "New products": "33.33%"}
    quality = at.dataframe[0].value
    rows = dict(zip(quality["check"], quality["rows"], strict=True))
    assert {c: rows[c] for c in ("rows_read", "bad_dates", "duplicates", "rows_clean")} == {
        "rows_read": 14, "bad_dates": 1, "duplicates": 1, "rows_clean": 12}
    assert len(at.get("plotly_chart")) == 5
    assert "collaborative filtering" in texts(at.markdown).lower()


def test_run_picker_switches_every_figure_to_that_run(tmp_path, open_app, make_workbench_db, workbench_events):
    db = make_workbench_db(tmp_path)
    (tmp_path / "more.csv").write_text(workbench_events + "9,16,cart,2023-03-25T10:00:00\n")
    execute(tmp_path / "more.csv", db=db, params=RunParams(depth=5), publish=False)
    at = open_app(db)
    assert {m.label: m.value for m in at.metric}["Interactions"] == "12"  # the published run is the default
    at.sidebar.selectbox[0].set_value(2).run()
    shown = {m.label: (m.value, m.delta) for m in at.metric}
    assert shown["Interactions"] == ("13", "+1") and shown["Products"] == ("7", "+1")


def test_pages_without_a_database_say_what_to_do(tmp_path, open_app, texts):
    for page in (None, "audiences", "runs", "retrain", "service"):
        at = open_app(tmp_path / "missing.db", page)
        assert not at.exception
    at = open_app(tmp_path / "missing.db")
    assert "pipeline demo" in texts(at.info)


# --- Audiences -------------------------------------------------------------------------------------------

def test_audience_table_and_download_equal_the_audiences_rows(small_db, downloads, open_app):
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
    assert len(at.get("plotly_chart")) == 2  # the engagement strategy's holdout gain, then the score split


def test_unknown_product_gets_the_fallback_with_a_notice(small_db, downloads, open_app, texts):
    at = open_app(small_db, "audiences", pick_how="By id")
    at.number_input(key="pick_id").set_value(999).run()
    assert "fallback audience" in texts(at.warning)
    fallback = queries.fallback(con_of(small_db), 1, 5)
    assert at.dataframe[0].value["customer_id"].tolist() == fallback["customer_id"].tolist()
    got = pd.read_csv(io.BytesIO(download_bytes(downloads, at.get("download_button")[0])))
    assert set(got["product_id"]) == {999} and got["customer_id"].tolist() == fallback["customer_id"].tolist()


def test_random_product_is_one_of_the_run(small_db, open_app):
    at = open_app(small_db, "audiences", pick_how="Random")
    drawn = at.session_state["pick_random"][1]
    assert drawn in queries.product_ids(con_of(small_db), 1)
    expected = audience_rows(small_db, 1, drawn)["customer_id"].tolist()[:5]
    assert at.dataframe[0].value["customer_id"].tolist() == expected


def test_bulk_export_streams_the_audiences_in_the_order_given(small_db, open_app, texts):
    at = open_app(small_db, "audiences", export_source="Paste ids")
    at.text_area(key="export_text").set_value("11\n999, 10").run()
    next(b for b in at.button if b.label == "Build export").click().run()
    assert not at.exception and not at.error
    result = at.session_state["export"][1]
    got = pd.read_csv(result.path)
    con = con_of(small_db)
    fallback = queries.fallback(con, 1, 5).assign(product_id=999)
    expected = pd.concat([audience_rows(small_db, 1, 11), fallback[["product_id", "rank", "customer_id", "score"]],
                          audience_rows(small_db, 1, 10)], ignore_index=True)
    assert got["product_id"].drop_duplicates().tolist() == [11, 999, 10]  # as pasted
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-9)
    assert result.unknown == [999] and "999" in texts(at.warning)
    size = result.path.stat().st_size
    assert 100 < size < 1000  # 14 rows of ~25 bytes: shown in bytes, not as "0.0 MB"
    assert f"· {size} B ·" in texts(at.success)


def test_a_new_error_clears_the_last_export_s_success(small_db, open_app, texts):
    at = open_app(small_db, "audiences", export_source="Paste ids")
    at.text_area(key="export_text").set_value("10").run()
    next(b for b in at.button if b.label == "Build export").click().run()
    assert "rows for 1 products" in texts(at.success)
    at.text_area(key="export_text").set_value("10, abc").run()
    next(b for b in at.button if b.label == "Build export").click().run()
    assert "abc" in texts(at.error) and not at.success


def test_the_export_size_estimate_is_measured_on_the_run(small_db, open_app):
    at = open_app(small_db, "audiences", export_source="All products")
    help_text = next(c for c in at.checkbox if c.label == "gzip the file").help
    every = pd.read_sql_query("SELECT product_id, rank, customer_id, score FROM audiences WHERE run_id = 1",
                              con_of(small_db))
    # Every product fits in the 200-product sample, so the estimate is the file itself: header + rows.
    plain = len("product_id,rank,customer_id,score\n") + sum(
        len(f"{p},{r},{c},{s:.9f}\n") for p, r, c, s in every.itertuples(index=False))
    assert help_text.startswith(f"All {every['product_id'].nunique()} products of this run at top 5: about "
                                f"{plain} B as plain CSV")


def test_bulk_export_from_an_uploaded_list(small_db, open_app):
    at = open_app(small_db, "audiences", export_source="Upload a list")
    at.file_uploader(key="export_file").set_value(("ids.csv", b"product_id,note\n11,x\n12,y\n", "text/csv")).run()
    next(b for b in at.button if b.label == "Build export").click().run()
    got = pd.read_csv(at.session_state["export"][1].path)
    expected = pd.concat([audience_rows(small_db, 1, 11), audience_rows(small_db, 1, 12)], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-9)


def test_bulk_export_of_every_product_and_bad_ids(small_db, open_app, texts):
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


def test_user_lookup_shows_features_and_the_audiences_that_hold_the_user(small_db, open_app, texts):
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


def test_service_page_reads_health_metrics_and_the_latest_stress_run(fresh_db, open_app):
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


def test_service_page_says_clearly_when_the_api_is_down(fresh_db, open_app, texts):
    at = open_app(fresh_db, "service", api_url="http://127.0.0.1:9")  # the discard port: nothing listens
    assert "not reachable" in texts(at.info) and not at.exception and not at.error


def test_api_url_comes_from_the_environment(fresh_db, monkeypatch, open_app, texts):
    monkeypatch.setenv("WORKBENCH_API_URL", "http://127.0.0.1:9/")
    at = open_app(fresh_db, "service")
    assert "http://127.0.0.1:9/health" in texts(at.info)
