"""What each CLI command does; argument parsing lives in pipeline.cli.parser."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from pipeline.cli.calibration import cmd_calibration  # noqa: F401  (main dispatches cmd_<command> by name)
from pipeline.cli.parser import _params
from pipeline.cli.quality import cmd_quality  # noqa: F401  (main dispatches cmd_<command> by name)
from pipeline.run import RunResult, execute
from pipeline.strategies import AUTO
from store import queries, writer
from store.errors import InputError, RunNotFoundError
from store.export import parse_ids, write_export
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
    if result.published:
        state = "published"
    elif result.held:
        state = "succeeded but held (not published)"
    else:
        state = "succeeded (not published)"
    print(f"run {result.run_id} {state} in {db_path(db)}")
    print(f"  rows read {c['rows_read']:,}  clean {c['rows_clean']:,}  "
          f"(missing fields {c['missing_fields']:,}, bad dates {c['bad_dates']:,}, "
          f"future dates {c['future_dates']:,}, dates before 2000 {c['absurd_dates']:,}, "
          f"duplicates {c['duplicates']:,}, bot rows {c['bot_rows']:,}, unknown events kept {c['unknown_events']:,})")
    if result.catalogue_duplicates:
        print(f"  catalogue: {result.catalogue_duplicates:,} repeated product id(s); the first row of each was used")
    print(f"  users {result.users:,}  products {result.products:,}  strategy {result.strategy}")
    stages = "  ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items())
    print(f"  seconds: {stages}  total {sum(result.seconds.values()):.2f}s")
    for note in result.notes:
        print(f"  note: {note}")
    for reason in result.held:
        print(f"  held: {reason}")
    if result.held:
        print(f"  the published run is unchanged; to publish this one anyway: "
              f"python -m pipeline publish --run {result.run_id} --db {db_path(db)}")
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


DEMO_MARK = "demo.json"  # {"rows": N, "seed": S}: what generated the folder's files


def _demo_folder(args: argparse.Namespace) -> Path:
    """--out, else demo-ROWS-sSEED beside the database (so `demo --db ELSEWHERE` keeps its data there)."""
    if args.out:
        return Path(args.out)
    return db_path(args.db).resolve().parent / f"demo-{args.rows}-s{args.seed}"


def _demo_data(folder: Path, rows: int, seed: int) -> Path:
    """The folder's demo files, generated once: a folder that already holds them is reused as it is, never
    overwritten (a run may have read them). Generated aside and renamed, so it is never half written."""
    from pipeline.demo.generate import generate
    if rows < 1:
        raise InputError(f"--rows must be at least 1, got {rows}")
    wanted = {"rows": rows, "seed": seed}
    if folder.is_dir() and any(folder.iterdir()):
        made = _demo_mark(folder)
        if made == wanted:
            print(f"reusing {folder} (generated earlier with rows {rows:,}, seed {seed})")
            return folder
        what = f"rows {made.get('rows')}, seed {made.get('seed')}" if made else "files it did not write"
        raise InputError(f"{folder} already holds other data ({what}); it is never overwritten, since a run "
                         "may have read it: leave out --out (the demo then uses demo-ROWS-sSEED beside the "
                         "database) or pass an empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = folder.with_name(f".demo-{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        info = generate(rows=rows, seed=seed, out_dir=scratch)
        (scratch / DEMO_MARK).write_text(json.dumps(wanted))
        if folder.is_dir():
            folder.rmdir()  # empty (checked above): rename cannot replace a directory on every system
        try:
            scratch.rename(folder)
        except OSError:
            if _demo_mark(folder) != wanted:  # not a second `demo` with the same rows and seed, just faster
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {info['rows_written']:,} rows to {folder / 'interactions.csv'} and {folder / 'products.csv'}")
    return folder


def _demo_mark(folder: Path) -> dict | None:
    """What generated the folder's demo files, if a demo did and they are all there."""
    try:
        made = json.loads((folder / DEMO_MARK).read_text())
    except (OSError, ValueError):
        return None
    return made if (folder / "interactions.csv").is_file() and (folder / "products.csv").is_file() else None


def cmd_demo(args: argparse.Namespace) -> int:
    folder = _demo_data(_demo_folder(args), args.rows, args.seed)
    return _run(args, folder / "interactions.csv", args.products or str(folder / "products.csv"),
                source=f"demo generator (rows={args.rows}, seed={args.seed}) in {folder}")


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
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give the file to write, e.g. {out / 'audiences.csv'}")
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"--out {out}: {blocking} is a file, not a folder; choose another place for the export")
    con = queries.connect(args.db)
    run_id = args.run if args.run is not None else queries.require_current_run(con)
    run = queries.run(con, run_id)
    if not queries.has_audiences(con, run_id):
        raise RunNotFoundError(f"run {run_id} has no audiences ({run['status']}, or pruned as an old run)")
    depth = run["params"].get("depth", 100)
    if args.n is not None and not 1 <= args.n <= depth:
        raise InputError(f"--n must be between 1 and the run's depth {depth}, got {args.n}")
    wanted = _wanted_products(args)
    try:
        done = write_export(str(db_path(args.db)), run_id, wanted, args.n or depth, out)
    except BaseException:
        out.unlink(missing_ok=True)  # a half-written export (disk full, Ctrl-C) must not pass for a whole one
        raise
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
        if r["held"]:  # a held run published with `publish --run` keeps its reasons
            extra += f"  {'published anyway, was held' if r['published_at'] else 'held'}: {'; '.join(r['held'])}"
        print(f"{r['run_id']:>5}  {r['status']:<10} {r['created_at'][:19]:<20} {seconds:>8.1f}  "
              f"{r['params'].get('strategy', ''):<11} {r['source']}{mark}{extra}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    with writer.RunLock(args.db):
        stamp = writer.publish(writer.connect(args.db), args.run)
    held = queries.held_reasons(queries.connect(args.db), args.run)
    if held:
        print(f"note: published although the publish gates held it: {'; '.join(held)}")
    print(f"run {args.run} is now the published run (published_at {stamp})")  # last line: the app shows it
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from pipeline import retention
    if args.days < 0 or args.keep_runs < 1:
        raise InputError(f"--days must be 0 or more and --keep-runs at least 1, got {args.days:g} and {args.keep_runs}")
    if not db_path(args.db).is_file():
        raise InputError(f"no database at {db_path(args.db)}; pass --db")
    with writer.RunLock(args.db):
        wdb = writer.connect(args.db)
        folder = writer.data_folder(wdb)
        removed = retention.remove_expired(folder, args.days, wdb.conn)
        pruned = writer.prune_runs(wdb, args.keep_runs)
        vacuumed = writer.vacuum_if_worthwhile(wdb)
    mb = 2 ** 20
    print(f"gc: removed {len(removed.files)} file(s) older than {args.days:g} days ({removed.bytes / mb:.1f} MB)"
          + "".join(f"\n  {p}" for p in removed.files))
    print(f"gc: pruned the audiences of {len(pruned)} old run(s){': ' + ', '.join(map(str, pruned)) if pruned else ''}")
    print(f"gc: VACUUM gave back {vacuumed / mb:.1f} MB" if vacuumed else
          "gc: VACUUM not needed (less than 10% of the database is free pages)")
    print(f"gc: database {db_path(args.db).stat().st_size / mb:.1f} MB, "
          f"{folder} {retention.folder_size(folder) / mb:.1f} MB in all")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pipeline.cli.bench import bench
    return bench(rows=args.rows, seed=args.seed, workdir=Path(args.dir), strategy=args.strategy or AUTO,
                 holdout=args.holdout, cap=args.max_audiences_per_user, engine=args.engine,
                 spark_master=args.spark_master)
