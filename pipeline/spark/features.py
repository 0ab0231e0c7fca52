"""User features with Spark: the formula of pipeline.data.features as Spark expressions over the per-user
aggregates (the same operations in the same order, so the same doubles), min-max with the global bounds."""
from __future__ import annotations

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipeline.config import RunParams
from pipeline.data.features import COMPONENTS

DAY_MICROS = 86_400_000_000


def micros_to_ns(micros: int) -> np.datetime64:
    return np.datetime64(int(micros), "us").astype("datetime64[ns]")


def latest_micros(events: DataFrame) -> int:
    """Collected as epoch microseconds: a collected timestamp would be shifted to the driver's zone."""
    return int(events.agg(F.max(F.unix_micros("event_date"))).first()[0])


def _min_max(raw: str, low: float | None, high: float | None) -> Column:
    """features.min_max with the global bounds: 0.5 for a constant column."""
    if low is None or high is None or not high > low:
        return F.lit(0.5)
    return (F.col(raw).cast("double") - F.lit(float(low))) / F.lit(float(high - low))


def user_features(events: DataFrame, params: RunParams) -> DataFrame:
    """One row per customer (persisted) with the columns of pipeline.data.features.user_features;
    first/last are the user's first and last event."""
    latest = latest_micros(events)
    # Whole days, floored as numpy does (later >= earlier, so Spark's integer div is the floor).
    days_active = F.expr(f"(unix_micros(last) - unix_micros(first)) div {DAY_MICROS}") + 1
    recency_days = F.expr(f"({latest} - unix_micros(last)) div {DAY_MICROS}")
    derived = events.groupBy("customer_id").agg(
        F.count(F.lit(1)).alias("total_interactions"),
        F.countDistinct("product_id").alias("unique_products"),
        F.avg("weight").alias("avg_event_score"),
        F.min("event_date").alias("first"), F.max("event_date").alias("last")) \
        .withColumn("days_active", days_active) \
        .withColumn("interaction_frequency", F.col("total_interactions") / F.col("days_active")) \
        .withColumn("recency_days", recency_days) \
        .withColumn("recency_score", F.exp(-F.col("recency_days") / F.lit(float(params.decay_days)))) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    raws = [raw for raw, _ in COMPONENTS.values()]
    row = derived.agg(*[F.min(F.col(r).cast("double")).alias(f"lo_{r}") for r in raws],
                      *[F.max(F.col(r).cast("double")).alias(f"hi_{r}") for r in raws]).first()
    score = F.lit(0.0)
    columns = []
    for name, (raw, norm) in COMPONENTS.items():  # features.add_scores: the same sum, in the same order
        columns.append(_min_max(raw, row[f"lo_{raw}"], row[f"hi_{raw}"]).alias(norm))
        score = score + F.lit(float(params.component_weights[name])) * F.col(norm)
    users = derived.select("*", *columns).withColumn("engagement_score", score) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    users.count()
    derived.unpersist()
    return users
