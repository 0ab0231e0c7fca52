"""`python -m pipeline bench`: time every stage of a full run and the read-back of one audience.

Data is generated once per (rows, seed) in a subprocess, so the memory printed is the run's own: the
peak of every process of the run together (this one, and with --engine spark the JVM and its Python
workers, or a cluster's executors), sampled in a thread.
"""
from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.cli.memory_watch import MemoryWatch
from pipeline.config import RunParams
from pipeline.evaluation.certainty import certainty, lead_text
from pipeline.evaluation.holdout import YARDSTICKS
from pipeline.evaluation.overlap import jaccard, same_category_pairs
from pipeline.run import execute
from pipeline.strategies import AUTO
from store import queries, read
from store.names import published_label

READ_SAMPLES = 1000
JACCARD_PAIRS = 2000  # random same-category product pairs whose audiences are compared
JACCARD_K = 100


def _generate_once(rows: int, seed: int, workdir: Path) -> Path:
    data = workdir / f"rows-{rows}-seed-{seed}"
    if not (data / "interactions.csv").is_file():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline", "generate", "--rows", str(rows), "--seed", str(seed),
                        "--out", str(data)], check=True)
        print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s (not part of the run)")
    return data


def _read_times(db: Path, run_id: int, seed: int) -> np.ndarray:
    """Milliseconds to read one product's full audience through the `audiences` view."""
    con = queries.connect(db)
    products = np.array([r[0] for r in con.execute(
        "SELECT product_id FROM audience_lists WHERE run_id = ?", [run_id])])
    picks = np.random.default_rng(seed).choice(products, size=min(READ_SAMPLES, len(products)), replace=False)
    times = []
    for product in picks.tolist():  # timing individual reads is the point here
        started = time.perf_counter()
        queries.audience(con, run_id, product)
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def same_category_jaccard(db: Path, run_id: int, seed: int, pairs: int = JACCARD_PAIRS,
                          k: int = JACCARD_K) -> tuple[float, int]:
    """Mean Jaccard@k between the audiences of random pairs of the run's products that share a category,
    and how many pairs (nan, 0: no categories)."""
    con = queries.connect(db)
    try:
        products = queries.products(con, run_id)
        codes = products["category"].astype("category").cat.codes.to_numpy()  # no category: -1
        first, second = same_category_pairs(codes, pairs, seed)
        ids = products["product_id"].to_numpy()
        wanted = np.unique(np.concatenate([ids[first], ids[second]]))
        lists = list(read.iter_audiences(con, run_id, wanted.tolist()))
    finally:
        con.close()
    if not lists:
        return float("nan"), 0
    listed = np.concatenate([m.product_ids for m in lists])
    sizes = np.concatenate([m.sizes for m in lists])
    users = np.concatenate([m.customer_ids for m in lists])
    a, b = (np.minimum(np.searchsorted(listed, ids[x]), listed.size - 1) for x in (first, second))
    both = (listed[a] == ids[first]) & (listed[b] == ids[second])  # pairs whose two audiences are stored
    if not both.any():
        return float("nan"), 0
    a, b = a[both], b[both]
    return float(jaccard(users[a], sizes[a], users[b], sizes[b], k).mean()), int(both.sum())


def holdout_lead(db: Path, run_id: int) -> str:
    """The published strategy's recall@100 on the outer holdout with its 95% interval, and the best other
    strategy's (the yardstick aside) difference to it with that difference's interval."""
    con = queries.connect(db)
    try:
        rows = queries.evaluation(con, run_id)
        published = published_label(set(rows["label"]), queries.run(con, run_id)["params"])
    finally:
        con.close()
    certain = certainty(rows, published)  # best first
    if certain.empty:
        return "no holdout standard errors (no holdout, or a single evaluated product)"
    own = next(r for r in certain.itertuples() if r.strategy == published)
    text = f"{published} {own.recall:.5f} {lead_text(own, published, 5)} (95%)"
    best = next((r for r in certain.itertuples() if r.strategy not in (published, *YARDSTICKS)), None)
    return text + (f"; best other {best.strategy} {lead_text(best, published, 5)}" if best else "")


def bench(rows: int, seed: int, workdir: Path, strategy: str = AUTO, holdout: float = 0.2,
          cap: int | None = None, engine: str = "inprocess", spark_master: str | None = None) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    data = _generate_once(rows, seed, workdir)
    db = workdir / f"bench-{rows}.db"
    for leftover in workdir.glob(f"{db.name}*"):  # the database, its lock and WAL, its snapshots folder
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    params = RunParams(strategy=strategy, holdout=holdout, max_audiences_per_user=cap, engine=engine,
                       spark_master=spark_master)
    started = time.perf_counter()
    # By default as `run` does: every strategy scored on the holdout, the best one published.
    with MemoryWatch(cluster=(spark_master or "").startswith("spark://")) as watch:
        result = execute(data / "interactions.csv", db=db, products_path=data / "products.csv",
                         params=params, source=f"bench (rows={rows}, seed={seed}, engine={engine})",
                         progress=lambda stage, _: watch.enter_stage(stage))
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reads = _read_times(db, result.run_id, seed)

    print(f"bench: {rows:,} rows generated (seed {seed}), {result.counts['rows_clean']:,} clean, "
          f"{result.users:,} users, {result.products:,} products; published strategy: {result.strategy}")
    for stage, seconds in result.seconds.items():  # with the peak of all processes while it ran
        print(f"  {stage:<24} {seconds:8.2f} s   peak {watch.peak_by_stage.get(stage, 0) / 2**20:7.0f} MB")
        if stage == "evaluate":  # per strategy: fitted and scored on the inner split, then on the outer holdout
            for name, outer in result.strategy_seconds.items():
                inner = result.inner_seconds.get(name, 0.0)
                print(f"    {name:<22} {inner + outer:8.2f} s  (inner split {inner:.2f} s + outer holdout {outer:.2f} s)")
    print(f"  {'total (file to published)':<24} {wall:8.2f} s")
    print(f"  peak RSS of this process {peak_mb:8.0f} MB")
    print(f"  peak of all processes    {watch.peak_rss / 2**20:8.0f} MB RSS, {watch.peak_pss / 2**20:.0f} MB PSS "
          f"(engine {engine}; {watch.peak_processes} processes at the peak, sampled every {watch.every} s)")
    print(f"  one audience read ({len(reads)} random products, full depth): "
          f"mean {reads.mean():.2f} ms, p50 {np.percentile(reads, 50):.2f} ms, "
          f"p99 {np.percentile(reads, 99):.2f} ms, max {reads.max():.2f} ms")
    overlap, pairs = same_category_jaccard(db, result.run_id, seed)
    print(f"  same-category audiences  mean Jaccard@{JACCARD_K} {overlap:.3f} over {pairs:,} random pairs of products "
          "of one category (1: identical lists)" if pairs else
          "  same-category audiences  none: no two of the run's products share a catalogue category")
    print(f"  holdout recall@100       {holdout_lead(db, result.run_id)}")
    print(f"  database size            {db.stat().st_size / 2**20:8.0f} MiB")
    return 0
