"""`python -m reports [--db DB] [--run ID] --out report.html`: a run's self-contained HTML report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from store.errors import WorkbenchError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=(
        "Write a run's report (statistics, charts, data quality, evaluation, latest stress run) as one HTML "
        "file that opens offline."))
    parser.add_argument("--db", help="SQLite database (default: $AUDIENCE_DB or data/audiences.db)")
    parser.add_argument("--run", type=int, help="run id (default: the published run)")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    args = parser.parse_args(argv)
    from reports.html import build_report
    try:
        text = build_report(args.db, args.run)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
