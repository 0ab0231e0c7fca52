"""Page timings: `python -m app.bench [--db DB]` prints, for every page, how long it takes to be ready.

Each page is measured in a fresh Python process through streamlit.testing.v1.AppTest: "cold" is the first
script run there (module imports, empty st.cache_data, SQLite pages not yet in the OS cache aside), "warm"
the median of the next runs. Two actions that read a whole run are timed too: the user lookup (scans every
audience) and the run comparison (Jaccard over every common product, Spearman over every common user).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("overview", "audiences", "retrain", "runs", "service")
ACTIONS = ("user lookup", "compare runs")
HARNESS = "harness only"


def _app(db: str, page: str):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app" / "workbench.py"), default_timeout=120)
    at.session_state["db_path"] = db
    at.session_state["api_url"] = "http://127.0.0.1:9"  # nothing listens: the Service page's "down" path
    at.switch_page(f"app_pages/{page}.py")  # before the first run: the cold run is this page's
    return at


def _prepare(at, db: str, what: str) -> None:
    """Set up an action's widgets (not timed): the most engaged user, or the compare toggle."""
    from store import queries
    if what == "user lookup":
        con = queries.connect(db)
        top = int(queries.fallback(con, queries.require_current_run(con), 1)["customer_id"][0])
        at.number_input(key="lookup_id").set_value(top)
    else:
        at.toggle(key="cmp_deep").set_value(True)


def measure(db: str, what: str, repeats: int) -> dict:
    """Runs inside a fresh process: the cold run, then `repeats` warm runs."""
    page = {"user lookup": "audiences", "compare runs": "runs"}.get(what, what)
    if what == HARNESS:  # what AppTest itself costs on a first run, whatever the page
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_string("import streamlit as st\nst.write('ok')", default_timeout=60)
    else:
        at = _app(db, page)
    if what in ACTIONS:
        at.run()
        _prepare(at, db, what)
    start = time.perf_counter()
    at.run()
    cold = time.perf_counter() - start
    if at.exception:
        return {"error": at.exception[0].message}
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
    return {"cold": cold, "warm": statistics.median(warm)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="data/audiences.db")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one page in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.db, args.one, args.repeats)))
        return 0
    if not Path(args.db).is_file():
        print(f"error: no database at {args.db}; build one with `python -m pipeline demo`", file=sys.stderr)
        return 2
    print(f"{'page':<14}{'cold s':>9}{'warm s':>9}   ({args.db}, warm = median of {args.repeats})")
    for what in (HARNESS, *PAGES, *ACTIONS):
        done = subprocess.run([sys.executable, "-m", "app.bench", "--db", args.db, "--one", what,
                               "--repeats", str(args.repeats)], cwd=ROOT, capture_output=True, text=True)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": done.stderr.strip().splitlines()[-1:]}
        if "error" in result:
            print(f"{what:<14}  error: {result['error']}")
        else:
            print(f"{what:<14}{result['cold']:>9.3f}{result['warm']:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
