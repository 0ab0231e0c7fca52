"""`python -m pipeline …`: generate, run, demo, export, runs, publish, bench.

Every mistake ends with one line on stderr and exit status 2; nothing here prints a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.demo import DEMO_DIR, DEMO_ROWS, DEMO_SEED
from pipeline.config import EXCLUDE_RULES, RunParams, default_component_weights, default_event_weights
from pipeline.strategies import AUTO, STRATEGIES
from store.errors import InputError, WorkbenchError



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
    demo.add_argument("--out", default=DEMO_DIR, help="where the generated files go")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.cli import commands
    try:
        return getattr(commands, f"cmd_{args.command}")(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the run was marked failed; the published run is unchanged", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line, never a traceback
        print(f"error: unexpected {type(exc).__name__}: {exc} (the published run is unchanged)", file=sys.stderr)
        return 1

