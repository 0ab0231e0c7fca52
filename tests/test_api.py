"""The serving API on a small database built with the real pipeline.

The data (tests/conftest.py API_EVENTS), worked by hand (all events on one day, so days_active is 1 and
recency is 0 for everyone):

    user 1: purchased 10, 11, 12   total 3, unique 3, avg 5, frequency 3  -> score 0.975
    user 2: purchased 10, 11       total 2, unique 2, avg 5, frequency 2  -> score 0.6
    user 3: cart 11                total 1, unique 1, avg 3, frequency 1  -> score 0.125
    user 4: wishlist 12            total 1, unique 1, avg 2, frequency 1  -> score 0.075
    user 5: search_keyword 12      total 1, unique 1, avg 1, frequency 1  -> score 0.025

(min-max normalized; recency is constant, so 0.5 x 0.05 = 0.025 each). Engagement order 1..5, so the
fallback is [1, 2, 3, 4, 5]; excluding whoever touched the product, product 10 -> [3, 4, 5],
product 11 -> [4, 5], product 12 -> [2, 3]. Audience counts: user 1 none, user 2 one, users 3-5 two.
Scores print with nine decimals: 0.975 is "0.975000000".
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

DEPTH = 5  # conftest.API_DEPTH
ROWS = 8  # conftest.API_EVENTS
SCORES = {1: 0.975, 2: 0.6, 3: 0.125, 4: 0.075, 5: 0.025}
TEXT = {1: "0.975000000", 2: "0.600000000", 3: "0.125000000", 4: "0.075000000", 5: "0.025000000"}
AUDIENCES = {10: [3, 4, 5], 11: [4, 5], 12: [2, 3]}


@pytest.fixture(scope="module")
def small_db(tmp_path_factory, build_api_db):
    return build_api_db(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def client(small_db, api_client):
    with api_client(small_db[0]) as c:
        yield c


def ids(body: dict) -> list[int]:
    return [r["customer_id"] for r in body["recommendations"]]


def items(users: list[int]) -> str:
    return ",".join(f'{{"customer_id":{u},"score":{TEXT[u]},"rank":{r}}}' for r, u in enumerate(users, 1))


def test_recommend_known_product_is_these_exact_bytes(client, small_db):
    assert client.get("/recommend/10?n=3").text == (
        f'{{"product_id":10,"run_id":{small_db[1]},"cold_start":false,"note":null,'
        f'"recommendations":[{items([3, 4, 5])}],"count":3}}')


def test_recommend_returns_fewer_when_fewer_users_are_eligible(client):
    assert ids(client.get("/recommend/11?n=5").json()) == [4, 5]
    assert client.get("/recommend/12?n=1").json()["recommendations"][0]["customer_id"] == 2


def test_default_n_is_capped_by_the_run_depth(client):
    assert client.get("/recommend/12").json()["count"] == 2
    assert client.get("/recommend/424242").json()["count"] == DEPTH


def test_new_product_gets_the_fallback_audience(client, small_db):
    assert client.get("/recommend/424242?n=4").text == (
        f'{{"product_id":424242,"run_id":{small_db[1]},"cold_start":true,"note":"new product: 424242 was not seen '
        f'in run {small_db[1]}, so it gets the fallback audience (the most engaged users overall)",'
        f'"recommendations":[{items([1, 2, 3, 4])}],"count":4}}')


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


DEPTH_BOUNDS = "n must be between 1 and 5, the depth of the current run's audiences"
SAMPLE_BOUNDS = "n must be between 1 and 1000, the most one sample holds"


@pytest.mark.parametrize("path, message", [
    ("/recommend/10?n=0", DEPTH_BOUNDS), ("/recommend/10?n=6", DEPTH_BOUNDS), ("/recommend/10?n=1001", DEPTH_BOUNDS),
    ("/recommend/10?n=0&via=fastapi", DEPTH_BOUNDS), ("/audiences/10.csv?n=0", DEPTH_BOUNDS),
    ("/audiences/10.csv?n=6", DEPTH_BOUNDS), ("/products/sample?n=0", SAMPLE_BOUNDS),
    ("/products/sample?n=1001", SAMPLE_BOUNDS)])
def test_n_out_of_range_has_one_wording_on_either_side(client, path, message):
    assert client.get(path).json()["detail"][0]["msg"] == message


def test_csv_is_these_exact_bytes(client):
    resp = client.get("/audiences/10.csv?n=5")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert resp.text == ("product_id,rank,customer_id,score\n10,1,3,0.125000000\n10,2,4,0.075000000\n"
                         "10,3,5,0.025000000\n")


def test_csv_of_a_new_product_is_the_fallback(client):
    assert client.get("/audiences/424242.csv?n=3").text == (
        "product_id,rank,customer_id,score\n424242,1,1,0.975000000\n424242,2,2,0.600000000\n"
        "424242,3,3,0.125000000\n")


def test_user_features_rank_and_audience_count(client, small_db):
    assert client.get("/users/3").json() == {
        "customer_id": 3, "total_interactions": 1, "unique_products": 1, "avg_event_score": 3.0,
        "interaction_frequency": 1.0, "recency_days": 0, "engagement_score": pytest.approx(SCORES[3]),
        "days_active": 1, "engagement_rank": 3, "audience_count": 2, "run_id": small_db[1], "users_in_run": 5}
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


def test_health_says_healthy_and_model_loaded(client, small_db):
    body = client.get("/health").json()
    assert body["status"] == "healthy" and body["model_loaded"] is True
    assert body["run_id"] == small_db[1] and body["products"] == 3 and body["loaded_at"] and body["detail"] is None


def test_metrics(client, small_db):
    body = client.get("/metrics").json()
    assert body["run_id"] == small_db[1] and body["strategy"] == "engagement" and body["params"]["depth"] == DEPTH
    assert body["counts"] == {"products": 3, "users": 5, "audience_entries": 7, "depth": DEPTH, "fallback_size": 5}
    assert body["stats"]["total_interactions"] == ROWS and body["stats"]["unique_users"] == 5
    assert body["data_quality"]["rows_read"] == body["data_quality"]["rows_clean"] == ROWS
    assert {"strategy", "cap", "k", "metric", "value"} == set(body["evaluation"][0])
    assert body["headline"]["strategy"] == "engagement" and body["headline"]["k"] == 100
    stored_se = [r["value"] for r in body["evaluation"]
                 if (r["strategy"], r["cap"], r["k"], r["metric"]) == ("engagement", None, 100, "recall_micro_se")]
    # how sure the headline is: none here, as this run's holdout evaluates a single product
    assert body["stats"]["holdout_products"] == 1
    assert stored_se == [] and "recall_micro_se" in body["headline"] and body["headline"]["recall_micro_se"] is None


def test_root_lists_the_endpoints(client):
    body = client.get("/").json()
    assert body["version"] and "Audience" in body["message"]
    assert {"/health", "/metrics", "/recommend/{product_id}?n=10", "/users/{customer_id}"} <= set(body["endpoints"])


@pytest.mark.parametrize("path", ["/recommend/10", "/recommend/424242?n=3", "/audiences/10.csv", "/users/1",
                                  "/products/sample", "/metrics"])
def test_data_endpoints_are_503_before_any_run(tmp_path, build_api_db, api_client, path):
    db, _ = build_api_db(tmp_path, publish=False)
    with api_client(db) as c:
        resp = c.get(path)
    assert resp.status_code == 503 and "python -m pipeline demo" in resp.json()["detail"]


def test_health_is_503_with_the_fix_before_any_run(tmp_path, build_api_db, api_client):
    db, _ = build_api_db(tmp_path, publish=False)
    with api_client(db) as c:
        resp = c.get("/health")
    assert resp.status_code == 503 and resp.json()["model_loaded"] is False
    assert resp.json()["status"] == "unavailable" and "python -m pipeline demo" in resp.json()["detail"]


def test_health_is_503_when_there_is_no_database(tmp_path, api_client):
    with api_client(tmp_path / "missing.db") as c:
        resp = c.get("/health")
        assert c.get("/recommend/10").status_code == 503
    assert resp.status_code == 503 and "python -m pipeline demo" in resp.json()["detail"]


def test_a_worker_starts_without_pandas_pyarrow_or_fastapi():
    """pandas and pyarrow: ~75 MiB of RSS and 0.3 s of start per worker for nothing a request uses;
    FastAPI and its pydantic models: ~0.7 s of CPU, built in a thread once the worker answers /health."""
    done = subprocess.run([sys.executable, "-c", "import api.main, sys; print(sorted({'pandas', 'sqlite_utils', "
                           "'pyarrow', 'fastapi', 'starlette'} & set(sys.modules)))"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_identical_audiences_are_stored_once(tmp_path, build_api_db, api_client):
    """User 1 buys 7 and 8, user 2 buys 9, user 3 wishlists 6: order 1, 2, 3, so 7 and 8 share [2, 3]."""
    events = [(1, 7, "purchased", "09:00"), (1, 8, "purchased", "09:10"), (2, 9, "purchased", "10:00"),
              (3, 6, "wishlist", "11:00")]
    db, _ = build_api_db(tmp_path, events=events)
    with api_client(db) as c:
        cache = c.app.holder.cache
        answers = {p: ids(c.get(f"/recommend/{p}?n=5").json()) for p in (6, 7, 8, 9)}
    assert answers == {6: [1, 2], 7: [2, 3], 8: [2, 3], 9: [1, 3]}
    assert len(cache.product_ids) == 4 and len(cache.entries) == 3


def _cache(units: list[int]):
    """A two-product cache built by hand: products 5 and 9 share one list of three users (9's size is 2)."""
    from api.cache import AudienceCache
    from store.snapshot import USER_DTYPE, Snapshot
    empty = np.zeros(0, dtype=np.int64)
    arrays = {"product_ids": np.array([5, 9]), "sizes": np.array([3, 2], dtype=np.int32),
              "lists": np.array([0, 0], dtype=np.int32),
              "entries": np.array([[[101, units[0]], [102, units[1]], [103, units[2]]]], dtype=np.int64),
              "fallback": np.zeros((0, 2), dtype=np.int64), "user_ids": empty, "users": np.zeros(0, USER_DTYPE),
              "catalogue_ids": empty, "catalogue_categories": np.zeros(0, np.int32),
              "category_sizes": np.zeros(0, np.int32), "category_entries": np.zeros((0, 0, 2), np.int64)}
    return AudienceCache(run_id=7, depth=3, loaded_at="now", snapshot=Snapshot(7, "t", arrays), run={}, stats={},
                         data_quality={}, evaluation=[])


@pytest.mark.parametrize("units, printed", [
    ([900_000_000, 500_000_000, 7], ["0.900000000", "0.500000000", "0.000000007"]),
    ([2_500_000_000, 1_000_000_000, -3], ["2.500000000", "1.000000000", "-0.000000003"]),
])
def test_scores_print_with_nine_decimals_in_every_answer(units, printed):
    from api import render
    cache = _cache(units)
    for product, n, size in ((5, 3, 3), (5, 2, 2), (9, 3, 2)):
        expected = ",".join(f'{{"customer_id":{101 + i},"score":{printed[i]},"rank":{i + 1}}}' for i in range(size))
        assert render.recommend_json(cache, product, n).decode() == (
            f'{{"product_id":{product},"run_id":7,"cold_start":false,"note":null,'
            f'"recommendations":[{expected}],"count":{size}}}')


def _scope(path: str, query: bytes = b"") -> dict:
    return {"type": "http", "method": "GET", "path": path, "query_string": query}


def test_a_repeated_request_is_answered_from_the_kept_answer():
    """The second ask of /recommend/5?n=2 returns the kept bytes, equal to a fresh render."""
    from api import fastlane, render
    cache = _cache([900_000_000, 500_000_000, 7])
    first = fastlane.answer(cache, _scope("/recommend/5", b"n=2"))
    assert first == render.recommend_json(cache, 5, 2)
    assert list(cache.answers.bodies) == [("/recommend/5", b"n=2")]
    assert fastlane.answer(cache, _scope("/recommend/5", b"n=2")) is cache.answers.bodies[("/recommend/5", b"n=2")]


@pytest.mark.parametrize("path, query, kept", [
    ("/recommend/5", b"", True),        # the default n
    ("/recommend/4", b"n=2", False),    # unknown product: a cold-start answer, not kept
    ("/recommend/5", b"n=9", False),    # n above the depth: left to FastAPI's 422
    ("/recommend/5", b"x=1", False),    # another parameter: left to FastAPI
])
def test_only_known_products_answers_are_kept(path, query, kept):
    from api import fastlane
    cache = _cache([900_000_000, 500_000_000, 7])
    fastlane.answer(cache, _scope(path, query))
    assert ((path, query) in cache.answers.bodies) is kept


def test_kept_answers_start_over_when_their_budget_is_spent():
    """Budget for two 10-byte entries (each costs 10 + 1 + 0 + overhead): the third starts the dict over."""
    from api.cache import ANSWER_OVERHEAD, Answers
    answers = Answers(2 * (10 + 1 + ANSWER_OVERHEAD))
    for name in "abc":
        answers.add((name, b""), b"0123456789")
    assert list(answers.bodies) == [("c", b"")]
    answers.add(("big", b""), b"x" * 1000)  # larger than the whole budget: never kept
    assert list(answers.bodies) == [("c", b"")]


def test_health_and_recommend_are_answered_while_fastapi_is_still_being_built(small_db, api_client, monkeypatch):
    """A worker is serving before its FastAPI app exists (api.main): with the build held back, /health and
    /recommend answer at once and /metrics waits for the build, then answers too."""
    import threading

    import api.main
    release = threading.Event()
    build = api.main._create_framework

    def held_build(settings, holder):
        assert release.wait(30)
        return build(settings, holder)

    monkeypatch.setattr(api.main, "_create_framework", held_build)
    with api_client(small_db[0]) as c:
        late: dict = {}
        waiting = threading.Thread(target=lambda: late.update(metrics=c.get("/metrics")))
        waiting.start()
        health = c.get("/health")
        assert (health.status_code, health.json()["run_id"]) == (200, small_db[1])
        assert ids(c.get("/recommend/10?n=3").json()) == [3, 4, 5]
        waiting.join(0.5)
        assert waiting.is_alive()  # /metrics needs FastAPI: it waits, it does not fail
        release.set()
        waiting.join(30)
        assert late["metrics"].status_code == 200 and late["metrics"].json()["run_id"] == small_db[1]
