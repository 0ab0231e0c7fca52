"""Hot reload: a newly published run (or a rollback) is served within the reload interval, and
requests made while the cache is swapped all succeed with one run's answer or the other's."""
from __future__ import annotations

import threading
import time

import pytest

from store import writer

# Run 2 adds user 6, the most engaged of all (four purchases), who never touched product 11: product
# 11's audience becomes [6, 4, 5]. Product 10's loses nobody new: [3, 4, 5] stays.
EXTRA_2 = [(6, p, "purchased", f"14:0{i}") for i, p in enumerate((10, 12, 13, 14))]
AUDIENCE_10 = [3, 4, 5]
AUDIENCE_11 = {1: [4, 5], 2: [6, 4, 5]}
INTERVAL = 0.05
DEADLINE = 30.0  # only a bound for a broken watcher; a working one takes a few intervals


@pytest.fixture
def build_db(tmp_path, build_api_db):
    return lambda **kw: build_api_db(tmp_path, **kw)


@pytest.fixture
def client_for(api_client):
    return api_client


def wait_for_run(client, run_id: int) -> dict:
    stop = time.monotonic() + DEADLINE
    while time.monotonic() < stop:
        body = client.get("/health").json()
        if body.get("run_id") == run_id:
            return body
        time.sleep(INTERVAL)
    raise AssertionError(f"run {run_id} was not served within {DEADLINE} s")


def ids(body: dict) -> list[int]:
    return [r["customer_id"] for r in body["recommendations"]]


def test_new_run_and_rollback_are_served_within_the_interval(build_db, client_for):
    db, run_1 = build_db()
    with client_for(db, reload_seconds=INTERVAL) as client:
        assert ids(client.get("/recommend/11?n=5").json()) == AUDIENCE_11[1]
        _, run_2 = build_db(extra=EXTRA_2)
        assert wait_for_run(client, run_2)["products"] == 5
        assert ids(client.get("/recommend/11?n=5").json()) == AUDIENCE_11[2]
        assert client.get("/users/6").json()["engagement_rank"] == 1

        writer.publish(writer.connect(db), run_1)  # `python -m pipeline publish --run 1`
        assert wait_for_run(client, run_1)["products"] == 3
        assert ids(client.get("/recommend/11?n=5").json()) == AUDIENCE_11[1]
        assert client.get("/users/6").status_code == 404


def test_requests_during_the_swap_all_succeed(build_db, client_for):
    db, run_1 = build_db()
    answers: list[tuple[int, dict | None]] = []
    stop = threading.Event()

    def hammer(client, path):
        while not stop.is_set():
            resp = client.get(path)
            answers.append((resp.status_code, resp.json() if resp.status_code == 200 else None))

    with client_for(db, reload_seconds=INTERVAL) as client:
        threads = [threading.Thread(target=hammer, args=(client, path))
                   for path in ("/recommend/11?n=5", "/recommend/11?n=5&via=fastapi", "/recommend/99?n=2")]
        for t in threads:
            t.start()
        _, run_2 = build_db(extra=EXTRA_2)
        wait_for_run(client, run_2)
        time.sleep(10 * INTERVAL)  # keep hammering the new run a little
        stop.set()
        for t in threads:
            t.join()

    assert answers and all(status == 200 for status, _ in answers)
    seen = {body["run_id"] for _, body in answers}
    assert seen == {run_1, run_2}
    runs = {run_1: 1, run_2: 2}
    for _, body in answers:  # every answer is wholly one run's
        if body["product_id"] == 11:
            assert ids(body) == AUDIENCE_11[runs[body["run_id"]]]


def test_database_built_after_startup_is_picked_up(tmp_path, build_db, client_for):
    db = tmp_path / "audiences.db"
    with client_for(db, reload_seconds=INTERVAL) as client:
        assert client.get("/health").status_code == 503
        _, run_id = build_db()
        assert wait_for_run(client, run_id)["status"] == "healthy"
        assert ids(client.get("/recommend/10?n=3").json()) == AUDIENCE_10


def test_unpublished_run_is_not_served_until_it_is_published(build_db, client_for):
    """The negative (an unpublished run is not served) means something only beside the positive control:
    the same watcher, still running, picks the run up once it is published."""
    db, run_1 = build_db()
    with client_for(db, reload_seconds=INTERVAL) as client:
        _, run_2 = build_db(extra=EXTRA_2, publish=False)
        time.sleep(10 * INTERVAL)
        assert client.get("/health").json()["run_id"] == run_1
        assert ids(client.get("/recommend/11?n=5").json()) == AUDIENCE_11[1]
        writer.publish(writer.connect(db), run_2)  # `python -m pipeline publish --run 2`
        assert wait_for_run(client, run_2)["products"] == 5
        assert ids(client.get("/recommend/11?n=5").json()) == AUDIENCE_11[2]


def test_database_rebuilt_from_scratch_is_picked_up(tmp_path, build_db, client_for):
    """A fresh `pipeline demo` into a deleted database starts again at run 1: the API notices the new
    file, not a new run id (and the old run 1's snapshot is not served for the new run 1)."""
    db, run_1 = build_db()
    with client_for(db, reload_seconds=INTERVAL) as client:
        assert client.get("/health").json()["products"] == 3
        for path in tmp_path.glob("audiences.db*"):
            if path.is_file():
                path.unlink()
        _, run_again = build_db(extra=EXTRA_2)
        assert run_again == run_1
        stop = time.monotonic() + DEADLINE
        while client.get("/health").json().get("products") != 5 and time.monotonic() < stop:
            time.sleep(INTERVAL)
        assert client.get("/health").json()["products"] == 5
        assert ids(client.get("/recommend/11?n=5").json()) == AUDIENCE_11[2]


def test_a_look_hands_the_gil_back_often_only_while_it_runs():
    """While holder.poll runs in its thread the event loop gets the GIL back every 1 ms (requests do not
    queue behind a snapshot rebuild); before and after, the interpreter's own interval (kept all the time,
    the short one costs every request)."""
    import asyncio
    import sys

    from api.reload import LOOK_SWITCH_SECONDS, look

    seen = []

    class Holder:
        def poll(self):
            seen.append(sys.getswitchinterval())

    before = sys.getswitchinterval()
    asyncio.run(look(Holder()))
    assert seen == [LOOK_SWITCH_SECONDS] == [0.001]
    assert sys.getswitchinterval() == before == 0.005  # CPython's default
