"""`python -m reports`: the self-contained HTML report of a run, generated on a small database."""
from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import RunParams
from pipeline.run import execute
from reports.html import build_report
from reports.tables import format_stat
from store import queries, writer

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("summary", "reading", "charts", "data-quality", "evaluation", "stress", "statistics", "parameters")
# 9 rows read: one exact duplicate dropped, so 8 clean interactions by 4 users on 3 products.
EVENTS = """customer_id,product_id,event,event_date
1,10,purchased,2023-01-05T10:00:00
1,11,cart,2023-02-20T10:00:00
2,10,cart,2023-01-06T10:00:00
2,12,wishlist,2023-03-10T10:00:00
3,11,purchased,2023-01-10T10:00:00
3,11,cart,2023-03-15T10:00:00
4,12,search_keyword,2023-03-20T10:00:00
4,10,rating,2023-03-21T10:00:00
4,10,rating,2023-03-21T10:00:00
"""


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
def db(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "events.csv").write_text(EVENTS)
    path = tmp / "wb.db"
    execute(tmp / "events.csv", db=path, params=RunParams(depth=3), publish=True)
    return path


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


def test_report_shows_the_run_figures(db):
    text = build_report(str(db))
    stats = queries.stats(queries.connect(db), 1)
    assert stats["total_interactions"] == 8 and stats["unique_users"] == 4  # worked out by hand above
    for name, value in stats.items():
        assert f"<td>{name}</td>\n      <td>{format_stat(name, value)}</td>" in text
    for check, rows in queries.data_quality(queries.connect(db), 1).itertuples(index=False):
        assert f"<td>{check}</td>\n      <td>{rows:,}</td>" in text
    assert "No stress run recorded" in text
    evaluation = queries.evaluation(queries.connect(db), 1)
    for strategy in evaluation["strategy"].unique():
        assert f"<td>{strategy}</td>" in text
    # 8 run charts, and 3 evaluation charts (leaderboard, recall against coverage, lift) when evaluated
    assert text.count('class="plotly-graph-div"') == 8 + 3 * (not evaluation.empty)


def test_report_includes_evaluation_and_the_latest_stress_run(db, tmp_path):
    copy = tmp_path / "wb.db"
    (tmp_path / "events.csv").write_text(EVENTS)
    execute(tmp_path / "events.csv", db=copy, params=RunParams(depth=3), publish=True)
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


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_its_charts_with_the_network_blocked(db, tmp_path):
    from playwright.sync_api import sync_playwright
    out = tmp_path / "report.html"
    out.write_text(build_report(str(db)))
    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (blocked.append(route.request.url), route.abort()))
        page.goto(out.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20_000)
        drawn = page.locator(".js-plotly-plot").count()
        browser.close()
    assert drawn == 8 + 3 * (not queries.evaluation(queries.connect(db), 1).empty) and blocked == []
