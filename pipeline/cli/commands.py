"""What each CLI command does; argument parsing lives in pipeline.cli.parser."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.parser import _params
from pipeline.run import RunResult, execute
from pipeline.strategies import AUTO
from store import queries, writer
from store.export import parse_ids, write_export
from store.errors import InputError, RunNotFoundError
from store.names import db_path


def _progress_bar():
    """A tqdm bar on a terminal; silent otherwise (logs and pipes stay clean)."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm
    bar = tqdm(total=100, unit="%", bar_format="{desc:<24}{bar}| {n:.0f}% [{elapsed}]", file=sys.stderr)

    def update(stage: str, fraction: float) -> None:
        bar.set_description_str(f"run: {stage}")
        bar.n = round(100 * fraction)
        bar.refresh()
    return update, bar.close


def _print_summary(result: RunResult, db) -> None:
    c = result.counts
    print(f"run {result.run_id} {'published' if result.published else 'succeeded (not published)'} "
          f"in {db_path(db)}")
    print(f"  rows read {c['rows_read']:,}  clean {c['rows_clean']:,}  "
          f"(missing fields {c['missing_fields']:,}, bad dates {c['bad_dates']:,}, "
          f"duplicates {c['duplicates']:,}, bot rows {c['bot_rows']:,}, unknown events kept {c['unknown_events']:,})")
    print(f"  users {result.users:,}  products {result.products:,}  strategy {result.strategy}")
    stages = "  ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items())
    print(f"  seconds: {stages}  total {sum(result.seconds.values()):.2f}s")
    print(f"run_id={result.run_id}")


def _run(args: argparse.Namespace, input_path: Path, products: str | None, source: str | None = None) -> int:
    update, close = _progress_bar()
    try:
        result = execute(input_path, db=args.db, params=_params(args), products_path=products,
                         publish=not args.no_publish, source=source, progress=update)
    finally:
        close()
    _print_summary(result, args.db)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from pipeline.demo.generate import generate
    if args.rows < 1:
        raise InputError(f"--rows must be at least 1, got {args.rows}")
    info = generate(rows=args.rows, seed=args.seed, out_dir=args.out)
    print(f"wrote {info['rows_written']:,} rows to {Path(args.out) / 'interactions.csv'} "
          f"and {Path(args.out) / 'products.csv'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, Path(args.input), args.products)


def cmd_demo(args: argparse.Namespace) -> int:
    cmd_generate(args)
    out = Path(args.out)
    return _run(args, out / "interactions.csv", args.products or str(out / "products.csv"),
                source=f"demo generator (rows={args.rows}, seed={args.seed})")


def _wanted_products(args: argparse.Namespace) -> list[int] | None:
    if args.all:
        return None
    if args.product:
        return list(dict.fromkeys(args.product))
    path = Path(args.products_file)
    if not path.is_file():
        raise InputError(f"products file not found: {path}")
    ids, bad = parse_ids(path.read_text(errors="replace"))
    if bad:
        raise InputError(f"{path}: {bad[0]!r} is not a product id (one positive integer per line)")
    return ids


def cmd_export(args: argparse.Namespace) -> int:
    con = queries.connect(args.db)
    run_id = args.run if args.run is not None else queries.require_current_run(con)
    run = queries.run(con, run_id)
    if not queries.has_audiences(con, run_id):
        raise RunNotFoundError(f"run {run_id} has no audiences ({run['status']}, or pruned as an old run)")
    depth = run["params"].get("depth", 100)
    if args.n is not None and not 1 <= args.n <= depth:
        raise InputError(f"--n must be between 1 and the run's depth {depth}, got {args.n}")
    done = write_export(str(db_path(args.db)), run_id, _wanted_products(args), args.n or depth, Path(args.out))
    if done.unknown:
        shown = ", ".join(map(str, done.unknown[:10])) + (" …" if len(done.unknown) > 10 else "")
        print(f"note: {len(done.unknown)} product(s) not in run {run_id} got the fallback audience: {shown}",
              file=sys.stderr)
    print(f"wrote {done.rows:,} rows for {done.products:,} products of run {run_id} to {done.path}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    con = queries.connect(args.db)
    current = queries.current_run_id(con)
    print(f"{'run':>5}  {'status':<10} {'created (UTC)':<20} {'seconds':>8}  {'strategy':<11} source")
    for r in queries.runs(con):
        seconds = sum((r["summary"].get("seconds") or {}).values()) if r["summary"] else 0
        mark = "  <- published" if r["run_id"] == current else ""
        extra = f"  error: {r['error']}" if r["status"] == "failed" else ""
        print(f"{r['run_id']:>5}  {r['status']:<10} {r['created_at'][:19]:<20} {seconds:>8.1f}  "
              f"{r['params'].get('strategy', ''):<11} {r['source']}{mark}{extra}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    with writer.RunLock(args.db):
        stamp = writer.publish(writer.connect(args.db), args.run)
    print(f"run {args.run} is now the published run (published_at {stamp})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pipeline.cli.bench import bench
    return bench(rows=args.rows, seed=args.seed, workdir=Path(args.dir), strategy=args.strategy or AUTO,
                 holdout=args.holdout, cap=args.max_audiences_per_user, engine=args.engine,
                 spark_master=args.spark_master)
