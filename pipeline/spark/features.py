"""User features with Spark: per-user aggregates in Spark, the formula of pipeline.data.features on
blocks of users (first the per-user columns, then min-max with the global bounds and the score)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.config import RunParams
from pipeline.data.features import COMPONENTS, add_scores, derive_columns

AGGREGATES = ("customer_id long, total_interactions long, unique_products long, avg_event_score double, "
              "first timestamp, last timestamp")
DERIVED = AGGREGATES + ", days_active long, interaction_frequency double, recency_days long, recency_score double"
SCORED = DERIVED + ", " + ", ".join(f"{norm} double" for _, norm in COMPONENTS.values()) + \
    ", engagement_score double"


def micros_to_ns(micros: int) -> np.datetime64:
    return np.datetime64(int(micros), "us").astype("datetime64[ns]")


def latest_event(events: DataFrame) -> np.datetime64:
    """Collected as epoch microseconds: a collected timestamp would be shifted to the driver's zone."""
    return micros_to_ns(events.agg(F.max(F.unix_micros("event_date"))).first()[0])


def _derive(latest: np.datetime64, params: RunParams):
    def kernel(blocks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for users in blocks:
            yield derive_columns(users, latest, params)
    return kernel


def _score(bounds: dict[str, tuple[float, float]], params: RunParams):
    def kernel(blocks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for users in blocks:
            yield add_scores(users, bounds, params)
    return kernel


def user_features(events: DataFrame, params: RunParams) -> DataFrame:
    """One row per customer (persisted) with the columns of pipeline.data.features.user_features;
    first/last are the user's first and last event."""
    aggregates = events.groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("total_interactions"),
        F.countDistinct("product_id").alias("unique_products"),
        F.avg("weight").alias("avg_event_score"),
        F.min("event_date").alias("first"), F.max("event_date").alias("last"))
    derived = aggregates.mapInPandas(_derive(latest_event(events), params), DERIVED) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    raws = [raw for raw, _ in COMPONENTS.values()]
    row = derived.agg(*[F.min(F.col(r).cast("double")).alias(f"lo_{r}") for r in raws],
                      *[F.max(F.col(r).cast("double")).alias(f"hi_{r}") for r in raws]).first()
    bounds = {r: (row[f"lo_{r}"], row[f"hi_{r}"]) for r in raws}
    users = derived.mapInPandas(_score(bounds, params), SCORED).persist(StorageLevel.MEMORY_AND_DISK)
    users.count()
    derived.unpersist()
    return users
