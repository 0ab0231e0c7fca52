"""Cleaning with Spark, in DESIGN.md's order and with the in-process engine's counts.

The row-local checks (ids, event names, dates) are pipeline.data.clean.parse_rows run on blocks of
rows; the checks that look across rows (duplicates, bots) are Spark aggregations of the same rule.
"""
from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, functions as F

from pipeline.config import RunParams
from pipeline.data.clean import CHECKS, event_weight, known_events, parse_rows
from store.errors import InputError

PARSED_SCHEMA = ("customer_id long, product_id long, event string, event_date timestamp, "
                 "weight double, known boolean")
KEY = ["customer_id", "product_id", "event", "event_date"]


def _parse_blocks(params: RunParams):
    """mapInPandas kernel: raw text rows -> the usable ones, parsed (event_date null where it does
    not parse), with each row's event weight and whether its event is known."""
    def parse(blocks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for raw in blocks:
            rows, _ = parse_rows(raw)
            rows["weight"] = event_weight(rows, params)
            rows["known"] = known_events(rows, params)
            rows["event"] = rows["event"].astype(str)
            yield rows
    return parse


def clean(raw: DataFrame, params: RunParams) -> tuple[DataFrame, dict[str, int]]:
    """(clean events, persisted; the data_quality counts). Raises InputError when nothing is left."""
    counts = {"rows_read": raw.count()}
    if counts["rows_read"] == 0:
        raise InputError("events file has a header but no data rows; export the data again")
    parsed = raw.mapInPandas(_parse_blocks(params), PARSED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    usable = parsed.count()
    counts["missing_fields"] = counts["rows_read"] - usable

    dated = parsed.where(F.col("event_date").isNotNull())
    counts["bad_dates"] = usable - dated.count()

    # Rows equal on all four columns are interchangeable, so which copy survives does not matter.
    unique = dated.dropDuplicates(KEY).persist(StorageLevel.MEMORY_AND_DISK)
    counts["duplicates"] = counts["rows_read"] - counts["missing_fields"] - counts["bad_dates"] - unique.count()
    parsed.unpersist()

    per_day = unique.groupBy("customer_id", F.to_date("event_date").alias("day")).count()
    bots = per_day.where(F.col("count") > params.bot_daily_limit).select("customer_id").distinct()
    events = unique.join(F.broadcast(bots), "customer_id", "left_anti").persist(StorageLevel.MEMORY_AND_DISK)
    kept = events.count()
    counts["bot_rows"] = counts["rows_read"] - counts["missing_fields"] - counts["bad_dates"] \
        - counts["duplicates"] - kept
    unique.unpersist()

    counts["unknown_events"] = events.where(~F.col("known")).count()
    counts["rows_clean"] = kept
    if kept == 0:
        dropped = ", ".join(f"{k}={counts[k]}" for k in CHECKS[1:5])
        raise InputError(f"no valid row left after cleaning ({dropped}); check the ids, events and dates")
    return events, counts
