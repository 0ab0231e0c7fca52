"""The API's rough edges and faults: HEAD, long inputs in a 422, /docs offline, the OpenAPI examples, a
damaged database at startup, and the last good run kept while the database disappears or breaks."""
from __future__ import annotations

import re
import time

import pytest

INTERVAL = 0.05
DEADLINE = 30.0  # a bound for a broken watcher only
PRODUCT_10 = [3, 4, 5]  # tests/test_api.py works these out by hand


@pytest.fixture(scope="module")
def served(tmp_path_factory, build_api_db, api_client):
    db, run_id = build_api_db(tmp_path_factory.mktemp("faults"))
    with api_client(db) as c:
        yield c, run_id


@pytest.mark.parametrize("path", ["/", "/health", "/metrics", "/recommend/10?n=3", "/recommend/10?n=3&via=fastapi",
                                  "/recommend/424242", "/audiences/10.csv", "/users/3", "/users/77",
                                  "/products/sample", "/recommend/10?n=9", "/docs", "/openapi.json"])
def test_head_answers_wherever_get_does_without_a_body(served, path):
    client, _ = served
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code
    assert head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) == len(get.content) and head.content == b""


@pytest.mark.parametrize("path, sent", [("/recommend/" + "9" * 500, "9" * 500),
                                        ("/recommend/10?n=" + "x" * 500, "x" * 500),
                                        ("/users/" + "a" * 300, "a" * 300),
                                        ("/products/sample?n=" + "7" * 400, "7" * 400)])
def test_a_422_echoes_at_most_100_characters_of_the_input(served, path, sent):
    client, _ = served
    resp = client.get(path)
    assert resp.status_code == 422
    echoed = resp.json()["detail"][0]["input"]
    assert len(echoed) == 100 and echoed == sent[:99] + "…"
    assert sent[:101] not in resp.text


@pytest.mark.parametrize("n, echoed", [("18446744073709551616", "18446744073709551616"),  # 2**64: past orjson
                                       ("-9223372036854775809", "-9223372036854775809"),  # below int64
                                       ("99", 99)])  # an ordinary number stays a number
def test_a_422_for_an_integer_too_wide_for_json_echoes_its_digits(served, n, echoed):
    client, _ = served
    resp = client.get(f"/recommend/10?n={n}")  # found by schemathesis: a 500 when orjson met 2**64
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["input"] == echoed


def test_docs_load_swagger_ui_from_this_server(served):
    client, _ = served
    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(assets) == ["/docs-assets/favicon.png", "/docs-assets/swagger-ui-bundle.js",
                              "/docs-assets/swagger-ui.css"]
    assert "http" not in " ".join(assets)  # no CDN: the page works without internet
    script = client.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


# Each JSON endpoint's 200 answer is documented by the model that carries its example.
MODELS = {"/": "RootResponse", "/health": "HealthResponse", "/metrics": "MetricsResponse",
          "/recommend/{product_id}": "RecommendResponse", "/users/{customer_id}": "UserResponse",
          "/products/sample": "SampleResponse"}


def test_openapi_documents_every_answer_with_an_example(served):
    client, _ = served
    spec = client.get("/openapi.json").json()
    for path, model in MODELS.items():
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
        schema = spec["components"]["schemas"][model]
        # every required field in the example (OpenAPI output drops the example's nulls, so only those)
        assert set(schema["required"]) <= set(schema["examples"][0]) <= set(schema["properties"]), model
    csv = spec["paths"]["/audiences/{product_id}.csv"]["get"]["responses"]["200"]["content"]["text/csv"]
    assert csv["example"].startswith("product_id,rank,customer_id,score\n4021,1,117,0.912345678\n")
    n = {p["name"]: p for p in spec["paths"]["/recommend/{product_id}"]["get"]["parameters"]}["n"]
    assert (n["schema"]["minimum"], n["schema"]["maximum"]) == (1, 1000)


@pytest.mark.parametrize("content", [b"this is not a database at all, just text" * 100,
                                     b"SQLite format 3\x00" + b"\xff" * 5000])
def test_a_damaged_database_at_startup_says_so_and_how_to_recover(tmp_path, api_client, content):
    db = tmp_path / "audiences.db"
    db.write_bytes(content)
    with api_client(db) as client:
        health = client.get("/health")
        data = client.get("/recommend/10")
    assert health.status_code == 503 and health.json()["model_loaded"] is False
    detail = health.json()["detail"]
    assert f"database {db} is not a usable workbench database" in detail
    assert "restore it from a backup" in detail and "python -m pipeline demo" in detail
    assert data.status_code == 503 and data.json()["detail"] == detail


def wait_for_stale(client) -> dict:
    stop = time.monotonic() + DEADLINE
    while time.monotonic() < stop:
        body = client.get("/health").json()
        if body.get("detail"):
            return body
        time.sleep(INTERVAL)
    raise AssertionError("the API never noticed the database had gone")


def _remove(db):
    for path in db.parent.glob(db.name + "*"):
        if path.is_file():
            path.unlink()


def _break(db):
    _remove(db)
    db.write_bytes(b"garbage, not SQLite " * 500)


@pytest.mark.parametrize("fault, says", [(_remove, "no database at"), (_break, "is not a usable workbench database")])
def test_the_last_good_run_is_served_when_the_database_goes_or_breaks(tmp_path, build_api_db, api_client, fault, says):
    db, run_id = build_api_db(tmp_path)
    with api_client(db, reload_seconds=INTERVAL) as client:
        before = client.get("/recommend/10?n=3").content
        fault(db)
        health = wait_for_stale(client)
        assert health["status"] == "healthy" and health["model_loaded"] is True and health["run_id"] == run_id
        assert health["detail"].startswith(f"still serving run {run_id}: ") and says in health["detail"]
        assert client.get("/recommend/10?n=3").content == before
        assert [r["customer_id"] for r in client.get("/recommend/10?n=3").json()["recommendations"]] == PRODUCT_10
        assert client.get("/users/3").json()["engagement_rank"] == 3
