"""Statistics, chart tables and the holdout split with Spark. Each table is aggregated in Spark down to
a few rows and finished by the in-process engine's own code (pipeline.data.diagnostics), so the two
engines share every definition; only the products table is as long as the catalogue and is streamed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.data import diagnostics
from pipeline.spark.features import micros_to_ns

# The split's order statistics are searched between two approximate quantiles this far apart (in
# share of rows) around the wanted rank: Spark's sketch error (0.001) is well inside it.
BRACKET = 0.01
SKETCH_ERROR = 0.001


def _virtual_index(n: int, q: float) -> float:
    """numpy's linear-quantile index as pandas reaches it (q as a percentage, divided back by 100)."""
    return float(((n - 1) * np.true_divide(np.array([q * 100.0]), 100))[0])


def interpolate(before: np.datetime64, after: np.datetime64, n: int, q: float) -> pd.Timestamp:
    """pandas' Series.quantile(q) of n sorted instants, from the two that straddle its index (the same
    int64 arithmetic and cast, so both engines get the same nanosecond)."""
    virtual = np.array([_virtual_index(n, q)])
    gamma = virtual - np.floor(virtual)
    a = np.array([before], dtype="datetime64[ns]").view("i8")
    b = np.array([after], dtype="datetime64[ns]").view("i8")
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe")
    return pd.Timestamp(out.astype("datetime64[ns]")[0])


def split_instant(events: DataFrame, n: int, holdout: float) -> pd.Timestamp:
    """diagnostics.split_instant without sorting every event: find the k-th and (k+1)-th instants
    between two approximate quantiles, counting the rows below the bracket."""
    q = 1 - holdout
    k = min(int(np.floor(_virtual_index(n, q))), n - 1)
    micros = events.select(F.unix_micros("event_date").alias("t"))
    lo, hi = micros.approxQuantile("t", [max(0.0, k / n - BRACKET), min(1.0, (k + 1) / n + BRACKET)],
                                   SKETCH_ERROR)
    below = micros.where(F.col("t") < lo).count()
    inside = np.sort(micros.where(F.col("t").between(lo, hi)).toPandas()["t"].to_numpy(np.int64))
    if not (below <= k and below + len(inside) > min(k + 1, n - 1)):  # sketch missed: take them all
        below, inside = 0, np.sort(micros.toPandas()["t"].to_numpy(np.int64))
    before, after = inside[k - below], inside[min(k + 1, n - 1) - below]
    return interpolate(micros_to_ns(before), micros_to_ns(after), n, q)


def _micros_ceiling(instant: pd.Timestamp) -> int:
    """Spark keeps microseconds: t >= instant  <=>  t >= this many microseconds (ceiling)."""
    return -(-instant.value // 1000)


def product_table(events: DataFrame, catalogue: pd.DataFrame | None, spark, scratch: Path) -> DataFrame:
    """diagnostics.product_table as a (persisted) Spark table; first/last seen stay timestamps. The
    catalogue (millions of rows at scale) goes to Spark as a Parquet file in `scratch`, not through the
    driver JVM's heap."""
    table = events.groupBy("product_id").agg(
        F.count(F.lit(1)).alias("interactions"), F.countDistinct("customer_id").alias("users"),
        F.min("event_date").alias("first_seen"), F.max("event_date").alias("last_seen"))
    if catalogue is not None and len(catalogue):
        path = scratch / "catalogue.parquet"
        catalogue[["product_id", "category"]].to_parquet(path, index=False)
        categories = spark.read.parquet(path.resolve().as_uri())
        table = table.join(categories, "product_id", "left")
    else:
        table = table.withColumn("category", F.lit(None).cast("string"))
    table = table.withColumn("category", F.coalesce("category", F.lit("unknown")))
    return table.select("product_id", "category", "interactions", "users", "first_seen", "last_seen") \
        .persist(StorageLevel.MEMORY_AND_DISK)


def activity_histogram(users: DataFrame) -> pd.DataFrame:
    counts = users.groupBy("total_interactions").count().toPandas().sort_values("total_interactions")
    return pd.DataFrame({"interactions": counts["total_interactions"].to_numpy(),
                         "users": counts["count"].to_numpy()})


def stats(events: DataFrame, users: DataFrame, products: DataFrame, n_rows: int, split: pd.Timestamp,
          histogram: pd.DataFrame) -> dict[str, float]:
    """diagnostics.stats: the period counts in Spark, the figures by diagnostics.summary_stats."""
    at = _micros_ceiling(split)
    first, last = F.unix_micros("first"), F.unix_micros("last")
    u = users.agg(F.sum((first < at).cast("long")).alias("early"), F.sum((last >= at).cast("long")).alias("late"),
                  F.sum(((first < at) & (last >= at)).cast("long")).alias("back")).first()
    seen, gone = F.unix_micros("first_seen"), F.unix_micros("last_seen")
    p = products.agg(F.sum((seen < at).cast("long")).alias("early"), F.sum((gone >= at).cast("long")).alias("late"),
                     F.sum((seen >= at).cast("long")).alias("new")).first()
    periods = {"early_period_users": int(u["early"]), "late_period_users": int(u["late"]),
               "returning_users": int(u["back"]), "early_period_products": int(p["early"]),
               "late_period_products": int(p["late"]), "new_products_in_test": int(p["new"])}
    events_count = events.groupBy("event").count().toPandas().set_index("event")["count"]
    return diagnostics.summary_stats(n_rows, periods, histogram, events_count)


def _month(column: str):
    return F.year(column) * 12 + F.month(column) - 1


def cohort_retention(events: DataFrame) -> pd.DataFrame:
    active = events.select("customer_id", _month("event_date").alias("m")).distinct()
    cohorts = active.groupBy("customer_id").agg(F.min("m").alias("cohort"))
    table = active.join(cohorts, "customer_id").withColumn("since", F.col("m") - F.col("cohort")) \
        .groupBy("cohort", "since").agg(F.count(F.lit(1)).alias("active_users")).toPandas()
    return diagnostics.cohort_frame(table.sort_values(["cohort", "since"]).reset_index(drop=True))


def daily_events(events: DataFrame) -> pd.DataFrame:
    table = events.groupBy(F.date_format("event_date", "yyyy-MM-dd").alias("day"), "event") \
        .agg(F.count(F.lit(1)).alias("interactions")).toPandas()
    return table.sort_values(["day", "event"]).reset_index(drop=True)


def product_months(events: DataFrame) -> pd.DataFrame:
    active = events.select("product_id", _month("event_date").alias("m")).distinct()
    first = active.groupBy("product_id").agg(F.min("m").alias("first"))
    table = active.join(first, "product_id").groupBy("m").agg(
        F.sum((F.col("m") == F.col("first")).cast("long")).alias("new_products"),
        F.count(F.lit(1)).alias("active")).toPandas()
    return diagnostics.months_frame(table.sort_values("m").reset_index(drop=True))


def top_products(products: DataFrame) -> pd.DataFrame:
    top = products.orderBy(F.desc("interactions"), F.asc("product_id")).limit(diagnostics.TOP_PRODUCTS)
    return diagnostics.top_products(top.select("product_id", "category", "interactions", "users").toPandas())
