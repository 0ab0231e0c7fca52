"""Engagement ranks and audiences with Spark, by the in-process kernel (ranking.skip_excluded).

Every audience is the global engagement order minus the product's excluded users, and a product with E
excluded users never reaches past position depth + E of that order. So only the top
L = depth + (most users excluded from one product) users matter: they are collected once and shipped to
every task, excluded pairs further down are only counted, and blocks of products are ranked and packed
by applyInPandas exactly as in-process.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.config import RunParams
from pipeline.strategies.ranking import skip_excluded
from store.packing import SCORE_WIDTH, digit_width, digits_to_int, pack_ids, pack_scores

PRODUCT_BLOCK = 20_000      # products ranked by one kernel call: (block x depth) cells of memory
WRITE_PRODUCTS = 100_000    # products collected to the driver at once (~2 KB each when packed)
RANKED_SCHEMA = "product_id long, size int, customer_ids binary, scores binary"
LOW_BITS = (1 << 33) - 1    # monotonically_increasing_id: partition index above bit 33, row number below


@dataclass
class Top:
    """The first L users of the engagement order (position = row), and how many users there are."""
    ids: np.ndarray
    scores: np.ndarray
    last: np.ndarray
    n_users: int


def ranked_users(users: DataFrame) -> DataFrame:
    """users with engagement_rank 1..N (persisted). A sort range-partitions the users in order; each
    row's number inside its partition plus the sizes of the partitions before it is its rank."""
    # The order of features.engagement_order: score descending, later last event, smaller id.
    tagged = users.orderBy(F.desc("engagement_score"), F.desc("last"), F.asc("customer_id")).withColumn("_part", F.spark_partition_id()) \
        .withColumn("_row", F.monotonically_increasing_id()).persist(StorageLevel.MEMORY_AND_DISK)
    sizes = tagged.groupBy("_part").count().toPandas().sort_values("_part")
    offsets = pd.DataFrame({"_part": sizes["_part"].to_numpy(),
                            "_offset": np.concatenate([[0], np.cumsum(sizes["count"].to_numpy())[:-1]])})
    spark = users.sparkSession
    ranked = tagged.join(F.broadcast(spark.createDataFrame(offsets)), "_part") \
        .withColumn("engagement_rank", F.col("_offset") + F.col("_row").bitwiseAND(LOW_BITS) + 1) \
        .drop("_part", "_row", "_offset").persist(StorageLevel.MEMORY_AND_DISK)
    ranked.count()
    tagged.unpersist()
    return ranked


def excluded_pairs(events: DataFrame, rule: str) -> DataFrame:
    """Distinct (product_id, customer_id) pairs that leave the customer out of the product's audience
    (the Spark form of ranking.exclusion_mask; the engine parity test runs every rule in both)."""
    if rule == "all":
        chosen = events
    elif rule == "purchased":
        chosen = events.where(F.col("event") == "purchased")
    else:
        chosen = events.limit(0)
    return chosen.select("product_id", "customer_id").distinct()


def top_users(ranked: DataFrame, n_users: int, depth: int, most_excluded: int) -> Top:
    length = min(n_users, depth + most_excluded)
    top = ranked.where(F.col("engagement_rank") <= length) \
        .select("engagement_rank", "customer_id", "engagement_score", F.unix_micros("last").alias("last")) \
        .toPandas().sort_values("engagement_rank")
    return Top(top["customer_id"].to_numpy(), top["engagement_score"].to_numpy(), top["last"].to_numpy(),
               n_users)


def _rank_blocks(top: Top, depth: int, id_width: int):
    """applyInPandas kernel over one block of products: rows (product_id, n_excluded, pos) where pos is
    an excluded position among the top users (null on the product's own row)."""
    def kernel(rows: pd.DataFrame) -> pd.DataFrame:
        heads = rows[rows["pos"].isna()].sort_values("product_id")
        products = heads["product_id"].to_numpy()
        pairs = rows[rows["pos"].notna()]
        pair_products, pair_pos = pairs["product_id"].to_numpy(), pairs["pos"].to_numpy().astype(np.int64)
        order = np.lexsort((pair_pos, pair_products))
        block = np.searchsorted(products, pair_products[order])
        positions, _ = skip_excluded(pair_pos[order], block, len(products), depth, top.n_users)
        sizes = np.clip(top.n_users - heads["n_excluded"].to_numpy(), 0, depth).astype(np.int32)
        safe = np.minimum(positions, len(top.ids) - 1)
        return pd.DataFrame({"product_id": products, "size": sizes,
                             "customer_ids": pack_ids(top.ids[safe], id_width).tolist(),
                             "scores": pack_scores(top.scores[safe], SCORE_WIDTH).tolist()})
    return kernel


def audience_blocks(events: DataFrame, products: DataFrame, ranked: DataFrame, params: RunParams,
                    n_users: int, n_products: int, id_width: int) -> tuple[Top, Iterator[pd.DataFrame]]:
    """(the top users, then frames of packed audiences: product_id, size, customer_ids, scores)."""
    pairs = excluded_pairs(events, params.exclude).persist(StorageLevel.MEMORY_AND_DISK)
    counts = pairs.groupBy("product_id").agg(F.count(F.lit(1)).alias("n_excluded"))
    most = counts.agg(F.max("n_excluded")).first()[0] or 0
    top = top_users(ranked, n_users, params.depth, int(most))
    spark = events.sparkSession
    positions = spark.createDataFrame(pd.DataFrame({"customer_id": top.ids, "pos": np.arange(len(top.ids))}))
    n_blocks = max(1, -(-n_products // PRODUCT_BLOCK))
    heads = products.select("product_id").join(counts, "product_id", "left") \
        .select("product_id", F.coalesce("n_excluded", F.lit(0)).alias("n_excluded"),
                F.lit(None).cast("long").alias("pos"))
    near = pairs.join(F.broadcast(positions), "customer_id") \
        .select("product_id", F.lit(None).cast("long").alias("n_excluded"), "pos")
    # Cached in _block order, so each collection below reads only its own batches of the cache (Spark
    # prunes cached batches by their min/max) instead of scanning every product once per collection.
    work = heads.unionByName(near).withColumn("_block", F.pmod(F.xxhash64("product_id"), F.lit(n_blocks))) \
        .repartitionByRange("_block").sortWithinPartitions("_block").persist(StorageLevel.MEMORY_AND_DISK)
    work.count()
    pairs.unpersist()
    kernel = _rank_blocks(top, params.depth, id_width)
    per_write = max(1, WRITE_PRODUCTS // PRODUCT_BLOCK)

    def frames() -> Iterator[pd.DataFrame]:
        for start in range(0, n_blocks, per_write):  # a few collections, each many blocks of products
            part = work.where(F.col("_block").between(start, start + per_write - 1))
            ranked_part = part.groupBy("_block").applyInPandas(kernel, RANKED_SCHEMA)
            yield ranked_part.toPandas().sort_values("product_id").reset_index(drop=True)
        work.unpersist()
    return top, frames()


def exposure(frame: pd.DataFrame, top: Top, id_width: int, depth: int) -> np.ndarray:
    """Audiences each top user is in, from a frame of packed audiences (every blob is depth ids wide)."""
    if frame.empty:
        return np.zeros(len(top.ids), dtype=np.int64)
    ids = unpacked_ids(frame, id_width, depth)
    valid = np.arange(depth)[None, :] < frame["size"].to_numpy()[:, None]
    where = pd.Index(top.ids).get_indexer(ids[valid])
    return np.bincount(where, minlength=len(top.ids))


def unpacked_ids(frame: pd.DataFrame, id_width: int, depth: int) -> np.ndarray:
    """(products, depth) customer ids of a frame of packed audiences (every blob is depth ids wide)."""
    digits = np.frombuffer(b"".join(frame["customer_ids"]), dtype=np.uint8).reshape(len(frame), depth, id_width)
    return digits_to_int(digits)


def id_width_of(users: DataFrame) -> int:
    return digit_width(users.agg(F.max("customer_id")).first()[0])
