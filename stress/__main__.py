"""`python -m stress run|bench`: load tests of the serving API, traffic on 127.0.0.1 only."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from store.errors import WorkbenchError
from store.names import db_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stress", description=(
        "Load tests of the serving API on the current database ($AUDIENCE_DB or data/audiences.db)."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="locust, headless: RPS, latency and failures per endpoint",
                         description="Start the API, run locust headless against it, write the CSV and "
                                     "HTML reports, store a stress_runs row; exit 1 on any failure.")
    run.add_argument("--users", type=int, default=500, help="concurrent locust users (default 500)")
    run.add_argument("--spawn-rate", type=float, default=50, help="users started per second (default 50)")
    run.add_argument("--duration", default="5m", help="e.g. 300, 90s, 5m, 1h30m (default 5m)")
    run.add_argument("--workers", type=int, default=2, help="API (uvicorn) worker processes (default 2)")
    run.add_argument("--locust-processes", type=int, default=1,
                     help="locust processes (locust --processes; default 1)")
    run.add_argument("--out", default="data/reports", help="report folder (default data/reports)")
    bench = sub.add_parser("bench", help="wrk: /recommend against a bare ASGI app on the same server",
                           description="/recommend RPS, p50 and p99 with wrk against the API and against a "
                                       "bare ASGI app, the API's startup time and RSS per worker.")
    bench.add_argument("--seconds", type=float, default=10, help="length of each measured wrk run (default 10)")
    bench.add_argument("--rounds", type=int, default=2, help="alternating API / bare rounds (default 2)")
    bench.add_argument("--warmup", type=float, default=10,
                       help="seconds of the same requests before measuring, so each API worker has rendered the "
                            "answers asked once, as a server that has run a while has (default 10)")
    bench.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    bench.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    bench.add_argument("--starts", type=int, default=5,
                       help="API starts timed to the first 200 on /health, and as many of the bare app (default 5)")
    for p in (run, bench):
        p.add_argument("--db", help="SQLite database (default: $AUDIENCE_DB or data/audiences.db)")
    return parser


def check_database(db: Path) -> None:
    """A published run must exist: say so in one line instead of failing inside the server."""
    from store import read
    con = read.connect(db)
    try:
        if read.current_run_id(con) is None:
            raise WorkbenchError(f"no published run in {db}; build one with `python -m pipeline demo`")
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db = db_path(args.db)
    try:
        for name in ("users", "workers", "locust_processes", "connections", "rounds", "starts"):
            if getattr(args, name, 1) < 1:
                raise WorkbenchError(f"--{name.replace('_', '-')} must be at least 1")
        if getattr(args, "warmup", 0) < 0:
            raise WorkbenchError("--warmup must be 0 or more seconds")
        check_database(db)
        if args.command == "run":
            from stress.run import parse_duration, run
            parse_duration(args.duration)
            return run(db, args.users, args.spawn_rate, args.duration, args.workers, args.locust_processes,
                       Path(args.out))
        from stress.bench import bench
        return bench(db, seconds=args.seconds, connections=args.connections, workers=args.workers,
                     rounds=args.rounds, warmup=args.warmup, starts=args.starts)
    except (WorkbenchError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
