"""`python -m reports`: the self-contained HTML report of a run, on the workbench run of tests/conftest.py
(12 clean interactions by 7 users on 6 products; its figures are worked out there), and the shared words,
formatter and leaderboard of reports/."""
from __future__ import annotations

import html
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import RunParams
from pipeline.run import execute
from pipeline.strategies import STRATEGIES
from reports.html import build_report
from reports.kpis import format_stat, kpis
from reports.tables import certainty_view, leaderboard, random_lift_is_one
from reports.words import DESCRIPTIONS, EXPLANATIONS, SHORT_NAMES
from store import writer

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("summary", "reading", "charts", "data-quality", "evaluation", "model", "stress", "statistics",
            "parameters")
# 8 charts of the run (users by interactions, event mix, cohorts, product months, daily events, top products,
# data quality, stage seconds) and 4 of its evaluation (metrics, recall against coverage, lift, recall@100
# with its 95% intervals): products 10 and 14 are seen on both sides of the split, so the run has an
# evaluation (two products: enough for a standard error), and with it the propensity model's calibration
# and every strategy's gain (2).
CHARTS = 8 + 4 + 2


class Tags(HTMLParser):
    """Every tag's attributes and the <section> ids (script text is data, not tags, to this parser)."""

    def __init__(self):
        super().__init__()
        self.attributes: list[tuple[str, str, str]] = []
        self.sections: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.attributes += [(tag, k, v or "") for k, v in attrs]
        self._in_script = tag == "script"
        if tag == "section":
            self.sections.append(dict(attrs).get("id", ""))

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


@pytest.fixture(scope="module")
def db(tmp_path_factory, make_workbench_db) -> Path:
    return make_workbench_db(tmp_path_factory.mktemp("report"))


def parse(text: str) -> Tags:
    tags = Tags()
    tags.feed(text)
    return tags


def test_cli_writes_a_report_with_every_section_and_no_external_url(db, tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "reports", "--db", str(db), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    tags = parse(out.read_text())
    assert tags.sections == list(SECTIONS)
    links = [(tag, key, value) for tag, key, value in tags.attributes if key in ("src", "href")]
    assert not [v for _, _, v in links if v.startswith(("http:", "https:", "//"))], links
    assert not [t for t, k, v in tags.attributes if t == "link"]  # no external stylesheet either
    assert max(len(s) for s in tags.scripts) > 1_000_000  # plotly.js itself, inline


# Worked by hand in tests/conftest.py.
FIGURES = {"total_interactions": "12", "unique_users": "7", "unique_products": "6", "sparsity": "0.714286",
           "one_time_users_pct": "57.14%", "mean_interactions_per_user": "1.71", "event_pct_cart": "50.00%",
           "event_pct_purchased": "25.00%", "event_pct_rating": "8.33%", "retention_rate_pct": "0.00%",
           "new_products_pct": "33.33%", "late_period_users": "2"}
CHECKS = {"rows_read": "14", "bad_dates": "1", "duplicates": "1", "rows_clean": "12"}


def test_report_shows_the_run_figures(db):
    text = build_report(str(db))
    for name, shown in FIGURES.items():
        assert f"<td>{name}</td>\n      <td>{shown}</td>" in text, name
    for check, rows in CHECKS.items():
        assert f"<td>{check}</td>\n      <td>{rows}</td>" in text, check
    assert "No stress run recorded" in text
    assert all(f"<td>{strategy}</td>" in text for strategy in STRATEGIES)
    assert text.count('class="plotly-graph-div"') == CHARTS
    assert "Published strategy: <strong>engagement</strong>" in text


def test_a_report_of_an_unpublished_run_says_this_run_s_strategy(tmp_path, make_workbench_db):
    db = make_workbench_db(tmp_path)
    make_workbench_db(tmp_path, exclude="none", publish=False, db=db)
    text = build_report(str(db), 2)
    assert "This run's strategy: <strong>engagement</strong>" in text and "Published strategy" not in text


def test_report_includes_evaluation_and_the_latest_stress_run(db, tmp_path):
    copy = tmp_path / "wb.db"
    execute(Path(db).parent / "events.csv", db=copy, params=RunParams(depth=3), publish=True)
    wdb = writer.connect(copy)
    writer.write_frame(wdb, "evaluation", 1, pd.DataFrame({"strategy": ["engagement", "popularity"], "k": [10, 10],
                                                            "metric": ["recall", "recall"], "value": [0.25, 0.125]}))
    writer.add_stress_run(wdb, {"run_id": 1, "started_at": "2023-04-01T00:00:00", "finished_at": "2023-04-01T00:01:00",
                                "users": 50, "duration_s": 60.0, "requests": 12345, "failures": 0, "rps": 205.7,
                                "p50_ms": 4.0, "p95_ms": 9.0, "p99_ms": 15.0, "report_html": "s.html",
                                "per_endpoint": json.dumps({"endpoints": [{"name": "/recommend/[id]",
                                                                           "requests": 12345}]})})
    text = build_report(str(copy))
    assert "<td>popularity</td>" in text and "<td>0.125</td>" in text and "No offline evaluation" not in text
    assert "12,345" in text and "205.7" in text and "/recommend/[id]" in text


def test_cli_refuses_bad_input_with_one_line(tmp_path, db):
    for args in (["--db", str(tmp_path / "missing.db")], ["--db", str(db), "--run", "99"]):
        done = subprocess.run([sys.executable, "-m", "reports", *args, "--out", str(tmp_path / "r.html")], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error:")


def test_report_renders_its_charts_with_the_network_blocked(db, tmp_path, chromium):
    from playwright.sync_api import sync_playwright
    out = tmp_path / "report.html"
    out.write_text(build_report(str(db)))
    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (blocked.append(route.request.url), route.abort()))
        page.goto(out.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20_000)
        drawn = page.locator(".js-plotly-plot").count()
        browser.close()
    assert drawn == CHARTS and blocked == []


# --- the shared words, formatter and leaderboard -------------------------------------------------------

def test_every_strategy_and_metric_is_explained_in_words():
    assert set(DESCRIPTIONS) == set(STRATEGIES) and all(len(d) > 150 for d in DESCRIPTIONS.values())
    assert set(SHORT_NAMES) == set(EXPLANATIONS) and max(len(s) for s in SHORT_NAMES.values()) <= 17


@pytest.mark.parametrize("name, value, signed, text", [
    ("sparsity", 0.999994, False, "0.999994"),
    ("sparsity", 0.0000012, True, "+0.000001"),
    ("unique_users", 433787, False, "433,787"),
    ("unique_users", -1200, True, "-1,200"),
    ("one_time_users_pct", 88.78, False, "88.78%"),
    ("retention_rate_pct", -0.5, True, "-0.50 pp"),
    ("event_pct_cart", 60.99, False, "60.99%"),
    ("mean_interactions_per_user", 1.15, False, "1.15"),
    ("sparsity", float("nan"), False, ""),
    ("unique_users", None, False, ""),
])
def test_one_formatter_for_every_statistic(name, value, signed, text):
    assert format_stat(name, value, signed) == text


def test_kpi_cards_and_their_changes():
    now = {"total_interactions": 498879, "sparsity": 0.999994, "one_time_users_pct": 88.78}
    before = {"total_interactions": 500000, "sparsity": 0.999993, "one_time_users_pct": 90.0}
    cards = {k.label: (k.value, k.delta, k.delta_color) for k in kpis(now, before)}
    assert cards == {"Interactions": ("498,879", "-1,121", "normal"),
                     "Sparsity": ("0.999994", "+0.000001", "inverse"),
                     "One-time users": ("88.78%", "-1.22 pp", "inverse")}
    assert [k.delta for k in kpis(now, None)] == [None, None, None]


def evaluation_rows(values: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame([{"strategy": s, "cap": None, "label": s, "k": 100, "metric": m, "value": v}
                         for (s, m), v in values.items()])


def test_the_leaderboard_in_percent_best_first_and_random_at_one():
    rows = evaluation_rows({("random", "recall_micro"): 0.01, ("random", "lift_over_random"): 0.93,
                            ("affinity", "recall_micro"): 0.05, ("affinity", "lift_over_random"): 5.0,
                            ("affinity", "reachable_ceiling"): 0.2, ("random", "reachable_ceiling"): 0.2})
    board = leaderboard(rows, 100)
    assert board.columns.tolist() == ["strategy", "recall_micro", "lift_over_random"]  # the ceiling: apart
    assert board.to_dict("list") == {"strategy": ["affinity", "random"], "recall_micro": [5.0, 1.0],
                                     "lift_over_random": [5.0, 1.0]}
    assert random_lift_is_one(rows).query("strategy == 'affinity' and metric == 'lift_over_random'")[
        "value"].tolist() == [5.0]


def test_certainty_pairs_every_strategy_with_the_run_s_own_under_its_cap():
    z = 1.959963984540054
    rows = evaluation_rows({("affinity", "recall_micro"): 0.05, ("affinity", "recall_micro_se"): 0.01,
                            ("als", "recall_micro"): 0.02, ("als", "recall_micro_se"): 0.005,
                            ("als", "recall_micro_diff_se"): 0.01,      # -0.03 +- 0.0196: lower
                            ("random", "recall_micro"): 0.04, ("random", "recall_micro_se"): 0.01,
                            ("random", "recall_micro_diff_se"): 0.01})  # -0.01 +- 0.0196: within noise
    capped = pd.DataFrame([{"strategy": "als", "cap": 5.0, "label": "als (cap 5)", "k": 100, "metric": m, "value": v}
                           for m, v in (("recall_micro", 0.9), ("recall_micro_se", 0.1))])
    got = certainty_view(pd.concat([rows, capped], ignore_index=True), "affinity")
    assert got["strategy"].tolist() == ["affinity", "random", "als"]  # best first; the capped row is not compared
    assert got["verdict"].tolist() == ["", "within noise", "lower"]
    assert got["recall"].tolist() == pytest.approx([5, 4, 2]) and got["versus_run"].tolist() == pytest.approx([0, -1, -3])
    assert got["recall_pm"].tolist() == pytest.approx([100 * z * 0.01, 100 * z * 0.01, 100 * z * 0.005])
    assert np.isnan(got["versus_run_pm"].iloc[0]) and got["versus_run_pm"].iloc[1:].tolist() == pytest.approx(
        [100 * z * 0.01] * 2)
    assert certainty_view(rows[~rows["metric"].str.endswith("_se")], "affinity").empty  # a run from before them


def test_the_report_shows_calibration_and_gain_or_says_the_run_has_none(propensity_db, without_model_tables,
                                                                       tmp_path):
    from reports.words import NO_CALIBRATION, NO_GAIN
    text = build_report(str(propensity_db))
    assert "Propensity: calibration and gain" in text and "Calibration: expected vs observed" in text
    assert "Gain on the holdout" in text and html.escape(NO_CALIBRATION) not in text
    assert "<th>within_chance</th>" in text and "<th>chance_high</th>" in text
    assert "had 0 engaged pairs to learn from" in text  # the workbench is too short to train (test_app_model)
    old = build_report(str(without_model_tables(propensity_db, tmp_path)))
    assert html.escape(NO_CALIBRATION) in old and html.escape(NO_GAIN) in old
    assert "Calibration: expected vs observed" not in old


@pytest.mark.parametrize(("expected", "observed", "low", "high", "within"), [
    # Poisson(10): P(X <= 3) = 0.010, P(X <= 4) = 0.029, so 2.5% of the mass is below 4; P(X <= 16) = 0.973,
    # P(X <= 17) = 0.986, so the upper 2.5% starts above 17.
    (10.0, 4, 4, 17, True),
    (10.0, 3, 4, 17, False),
    (10.0, 18, 4, 17, False),
    # Poisson(1): P(X <= 0) = 0.368 >= 2.5%, P(X <= 2) = 0.920, P(X <= 3) = 0.981.
    (1.0, 0, 0, 3, True),
    (0.0, 0, 0, 0, True),  # nothing expected, nothing seen
])
def test_the_calibration_view_gives_the_counts_chance_allows(expected, observed, low, high, within):
    from reports.tables import calibration_view
    table = pd.DataFrame({"decile": [1], "entries": [100], "expected": [expected], "observed": [float(observed)],
                          "observed_over_expected": [observed / expected if expected else None]})
    row = calibration_view(table).iloc[0]
    assert (row["chance_low"], row["chance_high"], bool(row["within_chance"])) == (low, high, within)


@pytest.mark.parametrize(("stats", "says", "never"), [
    ({}, [], []),  # a run from before the figures were stored: nothing to say
    ({"propensity_model_families": 0.0, "propensity_training_engaged_pairs": 3.0, "propensity_training_pairs": 120.0},
     ["had 3 engaged pairs to learn from", "(120 candidate pairs), too few to fit", "ranked by its prior"], ["trained on"]),
    ({"propensity_model_families": 2.0, "propensity_training_engaged_pairs": 74.0,
      "propensity_training_pairs": 199756.0},
     ["trained on 199,756 candidate pairs", "74 of which engaged. That is few"], ["prior"]),
    ({"propensity_model_families": 2.0, "propensity_training_engaged_pairs": 450.0,
      "propensity_training_pairs": 200000.0},
     ["trained on 200,000 candidate pairs", "450 of which engaged."], ["That is few"]),
])
def test_the_calibration_says_how_much_the_model_learned_from(stats, says, never):
    from reports.words import learned_from_words
    text = learned_from_words(stats)
    assert all(part in text for part in says) and not any(part in text for part in never)
    assert (text == "") == (not stats)
