"""`python -m pipeline …`: generate, run, demo, export, runs, publish, bench, quality, calibration.

Every mistake ends with one line on stderr and exit status 2; nothing here prints a traceback.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sqlite3
import sys

from pipeline.cli import calibration, quality
from pipeline.config import EXCLUDE_RULES, RunParams, default_component_weights, default_event_weights
from pipeline.demo import DEMO_DIR, DEMO_ROWS, DEMO_SEED
from pipeline.strategies import AUTO, STRATEGIES
from store.errors import InputError, WorkbenchError
from store.names import db_path
from store.read import damaged


def _weights(text: str, defaults: dict[str, float], flag: str) -> dict[str, float]:
    """'cart=3,purchased=5' or a JSON object, applied over the defaults."""
    try:
        given = json.loads(text) if text.strip().startswith("{") else {
            k.strip(): float(v) for k, v in (item.split("=", 1) for item in text.split(",") if item.strip())}
        return {**defaults, **{k: float(v) for k, v in given.items()}}
    except (ValueError, TypeError):
        raise InputError(f"{flag} takes name=value pairs such as 'cart=3,purchased=5', got {text!r}") from None


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="SQLite database (default: $AUDIENCE_DB or data/audiences.db)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    defaults = RunParams()
    parser.add_argument("--products", help="optional product catalogue CSV (product_id, category)")
    _add_db(parser)
    parser.add_argument("--depth", type=int, default=defaults.depth, help="audience size per product (default 100)")
    parser.add_argument("--strategy", default=None, metavar="NAME",
                        help="ranking strategy to publish: " + ", ".join(STRATEGIES) + ". Default: score them "
                             "all on the temporal holdout and publish the best by recall@100 (fitted again on "
                             "all the data); every strategy is evaluated in either case while --holdout > 0")
    parser.add_argument("--exclude", choices=EXCLUDE_RULES, default=defaults.exclude,
                        help="who is left out of a product's audience: anyone who interacted with it (all), "
                             "only its buyers (purchased), or nobody (none)")
    parser.add_argument("--holdout", type=float, default=defaults.holdout,
                        help="late share of events held out for the stats split and evaluation (0 disables)")
    parser.add_argument("--bot-limit", type=int, default=defaults.bot_daily_limit,
                        help="drop customers with more than this many interactions on one UTC day")
    parser.add_argument("--decay-days", type=float, default=defaults.decay_days, help="recency decay (days)")
    parser.add_argument("--event-weights", default="", help="e.g. 'cart=3,purchased=5'")
    parser.add_argument("--component-weights", default="", help="e.g. 'total=0.35,recency=0.05'")
    parser.add_argument("--keep-runs", type=int, default=defaults.keep_runs,
                        help="keep audiences of this many latest runs (default 5)")
    parser.add_argument("--max-audiences-per-user", type=int, default=None,
                        help="no user in more than this many audiences")
    parser.add_argument("--no-publish", action="store_true", help="leave the run unpublished")
    gates = parser.add_argument_group(
        "publish gates", "a run that fails one is held (succeeded, not published; `publish --run ID` still "
                         "publishes it); the first run of a database always publishes")
    gates.add_argument("--no-gates", action="store_true", help="publish without comparing with the current run")
    gates.add_argument("--min-share", type=float, default=defaults.min_share,
                       help="clean rows, users and products at least this share of the current run's (default 0.5)")
    gates.add_argument("--max-dropped", type=float, default=defaults.max_dropped,
                       help="at most this share of the rows read dropped by cleaning (default 0.2)")
    gates.add_argument("--recall-alpha", type=float, default=defaults.recall_alpha,
                       help="hold when recall@100 is below the current run's with one-sided p below this "
                            "(two-proportion z-test on hits / truth pairs; default 0.05)")
    parser.add_argument("--retention-days", type=float, default=defaults.retention_days,
                        help="after the run, remove exports, rejected uploads and logs older than this (default 7)")
    _add_engine(parser)


def _add_engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="inprocess", help="inprocess (default) or spark (pyspark: "
                        "local mode, or the cluster of --spark-master); see README 'Running on a Spark cluster'")
    parser.add_argument("--spark-master", default=None, metavar="URL",
                        help="Spark master for --engine spark, e.g. spark://127.0.0.1:7077 (default local[*])")


def _params(args: argparse.Namespace) -> RunParams:
    params = RunParams(depth=args.depth, exclude=args.exclude, holdout=args.holdout,
                       bot_daily_limit=args.bot_limit, decay_days=args.decay_days, keep_runs=args.keep_runs,
                       max_audiences_per_user=args.max_audiences_per_user,
                       gates=not args.no_gates, min_share=args.min_share, max_dropped=args.max_dropped,
                       recall_alpha=args.recall_alpha, retention_days=args.retention_days,
                       event_weights=_weights(args.event_weights, default_event_weights(), "--event-weights"),
                       component_weights=_weights(args.component_weights, default_component_weights(),
                                                  "--component-weights"),
                       engine=args.engine, spark_master=args.spark_master)
    params.strategy = args.strategy or AUTO
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=(
        "Audience Workbench pipeline: raw marketplace events -> cleaned, diagnosed, ranked audiences "
        "published as a run in SQLite."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write the synthetic demo marketplace",
                         description="Write DIR/interactions.csv and DIR/products.csv (same seed, same bytes).")
    gen.add_argument("--rows", type=int, default=DEMO_ROWS)
    gen.add_argument("--seed", type=int, default=DEMO_SEED)
    gen.add_argument("--out", default=DEMO_DIR)

    run = sub.add_parser("run", help="one full run on an events file",
                         description="Clean, diagnose, rank and (by default) publish one run.")
    run.add_argument("--input", required=True, help="events file: CSV or Parquet")
    _add_run_options(run)

    demo = sub.add_parser("demo", help="generate the demo data, run and publish it",
                          description="Generate the demo marketplace, then run and publish it.")
    demo.add_argument("--rows", type=int, default=DEMO_ROWS)
    demo.add_argument("--seed", type=int, default=DEMO_SEED)
    demo.add_argument("--out", default=None, help="where the generated files go (default: demo-ROWS-sSEED beside "
                                                  "the database); files an earlier demo wrote are reused, never "
                                                  "overwritten")
    _add_run_options(demo)

    export = sub.add_parser("export", help="audiences as CSV (product_id,rank,customer_id,score)",
                            description="Stream audiences of a run to CSV; unknown products get the fallback.")
    _add_db(export)
    export.add_argument("--run", type=int, help="run id (default: the published run)")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--product", type=int, nargs="+", metavar="ID")
    which.add_argument("--products-file", metavar="F", help="a file of product ids, one per line")
    which.add_argument("--all", action="store_true", help="every product of the run")
    export.add_argument("--n", type=int, help="top N of each audience (default: the run's depth)")
    export.add_argument("--out", required=True, help="the CSV file to write")

    runs = sub.add_parser("runs", help="list runs", description="List runs, newest first.")
    _add_db(runs)

    publish = sub.add_parser("publish", help="make a succeeded run current (also a rollback)",
                             description="Make a succeeded run the current one.")
    publish.add_argument("--run", type=int, required=True)
    _add_db(publish)

    gc = sub.add_parser("gc", help="free disk space: old files, pruned runs, VACUUM",
                        description="Remove exports, rejected uploads and logs older than --days beside the "
                                    "database, prune the audiences of old runs, and VACUUM when it frees space.")
    _add_db(gc)
    gc.add_argument("--days", type=float, default=RunParams().retention_days, help="retention in days (default 7)")
    gc.add_argument("--keep-runs", type=int, default=RunParams().keep_runs,
                    help="keep audiences of this many latest runs (default 5; the published one always)")

    bench = sub.add_parser("bench", help="time every stage of a full run",
                           description="Generate data once, then time each stage of a run; print peak RSS.")
    bench.add_argument("--rows", type=int, default=DEMO_ROWS)
    bench.add_argument("--seed", type=int, default=DEMO_SEED)
    bench.add_argument("--dir", default="data/bench", help="where generated data and the bench DB go")
    bench.add_argument("--strategy", default=None,
                       help="force one strategy (default: as `run`, every strategy evaluated, the best published)")
    bench.add_argument("--holdout", type=float, default=0.2, help="holdout share (0: no evaluation)")
    bench.add_argument("--max-audiences-per-user", type=int, default=None, help="time a capped run")
    _add_engine(bench)
    quality.add_parser(sub)
    calibration.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.cli import commands
    try:
        _check_db(args)
        code = getattr(commands, f"cmd_{args.command}")(args)
        sys.stdout.flush()  # a reader that went away (`runs | head`) shows up here, inside the handlers
        return code
    except BrokenPipeError:
        # Like any Unix tool whose reader stopped early: nothing more to say, and nothing went wrong.
        _drop_stdout()
        return 141
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(f"error: {_database_problem(args, exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {_os_problem(exc)} (the published run is unchanged)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the run was marked failed; the published run is unchanged", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line, never a traceback
        print(f"error: unexpected {type(exc).__name__}: {exc} (the published run is unchanged)", file=sys.stderr)
        return 1


def _check_db(args: argparse.Namespace) -> None:
    if "db" not in args:
        return
    path = db_path(args.db)
    if path.is_dir():
        raise InputError(f"--db {path} is a directory; pass the database file inside it, e.g. {path / 'audiences.db'}")


def _database_problem(args: argparse.Namespace, exc: sqlite3.DatabaseError) -> str:
    """A file that SQLite cannot use: say which, and how to get a working database back."""
    path = db_path(getattr(args, "db", None))
    if "locked" in str(exc) or "busy" in str(exc):
        return f"database {path} is busy ({exc}); wait for the other writer to finish and try again"
    return str(damaged(path, exc))


def _os_problem(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on the disk{where}; free some (`python -m pipeline gc`) and try again"
    return f"{exc.strerror or exc}{where}; check the path and its permissions"


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not hit the closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in a test)
        pass
