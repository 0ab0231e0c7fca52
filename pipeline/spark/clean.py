"""Cleaning with Spark, in DESIGN.md's order and with the in-process engine's counts.

The row-local checks (ids, event names, dates) are pipeline.data.clean.parse_rows run on blocks of
rows; the checks that look across rows (duplicates, bots) are Spark aggregations of the same rule.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline.config import RunParams
from pipeline.data.clean import DROPPED, date_checks, event_weight, known_events, parse_rows, run_time
from store.errors import InputError

PARSED_SCHEMA = ("customer_id long, product_id long, event string, event_date timestamp, "
                 "weight double, known boolean, usable boolean, date_check string")
DATE_CHECKS = ("bad_dates", "future_dates", "absurd_dates")
KEY = ["customer_id", "product_id", "event", "event_date"]


def _parse_blocks(params: RunParams, now: pd.Timestamp):
    """mapInPandas kernel: raw text rows -> the usable ones parsed, with the date check that drops each
    ("" when none), its event weight and whether its event is known; then one empty row (usable false)
    per unusable row, so one pass over the input counts everything."""
    def parse(blocks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for raw in blocks:
            # Spark reads an empty CSV field as null; the in-process reader keeps it as "" (missing).
            rows, ok = parse_rows(raw.fillna(""))
            rows["date_check"] = ""
            for check, drop in date_checks(rows, now).items():
                rows.loc[drop, "date_check"] = check
            rows = rows.drop(columns="year_out_of_range")
            rows["weight"] = event_weight(rows, params)
            rows["known"] = known_events(rows, params)
            rows["event"] = rows["event"].astype(str)
            rows["usable"] = True
            yield rows
            unusable = int((~ok).sum())
            if unusable:  # placeholders, typed like the real rows; only their number is used
                zeros = np.zeros(unusable, np.int64)
                yield pd.DataFrame({"customer_id": zeros, "product_id": zeros, "event": "",
                                    "event_date": np.full(unusable, np.datetime64("NaT"), "datetime64[ns]"),
                                    "weight": 0.0, "known": False, "usable": False, "date_check": ""})
    return parse


def clean(raw: DataFrame, params: RunParams, now: pd.Timestamp | None = None) -> tuple[DataFrame, dict[str, int]]:
    """(clean events, persisted; the data_quality counts). Raises InputError when nothing is left."""
    parsed = raw.mapInPandas(_parse_blocks(params, run_time(now)), PARSED_SCHEMA)
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    tally = parsed.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col("usable").cast("long")).alias("usable"),
                       *[F.sum((F.col("usable") & (F.col("date_check") == c)).cast("long")).alias(c)
                         for c in DATE_CHECKS]).first()
    counts = {"rows_read": int(tally["rows"])}
    if counts["rows_read"] == 0:
        raise InputError("events file has a header but no data rows; export the data again")
    counts["missing_fields"] = counts["rows_read"] - int(tally["usable"] or 0)
    counts.update({c: int(tally[c] or 0) for c in DATE_CHECKS})
    dated = parsed.where(F.col("usable") & (F.col("date_check") == "")).drop("usable", "date_check")
    undated = sum(counts[c] for c in DATE_CHECKS)

    # Rows equal on all four columns are interchangeable, so which copy survives does not matter.
    unique = dated.dropDuplicates(KEY).persist(StorageLevel.MEMORY_AND_DISK)
    counts["duplicates"] = counts["rows_read"] - counts["missing_fields"] - undated - unique.count()
    parsed.unpersist()

    per_day = unique.groupBy("customer_id", F.to_date("event_date").alias("day")).count()
    bots = per_day.where(F.col("count") > params.bot_daily_limit).select("customer_id").distinct()
    events = unique.join(F.broadcast(bots), "customer_id", "left_anti").persist(StorageLevel.MEMORY_AND_DISK)
    tally = events.agg(F.count(F.lit(1)).alias("rows"), F.sum((~F.col("known")).cast("long")).alias("unknown")).first()
    kept = int(tally["rows"])
    counts["bot_rows"] = counts["rows_read"] - counts["missing_fields"] - undated - counts["duplicates"] - kept
    unique.unpersist()

    counts["unknown_events"] = int(tally["unknown"] or 0)
    counts["rows_clean"] = kept
    if kept == 0:
        dropped = ", ".join(f"{k}={counts[k]}" for k in DROPPED)
        raise InputError(f"no valid row left after cleaning ({dropped}); check the ids, events and dates")
    return events, counts
