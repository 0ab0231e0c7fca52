"""The temporal holdout: what strategies are given, what they are scored against, and which is published."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.config import RunParams
from pipeline.data.clean import clean
from pipeline.data.features import user_features
from pipeline.data.ingest import read_events
from pipeline.evaluation.holdout import (
    Scored,
    best_strategy,
    comparison_rows,
    evaluate_all,
    make_holdout,
    window_days,
)
from pipeline.evaluation.metrics import METRICS, make_truth
from pipeline.run import execute
from pipeline.strategies import AUTO, STRATEGIES, audiences
from store import queries
from tests.conftest import COMMUNITIES, day, write_events

# Late part: community 1 comes back for product 12, community 2 for 22 (both seen early).
LATE = [(1, 12, "cart", "2023-01-25T10:00:00"), (2, 12, "cart", "2023-01-26T10:00:00"),
        (3, 12, "purchased", "2023-01-27T10:00:00"), (5, 22, "cart", "2023-01-28T10:00:00"),
        (6, 22, "cart", "2023-01-29T10:00:00"), (7, 22, "cart", "2023-01-30T10:00:00"),
        (999, 12, "cart", "2023-01-31T10:00:00")]  # a newcomer nobody could have ranked
# 120 busy users early (three products each, the latest days): engagement's top 100 is all of them.
BUSY = [(1000 + u, 300 + u * 3 + i, "cart", day(21, 10 + i)) for u in range(120) for i in range(3)]
ROWS = COMMUNITIES + BUSY + LATE


def holdout_for(n_rows: int, n_late: int) -> float:
    """The holdout share whose quantile falls between the last early and the first late event."""
    return 1 - (n_rows - n_late - 0.5) / (n_rows - 1)


@pytest.fixture
def csv(tmp_path):
    return write_events(tmp_path / "e.csv", ROWS)


@pytest.fixture
def params():
    return RunParams(holdout=holdout_for(len(ROWS), len(LATE)))


def test_the_split_the_truth_and_the_ceiling(csv, params):
    events = clean(read_events(csv), params).events
    h = make_holdout(events, params)
    assert h.early["event_date"].max() < h.split <= pd.Timestamp(LATE[0][3])
    assert h.products.tolist() == [12, 22]
    assert len(h.users) == 8 + 120 and 999 not in h.users["customer_id"].tolist()
    assert h.truth.truth_size.tolist() == [4, 3]          # 999 counts against product 12 ...
    assert h.truth.reachable.tolist() == [3, 3]           # ... but no ranking can reach them
    assert h.reach.tolist() == [1, 1]                     # early users of 12 and 22


def test_no_leakage_every_strategy_sees_only_the_early_part(csv, params, monkeypatch):
    from pipeline.evaluation import holdout as module
    events = clean(read_events(csv), params).events
    seen = {}
    real = module.fitted

    def spy(name, ev, users, p, catalogue=None):
        model = real(name, ev, users, p, catalogue)
        rank = model.rank
        model.rank = lambda products, *a: seen.setdefault(name, []).append(
            (ev.copy(), users.copy(), products.copy())) or rank(products, *a)
        return model
    monkeypatch.setattr(module, "fitted", spy)
    holdout, scored, _ = evaluate_all(events, params, None)
    assert set(seen) == set(STRATEGIES) and len(scored) == len(STRATEGIES)
    late_customers = set(c for c, *_ in LATE)
    for name, calls in seen.items():
        ev, users, products = calls[-1]  # the outer evaluation (the first call is the inner split's)
        assert ev["event_date"].max() < holdout.split, name
        assert len(ev) == len(ROWS) - len(LATE), name
        assert set(users["customer_id"]) == set(ev["customer_id"]), name
        assert 999 not in set(users["customer_id"]) and late_customers & set(users["customer_id"]) == \
            {1, 2, 3, 5, 6, 7}, name  # they are there for their early events only
        assert users["total_interactions"].sum() == len(ev), name
        assert products.tolist() == [12, 22], name
        inner_events = calls[0][0]
        assert inner_events["event_date"].max() < ev["event_date"].max(), name  # the inner split: earlier


def test_the_choice_does_not_depend_on_the_outer_holdouts_labels(csv, params):
    events = clean(read_events(csv), params).events
    names = ["engagement", "affinity", "activity", "random", "propensity"]
    _, outer, inner = evaluate_all(events, params, None, names=names)
    late = (events["event_date"] >= make_holdout(events, params).split).to_numpy()
    shuffled = events.copy()
    # Who came back after the split is reshuffled (and some late users replaced by strangers).
    shuffled.loc[late, "customer_id"] = np.random.default_rng(0).permutation(
        np.r_[shuffled.loc[late, "customer_id"].to_numpy()[:-3], [5000, 5001, 5002]])
    _, outer2, inner2 = evaluate_all(shuffled, params, None, names=names)
    assert [s.metrics for s in outer] != [s.metrics for s in outer2]  # the report does change...
    assert [s.metrics for s in inner] == [s.metrics for s in inner2]  # ...the scores chosen on do not
    assert best_strategy(inner, False) == best_strategy(inner2, False)


def test_every_strategy_is_scored_and_affinity_and_propensity_find_the_communities(csv, params):
    events = clean(read_events(csv), params).events
    _, scored, _ = evaluate_all(events, params, None)
    by_name = {s.name: s.metrics for s in scored}
    assert set(by_name) == set(STRATEGIES)
    assert all(set(m) == {(k, metric) for k in (10, 100) for metric in METRICS} for m in by_name.values())
    # 6 of the 7 truth pairs are reachable; affinity gets all six in its first three places.
    assert by_name["affinity"][(10, "recall_micro")] == pytest.approx(6 / 7)
    assert by_name["affinity"][(100, "reachable_ceiling")] == pytest.approx(6 / 7)
    assert by_name["engagement"][(100, "recall_micro")] == 0.0  # its top 100 are the busy users
    assert by_name["propensity"][(10, "recall_micro")] == pytest.approx(6 / 7)  # it finds them too
    assert best_strategy(scored, capped=False) == "propensity"  # a tie at the ceiling: the default wins


def test_strategies_with_background_fits_are_scored_last_and_listed_in_the_registrys_order(csv, params,
                                                                                          monkeypatch):
    from pipeline.evaluation import holdout as module
    events = clean(read_events(csv), params).events
    started, order = [], []
    monkeypatch.setattr("pipeline.strategies.als.prefetch", lambda matrix, seed, rows: started.append(matrix.shape))
    real = module.score_strategy
    monkeypatch.setattr(module, "score_strategy", lambda name, *a: order.append(name) or real(name, *a))
    names = ["als", "affinity", "random"]
    _, outer, inner = evaluate_all(events, params, None, names=names)
    assert len(started) == 2  # als's fits on the inner split's and the outer holdout's early parts
    assert order == ["affinity", "affinity", "random", "random", "als", "als"]  # (inner, outer) each
    assert [s.name for s in outer] == [s.name for s in inner] == names


def test_a_cap_is_scored_next_to_the_uncapped_audiences(csv):
    params = RunParams(holdout=holdout_for(len(ROWS), len(LATE)), max_audiences_per_user=1)
    events = clean(read_events(csv), params).events
    _, scored, _ = evaluate_all(events, params, None, names=["affinity"])
    assert [(s.name, s.cap) for s in scored] == [("affinity", None), ("affinity", 1)]
    capped = scored[1].metrics
    # The cap is applied over every product the early part serves (128), not only the two evaluated:
    # products 11 and 21 (four early users each) are served first and take most users' single place.
    assert capped[(10, "user_coverage")] < scored[0].metrics[(10, "user_coverage")]


def scored(name: str, recall: float, macro: float = 0.0, cap: int | None = None) -> Scored:
    metrics = {(100, "recall_micro"): recall, (100, "recall_macro"): macro, (100, "ndcg"): 0.0}
    return Scored(name, metrics, 0.0, cap)


def test_best_is_the_highest_recall_at_100_never_random_and_the_reference_on_ties():
    assert best_strategy([scored("engagement", 0.1), scored("affinity", 0.3), scored("als", 0.2)], False) \
        == "affinity"
    assert best_strategy([scored("engagement", 0.1), scored("random", 0.9)], False) == "engagement"
    assert best_strategy([scored("activity", 0.0), scored("affinity", 0.0), scored("engagement", 0.0)], False) \
        == "engagement"
    assert best_strategy([scored("als", 0.2, 0.5), scored("affinity", 0.2, 0.4)], False) == "als"
    # With a cap, the capped scores decide.
    assert best_strategy([scored("affinity", 0.3), scored("affinity", 0.1, cap=5),
                          scored("als", 0.2), scored("als", 0.15, cap=5)], True) == "als"


def test_the_headline_standard_errors_pair_each_strategy_with_the_chosen_one():
    # Three products, two truth users each, every user in one truth pair: the errors are the products'.
    truth = make_truth(np.repeat([0, 1, 2], 2), np.arange(6), 3, 6, np.zeros(0, np.int64), np.zeros(0, np.int64))
    def hits(name, pairs, cap=None):
        return Scored(name, {}, 0.0, cap, hit_keys=np.array(sorted(p * 6 + u for p, u in pairs)), truth=truth)
    scored = [hits("propensity", [(0, 0), (0, 1), (2, 4)]), hits("affinity", [(0, 0), (2, 4)]),  # 2, 0, 1 and 1, 0, 1
              hits("propensity", [(p, u) for p in range(3) for u in (2 * p, 2 * p + 1)], cap=5),   # 2, 2, 2
              hits("affinity", [(0, 0), (0, 1), (1, 2), (1, 3)], cap=5),                           # 2, 2, 0
              Scored("random", {}, 0.0)]  # random kept no hits: no rows
    rows = comparison_rows(scored, "propensity", "inner_")
    got = {(r.strategy, r.cap, r.metric): r.value for r in rows.itertuples()}
    assert set(rows["k"]) == {100}
    assert got == pytest.approx({
        ("propensity", None, "inner_recall_micro_se"): np.sqrt(3) / 6,  # R 1/2, residuals 1, -1, 0
        ("affinity", None, "inner_recall_micro_se"): 1 / 6,             # R 1/3, residuals 1/3, -2/3, 1/3
        # affinity - propensity = -1, 0, 0: R -1/6, residuals -2/3, 1/3, 1/3. Paired, 1/6: far below the
        # sqrt(3/36 + 1/36) = 1/3 of two independent recalls, as both face the same truth.
        ("affinity", None, "inner_recall_micro_diff_se"): 1 / 6,
        ("propensity", 5, "inner_recall_micro_se"): 0.0,                # 2 of 2 everywhere: no spread
        ("affinity", 5, "inner_recall_micro_se"): 1 / 3,       # R 2/3, residuals 2/3, 2/3, -4/3: sqrt(3/2 * 8/3) / 6
        ("affinity", 5, "inner_recall_micro_diff_se"): 1 / 3,  # against the capped propensity: 0, 0, -2 (R -1/3)
    })
    assert comparison_rows(scored, "als")["metric"].tolist() == ["recall_micro_se"] * 4  # not scored: no pairs


def test_a_run_without_a_strategy_publishes_the_best_on_the_inner_split_and_says_so(csv, params, tmp_path):
    db = tmp_path / "a.db"
    result = execute(csv, db=db, params=RunParams(holdout=params.holdout, strategy=AUTO, depth=5))
    con = queries.connect(db)
    run = queries.run(con, result.run_id)
    events = clean(read_events(csv), params).events
    _, _, inner = evaluate_all(events, RunParams(holdout=params.holdout, depth=5), None)
    chosen = best_strategy(inner, False)
    assert result.strategy == run["params"]["strategy"] == run["summary"]["strategy"] == chosen
    assert "inner split" in run["params"]["strategy_selection"]
    rows = queries.evaluation(con, result.run_id)
    errors = rows["metric"].str.endswith("_se")
    assert (~errors).sum() == len(STRATEGIES) * 2 * len(METRICS) * 2  # outer rows and inner_ rows
    # every strategy's standard error; the difference for all but the chosen. The inner split evaluates
    # one product (12, with 3 later engagements): one product shows no spread, so it stores none.
    assert set(rows.loc[rows["metric"] == "recall_micro_se", "strategy"]) == set(STRATEGIES)
    assert set(rows.loc[rows["metric"] == "recall_micro_diff_se", "strategy"]) == set(STRATEGIES) - {chosen}
    assert inner[0].truth.truth_size.tolist() == [3] and not rows["metric"].str.match("inner_.*_se").any()
    # propensity, published, caught 3 of 4 for product 12 (the newcomer is out of reach) and 3 of 3 for
    # 22, each truth user in one pair (so the products' error): R 6/7, residuals -3/7 and 3/7, standard
    # error sqrt(2 * 18/49) / 7 = 6/49
    assert chosen == "propensity"
    assert rows.query("metric == 'recall_micro_se' and strategy == 'propensity'")["value"].iloc[0] \
        == pytest.approx(6 / 49)
    assert set(rows["strategy"]) == set(STRATEGIES) and set(rows["k"]) == {10, 100}
    assert set(result.strategy_seconds) == set(STRATEGIES)
    # Refitted on all the data: the published audiences are the chosen strategy's on every event.
    users = user_features(events, params)
    refit = next(audiences(chosen, events, users, RunParams(depth=5, holdout=params.holdout,
                                                          horizon_days=window_days(events, params)),
                           np.array([12, 22])))
    for i, product in enumerate((12, 22)):
        published = queries.audience(con, result.run_id, product)["customer_id"].tolist()
        assert published == refit.customer_ids[i, :refit.sizes[i]].tolist()
    assert queries.stats(con, result.run_id)["holdout_products"] == 2


def test_a_forced_strategy_is_published_while_all_are_still_evaluated(csv, params, tmp_path):
    db = tmp_path / "a.db"
    result = execute(csv, db=db, params=RunParams(holdout=params.holdout, strategy="engagement", depth=5))
    con = queries.connect(db)
    assert queries.run(con, result.run_id)["params"]["strategy"] == "engagement"
    assert set(queries.evaluation(con, result.run_id)["strategy"]) == set(STRATEGIES)


def test_holdout_zero_evaluates_nothing_and_auto_falls_back_to_propensity(csv, tmp_path):
    db = tmp_path / "a.db"
    result = execute(csv, db=db, params=RunParams(holdout=0.0, strategy=AUTO, depth=5))
    con = queries.connect(db)
    assert queries.evaluation(con, result.run_id).empty
    assert result.strategy == "propensity" and not any(":" in k for k in result.seconds)


def test_cli_default_evaluates_and_an_unknown_strategy_is_one_line(csv, params, tmp_path, capsys):
    db = tmp_path / "a.db"
    assert main(["run", "--input", str(csv), "--db", str(db), "--depth", "5", "--holdout", str(params.holdout)]) == 0
    con = queries.connect(db)
    assert queries.run(con, queries.current_run_id(con))["params"]["strategy"] == "propensity"
    capsys.readouterr()
    assert main(["run", "--input", str(csv), "--db", str(db), "--strategy", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown strategy 'nope'" in err[0]
    assert queries.current_run_id(con) == 1  # nothing new was published


# --- The app's Evaluation page ---------------------------------------------------------------------------

def open_evaluation(db):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "workbench.py"), default_timeout=30)
    at.session_state["db_path"] = str(db)
    at.run()
    at.switch_page("app_pages/evaluation.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_evaluation_page_shows_the_leaderboard_ceiling_and_explanations(csv, params, tmp_path):
    db = tmp_path / "a.db"
    result = execute(csv, db=db, params=RunParams(holdout=params.holdout, strategy=AUTO, depth=5))
    at = open_evaluation(db)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Published strategy"] == "propensity"
    ceiling = queries.evaluation(queries.connect(db), result.run_id).query(
        "metric == 'reachable_ceiling' and k == 100")["value"].iloc[0]
    assert cards["Reachable ceiling@100"] == f"{100 * ceiling:.3f}%"
    board = at.dataframe[0].value
    assert "propensity ★" in board["strategy"].tolist() and len(board) == len(STRATEGIES)
    assert board.loc[0, "recall_micro"] == pytest.approx(100 * 6 / 7)
    text = " ".join(str(m.value) for m in at.markdown)
    assert all(metric in text for metric in METRICS) and "Affinity looks for users" in text
    # How sure: propensity (6/7, standard error 6/49, see above) against every other strategy
    sure = next(d.value for d in at.dataframe if "verdict" in d.value.columns).set_index("strategy")
    assert sure.loc["propensity", "recall_pm"] == pytest.approx(100 * 1.959964 * 6 / 49)
    assert sure.loc["propensity", "verdict"] == "" and set(sure["verdict"]) <= {"", "lower", "within noise"}
    at.radio(key="eval_k").set_value(10).run()
    assert not at.exception and at.dataframe[0].value.loc[0, "recall_micro"] == pytest.approx(100 * 6 / 7)


def test_the_evaluation_page_explains_a_run_without_holdout(csv, tmp_path):
    db = tmp_path / "a.db"
    execute(csv, db=db, params=RunParams(holdout=0.0, strategy=AUTO, depth=5))
    at = open_evaluation(db)
    assert "no offline evaluation" in " ".join(i.value for i in at.info)


def test_the_report_says_the_same_in_its_evaluation_section(csv, params, tmp_path):
    from reports.html import build_report
    db = tmp_path / "a.db"
    execute(csv, db=db, params=RunParams(holdout=params.holdout, strategy=AUTO, depth=5))
    text = build_report(str(db))
    section = text[text.index('<section id="evaluation">'):text.index('<section id="stress">')]
    assert ("Published strategy: <strong>propensity</strong> (best recall_micro@100 on an inner split of the "
            "fitting period (the holdout only reports))") in section
    assert f"Reachable ceiling at k = 100: <strong>{6 / 7:.3%}</strong>" in section
    assert all(f"<strong>{m}</strong>" in section for m in METRICS)
    assert all(f"<strong>{name}</strong>:" in section for name in STRATEGIES)


def test_a_database_from_before_the_cap_column_gets_its_capped_rows_split(tmp_path):
    import sqlite_utils

    from store.schema import ensure_schema
    db = sqlite_utils.Database(tmp_path / "old.db")
    db["evaluation"].create({"run_id": int, "strategy": str, "k": int, "metric": str, "value": float},
                            pk=("run_id", "strategy", "k", "metric"))
    db["evaluation"].insert_all([{"run_id": 1, "strategy": "affinity", "k": 10, "metric": "hit_rate", "value": 0.5},
                                 {"run_id": 1, "strategy": "affinity+cap12", "k": 10, "metric": "hit_rate",
                                  "value": 0.25}])
    ensure_schema(db)
    rows = db.execute("SELECT strategy, cap, value FROM evaluation ORDER BY value").fetchall()
    assert rows == [("affinity", 12, 0.25), ("affinity", None, 0.5)]


def test_the_fitting_part_judges_bots_on_its_own_days_only():
    # Limit 2 a day. Customer 7 buys product 1 on day 1, then sends 3 events on day 10 (after the
    # split on day 5): a bot only later, so the fitting part keeps their day-1 row. Customer 8 sends
    # 3 on day 2: a bot already before the split, gone from both parts. Customer 9 is plain.
    raw = pd.DataFrame([("7", "1", "purchased", "2023-01-01"), ("8", "1", "cart", "2023-01-02T01:00"),
                        ("8", "2", "cart", "2023-01-02T02:00"), ("8", "3", "cart", "2023-01-02T03:00"),
                        ("9", "1", "cart", "2023-01-03"), ("9", "1", "purchased", "2023-01-08"),
                        ("7", "1", "cart", "2023-01-10T01:00"), ("7", "2", "cart", "2023-01-10T02:00"),
                        ("7", "3", "cart", "2023-01-10T03:00")],
                       columns=["customer_id", "product_id", "event", "event_date"])
    params = RunParams(bot_daily_limit=2, holdout=0.3)
    cleaned = clean(raw, params, now=pd.Timestamp("2024-01-01"))
    assert set(cleaned.events["customer_id"]) == {9} and cleaned.counts["bot_rows"] == 7
    holdout = make_holdout(cleaned.events, params, split=pd.Timestamp("2023-01-05"), bot_rows=cleaned.bot_rows)
    assert sorted(zip(holdout.early["customer_id"], holdout.early["event"].astype(str))) == \
        [(7, "purchased"), (9, "cart")]
    assert holdout.users["customer_id"].tolist() == [7, 9]
    assert holdout.early_bots["customer_id"].tolist() == [8, 8, 8]  # still bots, for an earlier split
    # Without the dropped rows (the old way), customer 7's early purchase was lost.
    assert make_holdout(cleaned.events, params, split=pd.Timestamp("2023-01-05")).early["customer_id"].tolist() == [9]


def test_the_stats_say_how_much_propensity_learned_from_in_its_outer_fit():
    from pipeline.evaluation.holdout import Scored, holdout_stats
    from pipeline.evaluation.metrics import make_truth
    truth = make_truth(np.array([0, 1]), np.array([2, -1]), 2, 5, np.zeros(0, np.int64), np.zeros(0, np.int64))
    scored = [Scored("propensity", {}, 1.0, learned_from=(74, 1000, 2)),
              Scored("propensity", {}, 1.0, cap=3, learned_from=(9, 9, 9)),  # the capped refit: not reported
              Scored("affinity", {}, 1.0)]
    stats = holdout_stats(np.array([10, 14]), 5, truth, scored).set_index("name")["value"].to_dict()
    assert stats["propensity_training_engaged_pairs"] == 74 and stats["propensity_training_pairs"] == 1000
    assert stats["propensity_model_families"] == 2 and not any(k.startswith("affinity") for k in stats)
    assert stats["holdout_truth_pairs"] == 2 and stats["holdout_known_truth_pairs"] == 1
