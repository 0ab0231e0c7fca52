"""End to end in a real browser: `streamlit run` on a test database, driven by Debian's chromium (Playwright).

Screenshots of every page go to $WORKBENCH_SCREENSHOTS when it is set (to look at them), else to tmp_path.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from store import queries

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# url path -> (title, plotly charts at least, dataframes at least)
PAGES = {"": ("Overview", 5, 1), "audiences": ("Audiences", 1, 1), "evaluation": ("Evaluation", 2, 1),
         "retrain": ("Retrain", 0, 0), "runs": ("Runs", 0, 1), "service": ("Service", 0, 0)}
# The width a table's grid needs against the width it has (Glide Data Grid scrolls inside .dvn-scroller).
GRID_WIDTHS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
                      .map(e => [e.scrollWidth, e.clientWidth])"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, make_workbench_db, chromium):  # chromium first: no server without a browser
    db = make_workbench_db(tmp_path_factory.mktemp("e2e"))
    port = free_port()
    env = {**os.environ, "AUDIENCE_DB": str(db), "WORKBENCH_API_URL": "http://127.0.0.1:9"}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/workbench.py", "--server.port",
                               str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.3)
        yield url, db
    finally:
        server.terminate()
        server.wait(timeout=20)


def settle(page) -> None:
    """Wait until the script run is over and no spinner is left, so what the page shows is final."""
    from playwright.sync_api import expect
    page.wait_for_timeout(300)
    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(1, timeout=60_000)
    expect(page.get_by_test_id("stSpinner")).to_have_count(0, timeout=60_000)


def test_every_page_renders_in_chromium_and_the_download_equals_the_database(app_url, tmp_path, chromium):
    from playwright.sync_api import expect, sync_playwright
    url, db = app_url
    shots = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        for path, (title, charts, tables) in PAGES.items():
            page.goto(f"{url}/{path}")
            expect(page.locator("h1").first).to_contain_text(title, timeout=30_000)
            if charts:
                expect(page.locator(".js-plotly-plot .main-svg").nth(charts - 1)).to_be_attached(timeout=30_000)
            if tables:
                expect(page.locator('[data-testid="stDataFrame"]').nth(tables - 1)).to_be_visible(timeout=30_000)
            settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, f"exception on /{path}"
            page.screenshot(path=str(shots / f"page-{path or 'overview'}.png"), full_page=True)

        page.goto(f"{url}/evaluation")
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=30_000)
        settle(page)
        needed, shown = page.evaluate(GRID_WIDTHS)[0]
        assert needed <= shown, f"the leaderboard needs {needed}px but has {shown}px"  # fits: no side scroll

        page.goto(f"{url}/audiences")
        button = page.get_by_role("button", name="Download this audience (CSV)")
        expect(button).to_be_visible(timeout=30_000)
        with page.expect_download(timeout=30_000) as download:
            button.click()
        got = pd.read_csv(download.value.path())
        browser.close()
    expected = pd.read_sql_query("SELECT product_id, rank, customer_id, score FROM audiences WHERE run_id = 1 "
                                 "AND product_id = 10 ORDER BY rank", queries.connect(db))
    assert len(expected) == 4  # users 3, 4, 5 and 7: everyone but those who touched product 10
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, atol=1e-9)


@pytest.mark.parametrize("ci, outcome", [("true", {"errors": 1}), ("", {"skipped": 1})])  # an error fails the run
def test_a_missing_chromium_fails_under_ci_and_only_skips_elsewhere(pytester, monkeypatch, ci, outcome):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile("def test_browser(chromium):\n    assert chromium\n")
    monkeypatch.setenv("WORKBENCH_CHROMIUM", str(pytester.path / "no-such-chromium"))
    monkeypatch.setenv("CI", ci)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(**outcome)
