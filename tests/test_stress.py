"""The stress tooling: the locustfile loads, its checks reject wrong answers, and `python -m stress run`
works end to end on a small database (a few seconds of load, on 127.0.0.1)."""
from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stress.checks import check_csv, check_health, check_metrics, check_recommend, check_user
from stress.run import parse_duration, read_stats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def answers(tmp_path_factory, build_api_db, api_client) -> dict:
    """Real answers of the API on the small database (product 10's audience is [3, 4, 5])."""
    db, _ = build_api_db(tmp_path_factory.mktemp("stress"))
    with api_client(db) as c:
        return {"known": c.get("/recommend/10?n=3").json(), "new": c.get("/recommend/999?n=4").json(),
                "csv": c.get("/audiences/10.csv?n=3").text, "user": c.get("/users/3").json(),
                "health": c.get("/health").json(), "metrics": c.get("/metrics").json()}


def test_locustfile_loads_in_locust(tmp_path):
    # In a subprocess: importing locust monkey-patches the whole process with gevent.
    out = subprocess.run([sys.executable, "-m", "locust", "-f", "stress/locustfile.py", "--list"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "AudienceClient" in out.stdout


def test_checks_accept_right_answers(answers):
    assert check_recommend(answers["known"], 10, 3, cold_start=False) is None
    assert check_recommend(answers["new"], 999, 4, cold_start=True) is None
    assert check_csv(answers["csv"], 10, 3) is None
    assert check_user(answers["user"], 3) is None
    assert check_health(answers["health"]) is None
    assert check_metrics(answers["metrics"]) is None


def _broken(body: dict, change) -> dict:
    body = copy.deepcopy(body)
    change(body)
    return body


@pytest.mark.parametrize("change, expected", [
    (lambda b: b.update(product_id=11), "product"),
    (lambda b: b.update(count=2), "count"),
    (lambda b: b["recommendations"].pop(), "count"),
    (lambda b: b["recommendations"][1].update(rank=3), "ranks"),
    (lambda b: b["recommendations"][2].update(score=99.0), "rank order"),
    (lambda b: b["recommendations"][2].update(customer_id=b["recommendations"][0]["customer_id"]), "distinct"),
    (lambda b: b["recommendations"][0].pop("score"), "without"),
    (lambda b: b.update(cold_start=True), "cold_start"),
])
def test_recommend_check_rejects_wrong_answers(answers, change, expected):
    assert expected in check_recommend(_broken(answers["known"], change), 10, 3, cold_start=False)


def test_recommend_check_rejects_wrong_count_and_missing_fallback_note(answers):
    assert "count" in check_recommend(answers["known"], 10, 5, cold_start=False)
    assert "fallback" in check_recommend(_broken(answers["new"], lambda b: b.update(note=None)), 999, 4, True)
    assert check_recommend(["not", "an", "object"], 10, 3, False) == "not a JSON object"


def test_other_checks_reject_wrong_answers(answers):
    assert check_csv(answers["csv"].replace("product_id,", "product,"), 10, 3)
    assert check_csv(answers["csv"], 11, 3) and check_csv(answers["csv"], 10, 4)
    assert check_user(answers["user"], 4)
    assert check_user(_broken(answers["user"], lambda b: b.pop("engagement_rank")), 3)
    assert check_health({"status": "unavailable", "run_id": None})
    assert check_metrics(_broken(answers["metrics"], lambda b: b["counts"].update(products=0)))


@pytest.mark.parametrize("text, seconds", [("300", 300), ("90s", 90), ("5m", 300), ("1h30m", 5400), (" 2M ", 120)])
def test_parse_duration_is_locusts_own(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "0s", "-5m", "2.5m"])
def test_parse_duration_rejects_nonsense(text):
    with pytest.raises(ValueError, match="--duration"):
        parse_duration(text)


def test_read_stats_parses_locust_csv(tmp_path):
    path = tmp_path / "x_stats.csv"
    header = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
              "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,"
              "90%,95%,98%,99%,99.9%,99.99%,100%")
    path.write_text(header + "\nGET,/health,10,1,3,3.5,1,9,70,2.5,0.25,3,4,4,5,6,7,8,9,9,9,9\n"
                    ",Aggregated,10,1,3,3.5,1,9,70,2.5,0.25,3,4,4,5,6,7,8,9,9,9,9\n"
                    "GET,/metrics,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n")
    rows = read_stats(path)
    assert rows[0] == {"name": "/health", "requests": 10, "failures": 1, "rps": 2.5, "p50_ms": 3.0,
                       "p95_ms": 7.0, "p99_ms": 9.0}
    assert rows[1]["name"] == "Aggregated" and rows[2]["p99_ms"] != rows[2]["p99_ms"]  # N/A is NaN


# Twelve users, each product touched by at most five of them: every audience is full at depth 5, as
# on real data, so locust's "count == n" holds.
FULL_AUDIENCES = [(u, 20 + (u % 3), "cart", f"{8 + u:02d}:00") for u in range(1, 13)]


def test_stress_run_end_to_end(tmp_path, build_api_db):
    """A few seconds of real locust load on a small database: report files, a stress_runs row, exit 0."""
    db, run_id = build_api_db(tmp_path, events=FULL_AUDIENCES)
    out = subprocess.run([sys.executable, "-m", "stress", "run", "--db", str(db), "--users", "4", "--spawn-rate",
                          "4", "--duration", "3s", "--workers", "1", "--out", str(tmp_path / "reports")],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "/recommend/[known]" in out.stdout and "Aggregated" in out.stdout
    assert f"runs served during the test, in order: [{run_id}]" in out.stdout
    assert list((tmp_path / "reports").glob("stress_*.html")) and list((tmp_path / "reports").glob("*_stats.csv"))
    with sqlite3.connect(db) as con:
        row = con.execute("SELECT run_id, users, requests, failures, per_endpoint FROM stress_runs").fetchone()
    assert row[0] == run_id and row[1] == 4 and row[2] > 0 and row[3] == 0
    assert "/recommend/[known]" in {e["name"] for e in json.loads(row[4])["endpoints"]}


def test_stress_run_without_a_published_run_is_one_line_exit_2(tmp_path, build_api_db):
    db, _ = build_api_db(tmp_path, publish=False)
    out = subprocess.run([sys.executable, "-m", "stress", "run", "--db", str(db)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "python -m pipeline demo" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--warmup", "-1"], "--warmup must be 0 or more seconds"),
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--starts", "0"], "--starts must be at least 1"),
])
def test_bench_rejects_bad_arguments_in_one_line(tmp_path, args, message):
    out = subprocess.run([sys.executable, "-m", "stress", "bench", "--db", str(tmp_path / "none.db"), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr == f"error: {message}\n"


def _asgi_get(app, path: str, query: bytes) -> tuple[dict, bytes]:
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "GET", "path": path, "query_string": query}, None, send))
    return dict(sent[0]["headers"]), sent[1]["body"]


def test_the_varied_yardstick_keeps_one_body_per_request_of_the_asked_size():
    from stress.bare import varied
    headers, first = _asgi_get(varied, "/recommend/7", b"n=5")
    assert _asgi_get(varied, "/recommend/7", b"n=5")[1] is first  # kept, like the API's answers
    answer = json.loads(first)
    assert answer["count"] == 5 and [r["rank"] for r in answer["recommendations"]] == [1, 2, 3, 4, 5]
    assert headers[b"content-length"] == b"%d" % len(first)
    other = json.loads(_asgi_get(varied, "/recommend/8", b"n=20")[1])
    assert other["count"] == 20 and other["recommendations"] != answer["recommendations"][:20]
