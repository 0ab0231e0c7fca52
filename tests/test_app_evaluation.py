"""The Evaluation page through AppTest, on the workbench runs of tests/conftest.py: run 1 published, run 2
(exclusion rule "none") not. Their holdout: products 10 and 14 are seen on both sides of the split, but
their late engagements are by user 6, unseen before it, so every recall (and the ceiling) is 0."""
from __future__ import annotations

import json

import pytest

from pipeline.strategies import STRATEGIES


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, make_workbench_db):
    folder = tmp_path_factory.mktemp("evaluation")
    db = make_workbench_db(folder)
    return make_workbench_db(folder, exclude="none", publish=False, db=db)


def test_the_leaderboard_fits_with_short_titles_and_random_at_one(two_runs, open_app):
    at = open_app(two_runs, "evaluation")
    board = at.dataframe[0].value.set_index("strategy")
    assert len(board) == len(STRATEGIES) and "reachable_ceiling" not in board.columns
    assert board.loc["random", "lift_over_random"] == 1.0  # stored 0 / 0 on this data: 1 by definition
    assert board.loc["engagement ★", "recall_micro"] == 0.0
    config = json.loads(at.dataframe[0].proto.columns)
    titles = {name: c["label"] for name, c in config.items() if name in board.columns}
    assert titles["recall_micro"] == "recall %" and titles["lift_over_random"] == "lift ×"
    # Nine metrics of at most 19 characters (was up to 21 plus " (%)") at two decimals fit a wide page.
    assert len(titles) == 9 and max(len(t) for t in titles.values()) <= 19
    assert all(config[name].get("help") for name in titles)


def test_an_unpublished_run_says_this_run_s_strategy(two_runs, open_app):
    at = open_app(two_runs, "evaluation")
    assert "Published strategy" in [m.label for m in at.metric]
    at.sidebar.selectbox[0].set_value(2).run()
    labels = [m.label for m in at.metric]
    assert "This run's strategy" in labels and "Published strategy" not in labels
    assert "engagement ☆" in at.dataframe[0].value["strategy"].tolist()
    assert "this run's strategy" in " ".join(c.value for c in at.caption)
    assert not any("published" in m.value for m in at.markdown if m.value.startswith("**engagement**"))
