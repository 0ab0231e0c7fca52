"""One run with the Spark engine: the stages of pipeline.run, as Spark jobs, written through the
single writer in the same tables and shapes (app, API and reports cannot tell the engines apart)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.config import RunParams
from pipeline.data import diagnostics as local_diagnostics
from pipeline.data.clean import CHECKS
from pipeline.data.features import user_features as local_features
from pipeline.data.ingest import read_catalogue
from pipeline.evaluation.holdout import holdout_stats
from pipeline.spark import audiences, diagnostics, driver, holdout
from pipeline.spark.clean import clean
from pipeline.spark.features import user_features
from pipeline.spark.ingest import read_events
from pipeline.spark.session import DEFAULT_MASTER, check_java, check_master, spark_errors, spark_session
from pipeline.strategies.ranking import fallback_audience
from store import writer
from store.packing import SCORE_WIDTH

WRITE_ROWS = 1_000_000        # rows of a long table collected to the driver at once
USER_COLUMNS = ["customer_id", "total_interactions", "unique_products", "avg_event_score", "interaction_frequency",
                "recency_days", "engagement_score", "days_active", "last_event", "norm_total", "norm_unique",
                "norm_avg_event", "norm_frequency", "norm_recency", "engagement_rank", "audience_count"]


def check_params(params: RunParams, input_path: Path) -> None:
    driver.refuse_early(params, input_path)
    check_master(params.spark_master or DEFAULT_MASTER)
    check_java()


def _chunks(frame: DataFrame, column: str, rows: int) -> Iterator[pd.DataFrame]:
    """A long table in pieces of about WRITE_ROWS rows (hash buckets of `column`), so the driver never
    holds all of it."""
    n = max(1, -(-rows // WRITE_ROWS))
    bucket = F.pmod(F.xxhash64(column), F.lit(n))
    for b in range(n):
        yield frame.where(bucket == b).toPandas()


def execute(wdb, run_id: int, input_path: Path, params: RunParams, products_path: Path | None, publish: bool,
            stages, result_type):
    """The stages of pipeline.run._execute with Spark, up to (not including) publishing: returns (its
    RunResult, the params the run really used). `stages` is its _Stages, `result_type` RunResult.
    Reading, cleaning, diagnostics and features are Spark jobs; the model stages run on the driver when the
    clean events fit there (pipeline/spark/driver.py), else engagement is ranked and evaluated as Spark jobs."""
    from pipeline.run import model_stages, write_catalogue_stats
    with spark_errors(), spark_session(params.spark_master) as spark, TemporaryDirectory() as scratch:
        raw = read_events(spark, str(input_path))
        listed = read_catalogue(products_path) if products_path else None
        catalogue = listed.products if listed else None
        if listed:
            write_catalogue_stats(wdb, run_id, listed)
        stages.done("read", "clean")

        events, counts, bot_rows = clean(raw, params)
        writer.write_frame(wdb, "data_quality", run_id, pd.DataFrame(
            {"check": list(CHECKS), "rows": [counts[c] for c in CHECKS], "position": range(len(CHECKS))}))
        stages.done("clean", "diagnostics")

        users = user_features(events, params)
        products = diagnostics.product_table(events, catalogue, spark, Path(scratch))
        n_users, n_products = users.count(), products.count()
        _write_diagnostics(wdb, run_id, events, users, products, counts["rows_clean"], n_products, params)
        stages.done("diagnostics", "features")

        selection = driver.plan(params, counts["rows_clean"])
        if selection is not None:
            params, scored, inner = _spark_model_stages(wdb, run_id, events, bot_rows, users, products, n_users,
                                                        n_products, counts["rows_clean"], params, selection, stages)
        else:
            local, local_bots = driver.collected(events), driver.collected(bot_rows)
        spark.catalog.clearCache()  # the events, users and products persisted by the stages
    if selection is None:  # out of the Spark session (stopped if this run started it): memory for the model
        local_users = local_features(local, params)
        params, scored, inner = model_stages(wdb, run_id, local, local_users, local_diagnostics.product_table(
            local, catalogue), catalogue, params, stages, local_bots)
    else:
        scored, inner = ({s.name: round(s.seconds, 3) for s in part} for part in (scored, inner))
    return result_type(run_id, publish, counts, n_users, n_products, stages.seconds, params.strategy, scored, inner,
                       catalogue_duplicates=listed.duplicates if listed else 0), params


def _spark_model_stages(wdb, run_id: int, events: DataFrame, bot_rows: DataFrame | None, users: DataFrame,
                        products: DataFrame, n_users: int, n_products: int, n_rows: int, params: RunParams,
                        selection: str, stages):
    """features → evaluate → audiences of engagement as Spark jobs; returns (params, outer and inner scores)."""
    from pipeline.run import _record_params, write_evaluation
    ranked = audiences.ranked_users(users)
    users.unpersist()
    best = ranked.where(F.col("engagement_rank") <= params.depth) \
        .select("customer_id", "engagement_score", F.col("last").alias("last_event")).toPandas()
    writer.write_frame(wdb, "fallback_audience", run_id, fallback_audience(best, params.depth))
    stages.done("features", "evaluate")

    outer, scored, inner, horizon = holdout.evaluate(events, bot_rows, params, n_rows,
                                                     progress=lambda share: stages.partial("evaluate", share))
    if scored:
        write_evaluation(wdb, run_id, scored, inner, holdout_stats(outer.products, len(outer.ids), outer.truth),
                         driver.SPARK_STRATEGY)
    params = replace(params, strategy=driver.SPARK_STRATEGY, horizon_days=horizon)
    _record_params(wdb, run_id, params, selection)
    stages.done("evaluate", "audiences")

    id_width = audiences.id_width_of(ranked)
    top, blocks = audiences.audience_blocks(events, products, ranked, params, n_users, n_products, id_width)
    exposure = np.zeros(len(top.ids), dtype=np.int64)
    done = 0
    for frame in blocks:
        writer.write_audience_lists(wdb, run_id, frame["product_id"].to_numpy(), frame["size"].to_numpy(),
                                    np.array(frame["customer_ids"].tolist(), dtype=object),
                                    np.array(frame["scores"].tolist(), dtype=object), id_width, SCORE_WIDTH)
        exposure += audiences.exposure(frame, top, id_width, params.depth)
        done += len(frame)
        stages.partial("audiences", done / max(n_products, 1))
    _write_user_features(wdb, run_id, ranked, n_users, exposure)
    stages.done("audiences", "publish")
    return params, scored, inner


def _write_diagnostics(wdb, run_id: int, events: DataFrame, users: DataFrame, products: DataFrame, n_rows: int,
                       n_products: int, params: RunParams) -> None:
    split = diagnostics.split_instant(events, n_rows, params.holdout)
    histogram = diagnostics.activity_histogram(users)
    figures = diagnostics.stats(events, users, products, n_rows, split, histogram)
    writer.write_frame(wdb, "stats", run_id, pd.DataFrame({"name": list(figures), "value": list(figures.values())}))
    writer.write_frame(wdb, "cohort_retention", run_id, diagnostics.cohort_retention(events))
    writer.write_frame(wdb, "daily_events", run_id, diagnostics.daily_events(events))
    writer.write_frame(wdb, "activity_histogram", run_id, histogram)
    writer.write_frame(wdb, "product_months", run_id, diagnostics.product_months(events))
    writer.write_frame(wdb, "top_products", run_id, diagnostics.top_products(products))
    for part in _chunks(products, "product_id", n_products):
        part = part.sort_values("product_id")
        seen = {col: local_diagnostics.iso_utc(part[col]) for col in ("first_seen", "last_seen")}
        writer.write_frame(wdb, "products", run_id, part.assign(**seen))


def _write_user_features(wdb, run_id: int, ranked: DataFrame, n_users: int, exposure: np.ndarray) -> None:
    """user_features as in-process: last_event to the second, audience_count from the top users' counts."""
    for part in _chunks(ranked.withColumnRenamed("last", "last_event"), "customer_id", n_users):
        part = part.sort_values("customer_id")
        rank = part["engagement_rank"].to_numpy()
        inside = rank <= len(exposure)
        part["audience_count"] = np.where(inside, exposure[np.minimum(rank, len(exposure)) - 1], 0)
        part["last_event"] = np.datetime_as_string(part["last_event"].to_numpy(), unit="s")
        writer.write_frame(wdb, "user_features", run_id, part[USER_COLUMNS])
