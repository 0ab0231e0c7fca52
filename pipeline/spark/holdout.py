"""The temporal holdout with the Spark engine, for the strategy it ranks with (engagement).

The evaluation of pipeline.evaluation.holdout, split for split: the outer holdout reports, the inner
split of the fitting period is what a choice is made on (stored as the "inner_" rows). Whatever grows
with the events is a Spark job, made of the run's own stages: the split, the fitting part cleaned with
what its own days show (bots judged on the early days only), its user features, engagement order and
audiences. The scores are the in-process kernels (make_truth, evaluate_audiences, gain_curve_rows) on
what is collected: the early users' ids, the evaluated products' audiences, their later users and their
excluded pairs; sized by users and evaluated products, not by the events.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.arrays import positions_of
from pipeline.config import RunParams
from pipeline.evaluation.gain import gain_curve_rows
from pipeline.evaluation.holdout import KS, MIN_DEPTH, Scored, headline_hit_keys, horizon_between, inner_split
from pipeline.evaluation.metrics import Truth, evaluate_audiences, hits_of, make_truth
from pipeline.spark import audiences
from pipeline.spark.clean import bot_ids
from pipeline.spark.diagnostics import split_instant
from pipeline.spark.features import latest_micros, micros_to_ns, user_features

STRATEGY = "engagement"


@dataclass
class Split:
    products: np.ndarray            # evaluated product ids (seen on both sides), sorted
    ids: np.ndarray                 # the early users' ids, sorted: a user's position is its row here
    truth: Truth
    ranked: DataFrame               # the early users' features with their engagement rank (persisted)
    early: DataFrame                # events before the split (persisted): what the inner split cuts again
    early_bots: DataFrame | None    # rows of the users the early days alone show to be bots
    latest_early: pd.Timestamp


def _micros(column: str = "event_date"):
    return F.unix_micros(column)


def _latest(events: DataFrame) -> pd.Timestamp:
    return pd.Timestamp(micros_to_ns(latest_micros(events)))


def make_split(events: DataFrame, bot_rows: DataFrame | None, split: pd.Timestamp, params: RunParams
               ) -> Split | None:
    """holdout.make_holdout with Spark: None when no product is seen on both sides."""
    cut = -(-split.value // 1000)  # an event (whole microseconds) is before the split iff its micros < cut
    early, late = events.where(_micros() < cut), events.where(_micros() >= cut)
    early_bots = None
    if bot_rows is not None:  # holdout.early_cleaned: bots judged on the early days alone
        before = bot_rows.where(_micros() < cut)
        still = F.broadcast(bot_ids(before, params.bot_daily_limit))
        early = early.unionByName(before.join(still, "customer_id", "left_anti"))
        early_bots = before.join(still, "customer_id", "left_semi")
    early = early.persist(StorageLevel.MEMORY_AND_DISK)
    evaluated = early.select("product_id").distinct() \
        .join(late.select("product_id").distinct(), "product_id").persist(StorageLevel.MEMORY_AND_DISK)
    products = np.sort(evaluated.toPandas()["product_id"].to_numpy(np.int64))
    if products.size == 0:
        evaluated.unpersist()
        early.unpersist()
        return None
    users = user_features(early, params)
    ranked = audiences.ranked_users(users)
    users.unpersist()
    ids = np.sort(ranked.select("customer_id").toPandas()["customer_id"].to_numpy(np.int64))
    late_pairs = late.join(evaluated, "product_id", "left_semi").select("product_id", "customer_id") \
        .distinct().toPandas()
    excluded = audiences.excluded_pairs(early, params.exclude).join(evaluated, "product_id", "left_semi").toPandas()
    evaluated.unpersist()
    truth = make_truth(np.searchsorted(products, late_pairs["product_id"].to_numpy()),
                       positions_of(ids, late_pairs["customer_id"].to_numpy()), len(products), len(ids),
                       np.searchsorted(products, excluded["product_id"].to_numpy()),
                       np.searchsorted(ids, excluded["customer_id"].to_numpy()))
    return Split(products, ids, truth, ranked, early, early_bots, _latest(early))


def score(part: Split, params: RunParams) -> Scored:
    """The engagement audiences of the evaluated products, ranked by the run's audience stage on the
    fitting part, measured as holdout.score_strategy measures them."""
    started = time.perf_counter()
    depth = max(params.depth, MIN_DEPTH)
    spark = part.early.sparkSession
    evaluated = spark.createDataFrame(pd.DataFrame({"product_id": part.products}))
    ranked = part.ranked
    id_width = audiences.id_width_of(ranked)
    # Only the evaluated products' excluded pairs: the audience kernel files every pair under a ranked product.
    early = part.early.join(evaluated, "product_id", "left_semi")
    _, blocks = audiences.audience_blocks(early, evaluated, ranked, replace(params, depth=depth), len(part.ids),
                                          len(part.products), id_width)
    # Each collected frame becomes user positions at once (int32: fewer users than 2**31), so the driver
    # holds (evaluated products x depth) positions, not the packed frames of every product at the same time.
    positions = np.zeros((len(part.products), depth), dtype=np.int32)
    sizes = np.full(len(part.products), -1, dtype=np.int32)
    for frame in blocks:
        rows = np.searchsorted(part.products, frame["product_id"].to_numpy())
        sizes[rows] = frame["size"].to_numpy()
        valid = np.arange(depth)[None, :] < sizes[rows][:, None]
        positions[rows] = np.where(valid, positions_of(part.ids, audiences.unpacked_ids(frame, id_width, depth)), 0)
    ranked.unpersist()
    if (sizes < 0).any():
        raise RuntimeError("the Spark audience stage must return one audience per evaluated product")
    cells = hits_of(positions, sizes, part.truth)
    metrics = evaluate_audiences(positions, sizes, part.truth, KS, cells)
    gain = gain_curve_rows(STRATEGY, positions, sizes, part.truth, cells)
    return Scored(STRATEGY, metrics, time.perf_counter() - started, gain=gain,
                  hit_keys=headline_hit_keys(positions, cells[1], part.truth), truth=part.truth)


def evaluate(events: DataFrame, bot_rows: DataFrame | None, params: RunParams, n_rows: int,
             progress: Callable[[float], None] = lambda share: None
             ) -> tuple[Split | None, list[Scored], list[Scored], float | None]:
    """(outer split, its scores: reported, the inner split's scores, the horizon in days) as
    holdout.evaluate_all gives them for engagement."""
    if params.holdout <= 0:
        return None, [], [], None
    split = split_instant(events, n_rows, params.holdout)
    horizon = horizon_between(split, _latest(events))
    outer = make_split(events, bot_rows, split, params)
    if outer is None:
        return None, [], [], horizon
    inner = make_split(outer.early, outer.early_bots, inner_split(outer.latest_early, horizon), params)
    chosen_on = []
    if inner is not None:
        chosen_on.append(score(inner, params))
        inner.early.unpersist()
    progress(0.5)
    scored = [score(outer, params)]
    outer.early.unpersist()
    return outer, scored, chosen_on, horizon
