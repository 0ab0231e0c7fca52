"""The serving API on a small database built with the real pipeline.

The data, worked by hand (all events on one day, so days_active is 1 and recency is 0 for everyone):

    user 1: purchased 10, 11, 12   total 3, unique 3, avg 5, frequency 3  -> score 0.975
    user 2: purchased 10, 11       total 2, unique 2, avg 5, frequency 2  -> score 0.6
    user 3: cart 11                total 1, unique 1, avg 3, frequency 1  -> score 0.125
    user 4: wishlist 12            total 1, unique 1, avg 2, frequency 1  -> score 0.075
    user 5: search_keyword 12      total 1, unique 1, avg 1, frequency 1  -> score 0.025

(min-max normalized; recency is constant, so 0.5 x 0.05 = 0.025 each). Engagement order 1..5, so the
fallback is [1, 2, 3, 4, 5]; excluding whoever touched the product, product 10 -> [3, 4, 5],
product 11 -> [4, 5], product 12 -> [2, 3]. Audience counts: user 1 none, user 2 one, users 3-5 two.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from pipeline.config import RunParams
from pipeline.run import execute
from store import queries

EVENTS = [(1, 10, "purchased", "09:00"), (1, 11, "purchased", "09:10"), (1, 12, "purchased", "09:20"),
          (2, 10, "purchased", "10:00"), (2, 11, "purchased", "10:10"), (3, 11, "cart", "11:00"),
          (4, 12, "wishlist", "12:00"), (5, 12, "search_keyword", "13:00")]
SCORES = {1: 0.975, 2: 0.6, 3: 0.125, 4: 0.075, 5: 0.025}
AUDIENCES = {10: [3, 4, 5], 11: [4, 5], 12: [2, 3]}
DEPTH = 5


def write_events(path: Path, events=EVENTS) -> Path:
    lines = ["customer_id,product_id,event,event_date"]
    lines += [f"{c},{p},{e},2023-01-05T{t}:00" for c, p, e, t in events]
    path.write_text("\n".join(lines) + "\n")
    return path


def build_db(tmp: Path, events=EVENTS, publish: bool = True, name: str = "audiences.db") -> tuple[Path, int]:
    db = tmp / name
    result = execute(write_events(tmp / f"{name}.csv", events), db=db, params=RunParams(depth=DEPTH, holdout=0.2),
                     products_path=None, publish=publish)
    return db, result.run_id


def client_for(db: Path, reload_seconds: float = 2.0) -> TestClient:
    return TestClient(create_app(Settings(db=db, reload_seconds=reload_seconds)))


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> tuple[Path, int]:
    return build_db(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def client(small_db):
    with client_for(small_db[0]) as c:
        yield c


def ids(body: dict) -> list[int]:
    return [r["customer_id"] for r in body["recommendations"]]


def test_recommend_known_product(client, small_db):
    body = client.get("/recommend/10?n=3").json()
    assert body["product_id"] == 10 and body["run_id"] == small_db[1]
    assert body["cold_start"] is False and body["note"] is None
    assert ids(body) == AUDIENCES[10] and body["count"] == 3
    assert [r["rank"] for r in body["recommendations"]] == [1, 2, 3]
    assert [r["score"] for r in body["recommendations"]] == pytest.approx([SCORES[u] for u in AUDIENCES[10]])


def test_recommend_returns_fewer_when_fewer_users_are_eligible(client):
    assert ids(client.get("/recommend/11?n=5").json()) == [4, 5]
    assert client.get("/recommend/12?n=1").json()["recommendations"][0]["customer_id"] == 2


def test_default_n_is_capped_by_the_run_depth(client):
    assert client.get("/recommend/12").json()["count"] == 2
    assert client.get("/recommend/424242").json()["count"] == DEPTH


def test_new_product_gets_the_fallback_audience(client):
    body = client.get("/recommend/424242?n=4").json()
    assert body["cold_start"] is True and "new product" in body["note"] and "fallback" in body["note"]
    assert ids(body) == [1, 2, 3, 4]
    assert [r["score"] for r in body["recommendations"]] == pytest.approx([SCORES[u] for u in (1, 2, 3, 4)])


@pytest.mark.parametrize("path", ["/recommend/10?n=3", "/recommend/10", "/recommend/424242?n=5"])
def test_fast_lane_answers_exactly_like_the_fastapi_route(client, path):
    """An extra query parameter sends the request past the fast lane to the FastAPI route."""
    fast = client.get(path)
    routed = client.get(path + ("&" if "?" in path else "?") + "via=fastapi")
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path, where", [
    ("/recommend/10?n=0", "n"), ("/recommend/10?n=6", "n"), ("/recommend/10?n=ten", "n"),
    ("/recommend/ten", "product_id"), ("/recommend/0", "product_id"), ("/recommend/-3", "product_id"),
    ("/recommend/1.5", "product_id"), ("/audiences/10.csv?n=6", "n"), ("/audiences/x.csv", "product_id"),
    ("/users/abc", "customer_id"), ("/products/sample?n=0", "n"), ("/products/sample?n=1001", "n")])
def test_bad_input_is_422_naming_the_parameter(client, path, where):
    resp = client.get(path)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][-1] == where


def test_n_above_depth_says_what_the_limit_is(client):
    message = client.get("/recommend/10?n=6").json()["detail"][0]["msg"]
    assert "between 1 and 5" in message and "depth" in message


def test_csv_is_the_stored_audience(client, small_db):
    db, run_id = small_db
    resp = client.get("/audiences/10.csv?n=5")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0] == ["product_id", "rank", "customer_id", "score"]
    with queries.connect(db) as con:
        stored = queries.audience(con, run_id, 10, 5)
    assert [int(r[0]) for r in rows[1:]] == [10] * len(stored)
    assert [int(r[1]) for r in rows[1:]] == stored["rank"].tolist()
    assert [int(r[2]) for r in rows[1:]] == stored["customer_id"].tolist() == AUDIENCES[10]
    assert [float(r[3]) for r in rows[1:]] == stored["score"].tolist()


def test_csv_of_a_new_product_is_the_fallback(client, small_db):
    db, run_id = small_db
    rows = list(csv.reader(io.StringIO(client.get("/audiences/424242.csv?n=3").text)))[1:]
    with queries.connect(db) as con:
        stored = queries.fallback(con, run_id, 3)
    assert [int(r[2]) for r in rows] == stored["customer_id"].tolist() == [1, 2, 3]
    assert [float(r[3]) for r in rows] == stored["score"].tolist()


def test_recommend_scores_are_the_stored_scores(client, small_db):
    db, run_id = small_db
    with queries.connect(db) as con:
        for product in AUDIENCES:
            stored = queries.audience(con, run_id, product, DEPTH)
            body = client.get(f"/recommend/{product}?n={DEPTH}").json()
            assert [r["score"] for r in body["recommendations"]] == stored["score"].tolist()


def test_user_features_rank_and_audience_count(client, small_db):
    db, run_id = small_db
    body = client.get("/users/3").json()
    with queries.connect(db) as con:
        stored = queries.user(con, run_id, 3)
    for key in ("total_interactions", "unique_products", "avg_event_score", "interaction_frequency",
                "recency_days", "engagement_score", "engagement_rank", "audience_count"):
        assert body[key] == stored[key], key
    assert body["engagement_rank"] == 3 and body["audience_count"] == 2 and body["users_in_run"] == 5
    assert body["engagement_score"] == pytest.approx(SCORES[3])
    assert [client.get(f"/users/{u}").json()["audience_count"] for u in (1, 2)] == [0, 1]


def test_unknown_user_is_404(client, small_db):
    resp = client.get("/users/77")
    assert resp.status_code == 404
    assert resp.json()["detail"] == f"customer 77 is not in run {small_db[1]}"


def test_products_sample(client):
    body = client.get("/products/sample?n=2").json()
    assert body["total_available"] == 3
    assert len(set(body["sample_products"])) == 2 and set(body["sample_products"]) <= set(AUDIENCES)
    assert sorted(client.get("/products/sample?n=10").json()["sample_products"]) == sorted(AUDIENCES)


def test_health(client, small_db):
    body = client.get("/health").json()
    assert body["status"] == "healthy" and body["run_id"] == small_db[1] and body["products"] == 3
    assert body["loaded_at"]


def test_metrics(client, small_db):
    db, run_id = small_db
    body = client.get("/metrics").json()
    assert body["run_id"] == run_id and body["strategy"] == "engagement" and body["params"]["depth"] == DEPTH
    assert body["counts"] == {"products": 3, "users": 5, "audience_entries": 7, "depth": DEPTH, "fallback_size": 5}
    assert body["stats"]["total_interactions"] == len(EVENTS)
    assert body["data_quality"]["rows_read"] == body["data_quality"]["rows_clean"] == len(EVENTS)
    with queries.connect(db) as con:
        evaluation = queries.evaluation(con, run_id)
        plain = evaluation.drop(columns="label").astype(object)
        assert body["evaluation"] == plain.where(plain.notna(), None).to_dict("records")
    at100 = evaluation[(evaluation["strategy"] == "engagement") & (evaluation["k"] == 100)]
    expected = dict(zip(at100["metric"], at100["value"]))
    assert {"recall_micro", "user_coverage"} <= set(expected)
    assert body["headline"]["strategy"] == "engagement" and body["headline"]["k"] == 100
    for metric in ("recall_micro", "user_coverage", "reachable_ceiling", "lift_over_random"):
        assert body["headline"][metric] == expected.get(metric)


def test_root_lists_the_endpoints(client):
    body = client.get("/").json()
    assert body["version"] and "Audience" in body["message"]
    assert {"/health", "/metrics", "/recommend/{product_id}?n=10", "/users/{customer_id}"} <= set(body["endpoints"])


def test_docs_describe_every_endpoint_with_an_example(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    paths = {"/", "/health", "/metrics", "/recommend/{product_id}", "/audiences/{product_id}.csv",
             "/users/{customer_id}", "/products/sample"}
    assert paths <= set(spec["paths"])
    for path in paths:
        ok = spec["paths"][path]["get"]["responses"]["200"]
        assert "example" in str(ok) or "$ref" in str(ok), path
    schemas = spec["components"]["schemas"]
    for name in ("RecommendResponse", "UserResponse", "SampleResponse", "HealthResponse", "MetricsResponse",
                 "RootResponse"):
        assert schemas[name].get("examples"), name


@pytest.mark.parametrize("path", ["/recommend/10", "/recommend/424242?n=3", "/audiences/10.csv", "/users/1",
                                  "/products/sample", "/metrics"])
def test_data_endpoints_are_503_before_any_run(tmp_path, path):
    db, _ = build_db(tmp_path, publish=False)
    with client_for(db) as c:
        resp = c.get(path)
    assert resp.status_code == 503 and "python -m pipeline demo" in resp.json()["detail"]


def test_health_is_503_with_the_fix_before_any_run(tmp_path):
    db, _ = build_db(tmp_path, publish=False)
    with client_for(db) as c:
        resp = c.get("/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "unavailable" and "python -m pipeline demo" in resp.json()["detail"]


def test_health_is_503_when_there_is_no_database(tmp_path):
    with client_for(tmp_path / "missing.db") as c:
        resp = c.get("/health")
        assert c.get("/recommend/10").status_code == 503
    assert resp.status_code == 503 and "python -m pipeline demo" in resp.json()["detail"]


def test_the_api_does_not_import_pandas():
    """~75 MiB of RSS and 0.3 s of startup per worker for nothing a request uses."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import api.main, sys; print(sorted({'pandas', 'sqlite_utils'} "
                           "& set(sys.modules)))"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_identical_audiences_are_stored_once(tmp_path):
    """User 1 buys 7 and 8, user 2 buys 9, user 3 wishlists 6: order 1, 2, 3, so 7 and 8 share [2, 3]."""
    events = [(1, 7, "purchased", "09:00"), (1, 8, "purchased", "09:10"), (2, 9, "purchased", "10:00"),
              (3, 6, "wishlist", "11:00")]
    db, _ = build_db(tmp_path, events=events)
    with client_for(db) as c:
        cache = c.app.state.holder.cache
        answers = {p: ids(c.get(f"/recommend/{p}?n=5").json()) for p in (6, 7, 8, 9)}
    assert answers == {6: [1, 2], 7: [2, 3], 8: [2, 3], 9: [1, 3]}
    assert len(cache.product_ids) == 4 and len(cache.entries) == 3


def _cache(scores: list[int], budget: int | None = None):
    """A two-product cache built by hand: both products share one list of three users."""
    import numpy as np

    from api.cache import AudienceCache, RenderedLists, UserTable
    entries = np.array([[[101, scores[0]], [102, scores[1]], [103, scores[2]]]], dtype=np.int64)
    cache = AudienceCache(run_id=7, depth=3, loaded_at="", product_ids=np.array([5, 9]), sizes=np.array([3, 2], np.int32),
                          lists=np.array([0, 0], np.int32), entries=entries, fallback_ids=[101], fallback_scores=[0.5],
                          users=UserTable("unused.db", 7), run={}, stats={}, data_quality={}, evaluation=[])
    if budget is not None:
        object.__setattr__(cache, "rendered", RenderedLists(budget))
    return cache


@pytest.mark.parametrize("scores, printed", [
    ([900_000_000, 500_000_000, 7], ["0.900000000", "0.500000000", "0.000000007"]),  # all in [0, 1)
    ([2_500_000_000, 1_000_000_000, -3], ["2.5", "1.0", "-3e-09"]),                    # any outside
])
def test_scores_print_as_stored_whichever_way_a_list_is_rendered(scores, printed):
    import json

    from api import render
    for budget in (None, 0):  # rendered once and sliced, or rendered per request
        cache = _cache(scores, budget)
        for product, n, size in ((5, 3, 3), (5, 2, 2), (9, 3, 2)):
            body = render.recommend_json(cache, product, n)
            answer = json.loads(body)
            assert answer["count"] == size and [r["rank"] for r in answer["recommendations"]] == list(range(1, size + 1))
            assert [r["customer_id"] for r in answer["recommendations"]] == [101, 102, 103][:size]
            assert [r["score"] for r in answer["recommendations"]] == [s / 1e9 for s in scores[:size]]
            assert all(f'"score":{text},' in body.decode() for text in printed[:size])
