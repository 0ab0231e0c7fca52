"""/metrics carries the propensity model's calibration and the published strategy's holdout gain, and says
why when a run has neither (TestClient on conftest's propensity_db)."""
from __future__ import annotations

import pandas as pd
import pytest

from api.routes.service import gain
from reports.words import NO_CALIBRATION, NO_GAIN
from store import read, writer

# The five-user curve of tests/test_gain.py: hits 0, 1, 1, 2, 2 of 3 later engagements.
FIVE = pd.DataFrame({"strategy": "propensity", "n": [1, 2, 3, 4, 5], "hits": [0, 1, 1, 2, 2],
                     "share_of_truth": [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3], "share_of_list": [0, 0.5, 0.5, 1, 1]})


@pytest.fixture(scope="module")
def five_user_gain(propensity_db, tmp_path_factory):
    """A copy of the propensity run whose propensity gain is the hand-worked five-user curve."""
    import sqlite3
    db = tmp_path_factory.mktemp("five") / "p.db"
    source, copy = sqlite3.connect(propensity_db), sqlite3.connect(db)
    source.backup(copy)
    source.close()
    copy.close()
    wdb = writer.connect(db)
    with wdb.conn:
        wdb.execute("DELETE FROM gain WHERE strategy = 'propensity'")
    writer.write_frame(wdb, "gain", 1, FIVE)
    wdb.close()
    return db


def test_metrics_has_the_stored_calibration_and_the_users_for_50_70_90(five_user_gain, api_client):
    with api_client(five_user_gain) as client:
        body = client.get("/metrics").json()
    con = read.connect(five_user_gain)
    assert body["calibration"] == {"strategy": "propensity", "deciles": read.calibration(con, 1), "note": None}
    assert len(body["calibration"]["deciles"]) > 0
    assert body["gain"]["strategy"] == "propensity" and body["gain"]["note"] is None
    assert body["gain"]["users_for_share"] == {"0.5": 2, "0.7": 4, "0.9": 4}
    assert [p["hits"] for p in body["gain"]["curve"]] == [0, 1, 1, 2, 2]


def test_metrics_of_an_older_run_says_why_there_is_no_calibration_or_gain(propensity_db, without_model_tables,
                                                                         tmp_path, api_client):
    with api_client(without_model_tables(propensity_db, tmp_path)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    body = response.json()
    assert body["calibration"] == {"strategy": "propensity", "deciles": [], "note": NO_CALIBRATION}
    assert body["gain"] == {"strategy": "propensity", "users_for_share": {}, "curve": [], "note": NO_GAIN}


@pytest.mark.parametrize("strategy, users", [
    ("propensity", {"0.5": 2, "0.7": 4, "0.9": 4}),
    ("als", {}),  # no curve stored for it
])
def test_gain_reads_only_the_published_strategy(strategy, users):
    assert gain(FIVE.to_dict("records"), strategy)["users_for_share"] == users
