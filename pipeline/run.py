"""One full run: read → clean → diagnose → features → evaluate → audiences → write → publish.

The run row records each stage as it finishes, so the app can follow it; a failure marks the run failed
with its error and leaves the published run untouched (nothing is published until the very end).
"""
from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import gates, retention
from pipeline.config import RunParams
from pipeline.data import diagnostics
from pipeline.data.clean import CHECKS, clean
from pipeline.data.features import engagement_ranks, user_features
from pipeline.data.ingest import Catalogue, read_catalogue, read_events
from pipeline.evaluation import holdout as evaluate
from pipeline.evaluation.cap import capped_blocks
from pipeline.strategies import AUTO, FORCED, fitted, forget_fits, get_strategy
from pipeline.strategies.categories import catalogue_products, category_audiences
from pipeline.strategies.ranking import exclusions_for, fallback_audience
from pipeline.strategies.why import explainer
from store import reasons, writer
from store.errors import DiskFullError, WorkbenchError
from store.names import COMPONENT_COLUMNS, strategy_label
from store.packing import SCORE_WIDTH, digit_width, pack_ids, pack_scores

Progress = Callable[[str, float], None]

# Share of the progress bar at which each stage ends (audiences get the widest slice: they take longest).
# Evaluation comes before the audiences: without --strategy it decides which strategy ranks them.
STAGES = {"read": 0.10, "clean": 0.20, "diagnostics": 0.30, "features": 0.40, "evaluate": 0.60,
          "audiences": 0.92, "publish": 1.0}


@dataclass
class RunResult:
    run_id: int
    published: bool
    counts: dict[str, int]
    users: int
    products: int
    seconds: dict[str, float] = field(default_factory=dict)  # per stage: they add up to the run's time
    strategy: str = ""
    strategy_seconds: dict[str, float] = field(default_factory=dict)  # inside the evaluate stage: outer holdout
    inner_seconds: dict[str, float] = field(default_factory=dict)     # and on the inner split (the choice)
    held: list[str] = field(default_factory=list)  # publish gates failed (pipeline/gates.py)
    catalogue_duplicates: int = 0  # catalogue rows repeating an earlier product_id (the first one is kept)
    notes: list[str] = field(default_factory=list)  # housekeeping after the run that could not be done

    def summary(self) -> dict:
        return {"run_id": self.run_id, "published": self.published, "rows_read": self.counts["rows_read"],
                "rows_clean": self.counts["rows_clean"], "users": self.users, "products": self.products,
                "strategy": self.strategy, "seconds": self.seconds, "strategy_seconds": self.strategy_seconds,
                "inner_strategy_seconds": self.inner_seconds,
                "held": self.held, "catalogue_duplicates": self.catalogue_duplicates}


class _Stages:
    """Times each stage and reports it to the runs row and to the caller's progress callback."""

    def __init__(self, db, run_id: int, progress: Progress | None):
        self.db, self.run_id, self.progress = db, run_id, progress
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()
        self._announce("read", 0.0)

    def _announce(self, stage: str, fraction: float) -> None:
        writer.set_stage(self.db, self.run_id, stage, round(fraction, 4))
        if self.progress:
            self.progress(stage, fraction)

    def done(self, stage: str, next_stage: str | None = None) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._started, 3)
        self._started = now
        if next_stage:
            self._announce(next_stage, STAGES[stage])
        elif self.progress:
            self.progress("done", 1.0)

    def partial(self, stage: str, share: float) -> None:
        """Progress inside a stage (0..1 of it), e.g. blocks of products ranked."""
        previous = max((v for v in STAGES.values() if v < STAGES[stage]), default=0.0)
        self._announce(stage, previous + share * (STAGES[stage] - previous))


def execute(input_path: str | Path, db: str | Path | None = None, params: RunParams | None = None,
            products_path: str | Path | None = None, publish: bool = True, source: str | None = None,
            progress: Progress | None = None) -> RunResult:
    """Run the whole pipeline on one events file and (by default) publish the result."""
    params = (params or RunParams()).validate()
    if params.strategy != AUTO:
        get_strategy(params.strategy)
    _check_engine(params, Path(input_path))
    with writer.RunLock(db) as lock:
        wdb = writer.connect(db)
        writer.fail_stale_runs(wdb)
        run_id = writer.start_run(wdb, params.to_dict(), source or str(input_path))
        lock.describe(f"run {run_id}")
        try:
            return _execute(wdb, run_id, Path(input_path), params,
                            Path(products_path) if products_path else None, publish, progress)
        except WorkbenchError as exc:
            _abandon(wdb, run_id, str(exc))
            raise
        except BaseException as exc:  # KeyboardInterrupt included: the run row must not stay 'running'
            full = _disk_full(wdb, run_id, exc)
            _abandon(wdb, run_id, str(full) if full else f"{type(exc).__name__}: {exc}")
            if full:
                raise full from None
            raise


def _check_engine(params: RunParams, input_path: Path) -> None:
    """Refuse before a run starts: a Spark run the engine cannot do, or an in-process run too big for
    this machine's memory (better one clear line now than the kernel killing it at 90%)."""
    if params.engine == "spark":
        from pipeline.spark.run import check_params
        check_params(params, input_path)
    else:
        from pipeline.memory import check_fits
        check_fits(input_path)


def _abandon(wdb, run_id: int, error: str) -> None:
    """Mark the run failed and drop its bulk rows. If even that cannot be written (the disk is still
    full, the file went bad), the next run marks this one failed: the original error is what matters."""
    try:
        writer.fail_run(wdb, run_id, error)
        writer.delete_run_rows(wdb, run_id)
    except (sqlite3.Error, OSError):
        pass


def _disk_full(wdb, run_id: int, exc: BaseException) -> DiskFullError | None:
    """A full disk, whether the file system (ENOSPC) or SQLite ('database or disk is full') says so."""
    if not ((isinstance(exc, OSError) and exc.errno == errno.ENOSPC)
            or (isinstance(exc, sqlite3.OperationalError) and "full" in str(exc))):
        return None
    row = wdb.execute("SELECT stage FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return DiskFullError(f"no space left on the disk during run {run_id} (stage {row[0] if row else '?'}); "
                         "free some (`python -m pipeline gc` removes old exports, uploads and old runs' rows) "
                         "and run again; the published run is unchanged")


def _execute(wdb, run_id: int, input_path: Path, params: RunParams, products_path: Path | None,
             publish: bool, progress: Progress | None) -> RunResult:
    stages = _Stages(wdb, run_id, progress)
    if params.engine == "spark":
        from pipeline.spark.run import execute as spark_stages
        result, params = spark_stages(wdb, run_id, input_path, params, products_path, publish, stages,
                                      RunResult)
        return _conclude(wdb, run_id, result, params, publish, stages)
    raw = read_events(input_path)
    listed = read_catalogue(products_path) if products_path else None
    catalogue = listed.products if listed else None
    if listed:
        write_catalogue_stats(wdb, run_id, listed)
    stages.done("read", "clean")

    cleaned = clean(raw, params)
    del raw
    events = cleaned.events
    writer.write_frame(wdb, "data_quality", run_id, pd.DataFrame(
        {"check": list(CHECKS), "rows": [cleaned.counts[c] for c in CHECKS], "position": range(len(CHECKS))}))
    stages.done("clean", "diagnostics")

    users = user_features(events, params)
    products = diagnostics.product_table(events, catalogue)
    _write_diagnostics(wdb, run_id, events, users, products, params)
    stages.done("diagnostics", "features")

    params, strategy_seconds, inner_seconds = model_stages(wdb, run_id, events, users, products, catalogue, params,
                                                           stages, cleaned.bot_rows)
    result = RunResult(run_id, publish, cleaned.counts, len(users), len(products), stages.seconds,
                       params.strategy, strategy_seconds, inner_seconds,
                       catalogue_duplicates=listed.duplicates if listed else 0)
    return _conclude(wdb, run_id, result, params, publish, stages)


def model_stages(wdb, run_id: int, events: pd.DataFrame, users: pd.DataFrame, products: pd.DataFrame,
                 catalogue: pd.DataFrame | None, params: RunParams, stages: _Stages,
                 bot_rows: pd.DataFrame | None) -> tuple[RunParams, dict[str, float], dict[str, float]]:
    """features → evaluate → audiences on clean events held in memory: the in-process run's, and the Spark
    engine's on its driver when the events fit there (one code path, so both engines choose and rank alike).
    Returns the params the run really used and each strategy's seconds (outer holdout, inner split)."""
    if "engagement_rank" not in users.columns:  # user_features ranks its users; a table built otherwise may not
        users["engagement_rank"] = engagement_ranks(users)
    writer.write_frame(wdb, "fallback_audience", run_id, fallback_audience(users, params.depth))
    stages.done("features", "evaluate")

    params, strategy_seconds, inner_seconds = _evaluate(wdb, run_id, events, users, catalogue, params, stages,
                                                        bot_rows)
    if not get_strategy(params.strategy).reuses_evaluation_fits:
        forget_fits()
    stages.done("evaluate", "audiences")

    # propensity trains its ranker before it builds the serving signals: their ALS fit runs meanwhile
    get_strategy(params.strategy).prefetch(events, users, params)
    users["audience_count"] = _write_audiences(wdb, run_id, events, users, products, params, stages, catalogue)
    _write_user_features(wdb, run_id, users)
    stages.done("audiences", "publish")
    return params, strategy_seconds, inner_seconds


def _conclude(wdb, run_id: int, result: RunResult, params: RunParams, publish: bool, stages: _Stages
              ) -> RunResult:
    """Both engines end here: the publish gates, mark the run succeeded, publish it unless held, housekeeping."""
    result.held = _gate(wdb, run_id, params)
    result.published = publish and not result.held
    writer.set_held(wdb, run_id, result.held)  # before 'succeeded': a run killed in between is failed, never half-held
    writer.finish_run(wdb, run_id, result.summary())
    if result.published:
        writer.publish(wdb, run_id)
    # The run is final from here: housekeeping that fails is reported, and never turns it into a failed run
    # (that would unpublish it and delete the rows being served).
    result.notes = _housekeeping(wdb, params)
    stages.done("publish")
    result.seconds = stages.seconds
    try:
        writer.finish_run(wdb, run_id, result.summary())  # only adds the last stage's seconds
    except (sqlite3.Error, OSError):
        pass
    return result


def _housekeeping(wdb, params: RunParams) -> list[str]:
    """Prune old runs' bulk rows and expired files; what could not be done is left for the next run or gc."""
    notes = []
    try:
        writer.prune_runs(wdb, params.keep_runs)
    except (sqlite3.Error, OSError) as exc:
        notes.append(f"old runs were not pruned ({exc}); the next run or `python -m pipeline gc` will")
    try:
        retention.remove_expired(writer.data_folder(wdb), params.retention_days, wdb.conn)
    except (sqlite3.Error, OSError) as exc:
        notes.append(f"expired files were not removed ({exc}); the next run or `python -m pipeline gc` will")
    return notes


def write_catalogue_stats(wdb, run_id: int, listed: Catalogue) -> None:
    """A catalogue listing a product twice is counted, not refused (its first row is used)."""
    writer.write_frame(wdb, "stats", run_id, pd.DataFrame({
        "name": ["catalogue_products", "catalogue_duplicate_ids"],
        "value": [float(len(listed.products)), float(listed.duplicates)]}))


def _gate(wdb, run_id: int, params: RunParams) -> list[str]:
    """Why this run must not replace the served one ([] = it may); --no-gates skips the checks."""
    if not params.gates:
        return []
    return gates.check(wdb.conn, run_id, gates.Thresholds(params.min_share, params.max_dropped,
                                                          params.recall_alpha))


def _write_diagnostics(wdb, run_id: int, events: pd.DataFrame, users: pd.DataFrame, products: pd.DataFrame,
                       params: RunParams) -> None:
    figures = diagnostics.stats(events, users, products, params.holdout)
    writer.write_frame(wdb, "stats", run_id, pd.DataFrame({"name": list(figures), "value": list(figures.values())}))
    writer.write_frame(wdb, "cohort_retention", run_id, diagnostics.cohort_retention(events))
    writer.write_frame(wdb, "daily_events", run_id, diagnostics.daily_events(events))
    writer.write_frame(wdb, "activity_histogram", run_id, diagnostics.activity_histogram(users))
    writer.write_frame(wdb, "product_months", run_id, diagnostics.product_months(events))
    writer.write_frame(wdb, "top_products", run_id, diagnostics.top_products(products))
    seen = {col: diagnostics.iso_utc(products[col]) for col in ("first_seen", "last_seen")}
    writer.write_frame(wdb, "products", run_id, products.assign(**seen))


def _evaluate(wdb, run_id: int, events: pd.DataFrame, users: pd.DataFrame, catalogue: pd.DataFrame | None,
              params: RunParams, stages: _Stages, bot_rows: pd.DataFrame | None = None
              ) -> tuple[RunParams, dict[str, float], dict[str, float]]:
    """Score every strategy on the inner split (to choose) and on the outer holdout (to report), store
    both, and settle the run's strategy: the forced one, else the best on the inner split."""
    horizon = evaluate.window_days(events, params)
    holdout, scored, inner = evaluate.evaluate_all(events, params, catalogue, bot_rows=bot_rows,
                                                   progress=lambda share: stages.partial("evaluate", share))
    chosen, selection = _choice(params, inner)
    if scored:
        write_evaluation(wdb, run_id, scored, inner,
                         evaluate.holdout_stats(holdout.products, len(holdout.users), holdout.truth, scored), chosen)
    params = replace(params, strategy=chosen, horizon_days=horizon)
    _record_params(wdb, run_id, params, selection)
    return params, *({strategy_label(s.name, s.cap): round(s.seconds, 3) for s in part} for part in (scored, inner))


def _choice(params: RunParams, inner: list) -> tuple[str, str]:
    """The run's strategy and how it was settled: the forced one, else the best on the inner split."""
    if params.strategy != AUTO:
        return params.strategy, FORCED
    if not inner:
        return evaluate.TIE_PREFERENCE[0], "propensity: no inner split to choose on"
    return (evaluate.best_strategy(inner, params.max_audiences_per_user is not None),
            f"best {evaluate.HEADLINE[1]}@{evaluate.HEADLINE[0]} on an inner split of the fitting period "
            "(the holdout only reports)")


def write_evaluation(wdb, run_id: int, scored: list, inner: list, stats: pd.DataFrame, chosen: str) -> None:
    """The evaluation's tables (either engine): every score on the outer holdout and on the inner split
    with the headline's standard errors (against `chosen`, the run's strategy), what the holdout was run
    on, calibration and gain."""
    rows = [evaluate.evaluation_rows(scored), evaluate.evaluation_rows(inner, evaluate.INNER),
            evaluate.comparison_rows(scored, chosen), evaluate.comparison_rows(inner, chosen, evaluate.INNER)]
    writer.write_frame(wdb, "evaluation", run_id, pd.concat([r for r in rows if not r.empty]))  # no inner: none
    writer.write_frame(wdb, "stats", run_id, stats)
    _write_model_tables(wdb, run_id, scored)


def _write_model_tables(wdb, run_id: int, scored) -> None:
    """Calibration of the propensity scores on the outer holdout (expected vs observed per decile), and
    every strategy's gain curve there."""
    from pipeline.evaluation.gain import gain_rows
    writer.write_frame(wdb, "gain", run_id, gain_rows(scored))
    for s in scored:
        if s.cap is None and s.calibration is not None:
            writer.write_frame(wdb, "calibration", run_id, s.calibration)


def _record_params(wdb, run_id: int, params: RunParams, selection: str) -> None:
    """runs.params names the strategy that really ranked the audiences (not "auto") and how it was chosen."""
    writer.set_params(wdb, run_id, {**params.to_dict(), "strategy_selection": selection})


def _ranked_blocks(events: pd.DataFrame, users: pd.DataFrame, products: pd.DataFrame, params: RunParams,
                   catalogue: pd.DataFrame | None):
    """The strategy's audience blocks (fitted on every event), through the exposure cap when one is set."""
    model = fitted(params.strategy, events, users, params, catalogue)
    product_ids = products["product_id"].to_numpy()
    excluded = exclusions_for(events, users, params.exclude, product_ids)
    if params.max_audiences_per_user is None:
        return model, model.rank(product_ids, excluded, params.depth)
    return model, capped_blocks(model, users, params, product_ids, excluded, products["users"].to_numpy())


def _write_audiences(wdb, run_id: int, events: pd.DataFrame, users: pd.DataFrame, products: pd.DataFrame,
                     params: RunParams, stages: _Stages, catalogue: pd.DataFrame | None = None) -> np.ndarray:
    """Rank, pack and write every product's audience block by block; returns audiences per user.

    Packing (numpy, which releases the GIL) runs in a second thread, so on two cores it overlaps with
    ranking the next block and with SQLite writing the previous one (all writes stay on this thread)."""
    product_ids = products["product_id"].to_numpy()
    customer_ids = users["customer_id"].to_numpy()
    id_width = digit_width(customer_ids.max())
    exposure = np.zeros(len(users), dtype=np.int64)
    done = 0

    def pack(block):
        why = reasons.pack(explain.records(block.product_ids, block.positions, block.sizes), block.sizes) \
            if explain else None
        return block, pack_ids(block.customer_ids, id_width), pack_scores(block.scores, SCORE_WIDTH), why

    def write(packed) -> None:
        nonlocal done
        block, ids, scores, why = packed.result()
        writer.write_audience_lists(wdb, run_id, block.product_ids, block.sizes, ids, scores, id_width, SCORE_WIDTH)
        if why is not None:
            writer.write_reasons(wdb, run_id, block.product_ids, block.sizes, why)
        done += len(block.product_ids)
        stages.partial("audiences", done / max(len(product_ids), 1))

    with ThreadPoolExecutor(max_workers=1) as packer:
        pending = None
        model, blocks = _ranked_blocks(events, users, products, params, catalogue)
        explain = explainer(model)  # "why this user", stored when the strategy records it (propensity)
        if catalogue is not None:
            _write_categories(wdb, run_id, model, catalogue, params.depth)
        for block in blocks:
            valid = np.arange(block.positions.shape[1])[None, :] < block.sizes[:, None]
            exposure += np.bincount(block.positions[valid], minlength=len(users))
            packed = packer.submit(pack, block)
            if pending is not None:
                write(pending)
            pending = packed
        if pending is not None:
            write(pending)
    return exposure


def _write_categories(wdb, run_id: int, model, catalogue: pd.DataFrame, depth: int) -> None:
    """With a catalogue: each category's audience (the cold start of a product the events never saw)."""
    writer.write_frame(wdb, "catalogue_products", run_id, catalogue_products(catalogue))
    writer.write_frame(wdb, "category_audiences", run_id, category_audiences(model, catalogue, depth))


def _write_user_features(wdb, run_id: int, users: pd.DataFrame) -> None:
    columns = ["customer_id", "total_interactions", "unique_products", "avg_event_score",
               "interaction_frequency", "recency_days", "engagement_score", "days_active", "last_event",
               *COMPONENT_COLUMNS.values(),
               "engagement_rank", "audience_count"]
    frame = users[columns].copy()
    frame["last_event"] = np.datetime_as_string(frame["last_event"].to_numpy(), unit="s")
    writer.write_frame(wdb, "user_features", run_id, frame)

