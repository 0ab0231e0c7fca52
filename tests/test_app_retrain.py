"""The Retrain page through AppTest: it runs the pipeline's own command line in the background, checks a
file with the pipeline's own input check, and shows a held run with its reasons."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from app import retrain
from store import queries, writer

ROOT = Path(__file__).resolve().parents[1]


def con_of(db: Path):
    return queries.connect(db)


# --- Retrain ---------------------------------------------------------------------------------------------

def retrain_button(at):
    return next(b for b in at.button if b.label == "Retrain")


def test_retrain_with_the_generator_ends_in_a_succeeded_run_the_page_shows(fresh_db, open_app, texts, wait_for_job):
    at = open_app(fresh_db, "retrain", rt_rows=3000, rt_seed=7)
    retrain_button(at).click().run()
    assert at.session_state["rt_job"].running()
    retrain_button(at).click().run()  # a second press while the first run goes is refused
    assert "already in progress" in texts(at.error)
    wait_for_job(at)
    con = con_of(fresh_db)
    # A 3,000-row demo carries the generator's two bots (2,700 rows): cleaning drops ~47% of the file, over
    # the 20% gate, so the run succeeds but is held and the published run stays run 1.
    assert queries.run(con, 2)["status"] == "succeeded" and queries.current_run_id(con) == 1
    assert any(r.startswith("cleaning dropped") for r in queries.held_reasons(con, 2))
    assert "Run 2 succeeded but is **held**" in texts(at.warning)
    assert (fresh_db.parent / "demo-3000-s7" / "interactions.csv").is_file()  # beside the database
    summary = queries.run(con, 2)["summary"]
    assert {m.label: m.value for m in at.metric}["Rows clean"] == f"{summary['rows_clean']:,}"
    assert "rows=3000" in queries.run(con, 2)["source"]


def test_retrain_is_refused_while_another_run_is_in_progress(fresh_db, open_app, texts):
    wdb = writer.connect(fresh_db)
    run_id = writer.start_run(wdb, {}, "another session")  # a 'running' row whose pid (this test) is alive
    try:
        at = open_app(fresh_db, "retrain")
        retrain_button(at).click().run()
        assert f"run {run_id}" in texts(at.error) and "already in progress" in texts(at.error)
        assert "rt_job" not in at.session_state
    finally:
        writer.fail_run(wdb, run_id, "test over")


def test_the_pipeline_lock_refusal_is_shown(fresh_db, open_app, texts, wait_for_job):
    with writer.RunLock(fresh_db):  # held as if a run had started a moment ago, before its row exists
        at = open_app(fresh_db, "retrain", rt_source="Path on the server")
        events = Path(fresh_db).parent / "events.csv"
        at.text_input(key="rt_path").set_value(str(events)).run()
        retrain_button(at).click().run()
        wait_for_job(at)
    assert "another run is in progress" in texts(at.error)
    assert queries.current_run_id(con_of(fresh_db)) == 1


def test_an_uploaded_parquet_file_is_run_then_published_from_the_page(fresh_db, workbench_events, open_app, texts, wait_for_job):
    buffer = io.BytesIO()
    pd.read_csv(io.StringIO(workbench_events), dtype=str).to_parquet(buffer, index=False)
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
def test_a_bad_upload_shows_an_error_box(fresh_db, name, content, message, open_app, texts):
    at = open_app(fresh_db, "retrain", rt_source="Upload a file")
    at.file_uploader(key="rt_upload").set_value((name, content, "application/octet-stream")).run()
    assert not at.exception and message in texts(at.error)
    assert (Path(fresh_db).parent / "uploads").is_dir()  # kept under data/uploads/ next to the database
    retrain_button(at).click().run()
    assert "rt_job" not in at.session_state


def test_a_failed_run_shows_its_error_and_the_published_run_stays(fresh_db, open_app, texts, wait_for_job):
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




def test_the_semicolon_message_is_the_command_line_s_own(fresh_db, open_app, texts):
    semi = Path(fresh_db).parent / "semi.csv"
    semi.write_text("customer_id;product_id;event;event_date\n1;10;cart;2023-01-01T00:00:00\n")
    cli = subprocess.run([sys.executable, "-m", "pipeline", "run", "--input", str(semi), "--db", str(fresh_db)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "looks ';'-separated" in cli.stderr
    at = open_app(fresh_db, "retrain", rt_source="Path on the server")
    at.text_input(key="rt_path").set_value(str(semi)).run()
    assert texts(at.error) == cli.stderr.strip().removeprefix("error: ")


def test_a_pq_file_is_parquet_for_the_page_as_for_the_pipeline(fresh_db, workbench_events, open_app, texts):
    buffer = io.BytesIO()
    pd.read_csv(io.StringIO(workbench_events), dtype=str).to_parquet(buffer, index=False)
    at = open_app(fresh_db, "retrain", rt_source="Upload a file")
    at.file_uploader(key="rt_upload").set_value(("events.pq", buffer.getvalue(), "application/octet-stream")).run()
    assert not at.error and not at.exception


@pytest.mark.parametrize("engine, master, flags", [
    ("inprocess", "", []),
    ("spark", "", ["--engine", "spark"]),
    ("spark", "spark://head:7077", ["--engine", "spark", "--spark-master", "spark://head:7077"]),
])
def test_the_engine_and_spark_master_reach_the_command_line(engine, master, flags):
    params = dict(depth=100, exclude="all", holdout=0.2, bot_daily_limit=1000, decay_days=90.0,
                  event_weights={"cart": 3}, component_weights={"total": 1}, strategy=retrain.PIPELINE_DEFAULT,
                  engine=engine, spark_master=master)
    cmd = retrain.command("wb.db", retrain.Source("file", path="e.csv"), params, publish=True)
    tail = cmd[cmd.index("--component-weights") + 2:]
    assert tail == flags  # publishing is the default: no flag, the run's gates decide


def test_the_page_passes_the_engine_it_shows(fresh_db, open_app, wait_for_job):
    events = Path(fresh_db).parent / "events.csv"
    at = open_app(fresh_db, "retrain", rt_source="Path on the server", rt_engine="spark",
                  rt_spark_master="spark://head:7077")
    at.text_input(key="rt_path").set_value(str(events)).run()
    assert not at.text_input(key="rt_spark_master").disabled
    retrain_button(at).click().run()
    command = at.session_state["rt_job"].command
    wait_for_job(at)  # whatever this branch's pipeline says of a Spark master it cannot reach
    assert command[command.index("--engine"):command.index("--engine") + 4] == [
        "--engine", "spark", "--spark-master", "spark://head:7077"]


def test_a_held_run_says_held_with_its_reasons_and_can_be_published_anyway(fresh_db, open_app, texts,
                                                                          wait_for_job, hold):
    events = Path(fresh_db).parent / "events.csv"
    # Unpublished, then marked as the gates mark a run they hold (this branch's pipeline has no gates yet).
    at = open_app(fresh_db, "retrain", rt_source="Path on the server", rt_publish=False)
    at.text_input(key="rt_path").set_value(str(events)).run()
    retrain_button(at).click().run()
    at.session_state["rt_job"].process.wait(timeout=120)
    reason = "recall 0.01 below the published run's 0.05"
    hold(fresh_db, 2, [reason])
    wait_for_job(at)
    assert f"Run 2 succeeded but is **held**: it failed the publish gates — {reason}." in texts(at.warning)
    assert not at.success and queries.current_run_id(con_of(fresh_db)) == 1
    at.button(key="rt_publish_anyway").click().run()
    assert queries.current_run_id(con_of(fresh_db)) == 2 and "run 2 is now the published run" in texts(at.success)
