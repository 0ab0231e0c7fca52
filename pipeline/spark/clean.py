"""Cleaning with Spark, in DESIGN.md's order and with the in-process engine's counts.

The row rules run as Spark SQL expressions on the rows whose meaning they decide exactly as the in-process
parser does: ids and event names of printable ASCII (where trimming and lower-casing are the same in Java
and in Arrow) and dates in the ISO-8601 forms a marketplace export writes (date, 'T' or space, seconds,
up to 6 decimals, Z or +hh:mm), read by Spark's cast to the same instant as pandas. Every other row (an
id with a tab or a non-ASCII character, a date in another form or that does not exist) goes through the
in-process parser itself (pipeline.data.clean.parse_rows, by mapInPandas): both engines decide what an odd
value means in one place, and only the odd rows pay for Python. Duplicates and bots are Spark aggregations
of the same rules, on the events hash-partitioned by customer once (one shuffle for both, and the user
features after them need none).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipeline.config import RunParams
from pipeline.data.clean import DROPPED, EARLIEST, INTEGER_TEXT, date_checks, parse_rows, run_time
from pipeline.data.ingest import REQUIRED
from store.errors import InputError

PARSED_SCHEMA = ("customer_id long, product_id long, event string, event_date timestamp, "
                 "usable boolean, date_check string")
DATE_CHECKS = ("bad_dates", "future_dates", "absurd_dates")
KEY = ["customer_id", "product_id", "event", "event_date"]
PLAIN = r"^[\x20-\x7E]*\z"                      # printable ASCII and the space: nothing else to trim
INTEGER = INTEGER_TEXT.removesuffix("$") + r"\z"  # Java's $ would also match before a final newline
ISO = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?)?\z"
# Instants pandas holds (1677-09-21 .. 2262-04-11) with a margin: outside, the in-process parser decides.
MICROS = 1000
FIRST_MICROS, END_MICROS = (pd.Timestamp(day).value // MICROS for day in ("1678-01-01", "2262-01-01"))


def _text(name: str) -> Column:
    # Spark reads an empty CSV field as null; the in-process reader keeps it as "" (missing).
    return F.coalesce(F.col(name), F.lit(""))


def _positive_id(text: Column) -> Column:
    """clean._positive_ids for plain text: the id, or null where it is not a positive integer."""
    trimmed = F.trim(text)
    value = F.regexp_replace(trimmed, r"^\+|\.0*\z", "").try_cast("long")
    return F.when(trimmed.rlike(INTEGER) & (value > 0), value)


def _native(raw: DataFrame, now: pd.Timestamp) -> DataFrame:
    """Every row typed by Spark expressions, with `odd` true where the in-process parser must decide
    (its raw text is kept for it, null on the other rows). In three selects: each expression is then
    computed once per row (Spark does not merge selects that would repeat a costly expression)."""
    texts = {name: _text(name) for name in REQUIRED}
    date = texts["event_date"]
    typed = raw.select(
        *[text.alias(f"text_{name}") for name, text in texts.items()],
        (texts["customer_id"].rlike(PLAIN) & texts["product_id"].rlike(PLAIN) & texts["event"].rlike(PLAIN))
        .alias("plain"),
        _positive_id(texts["customer_id"]).alias("customer_id"), _positive_id(texts["product_id"]).alias("product_id"),
        F.lower(F.trim(texts["event"])).alias("event"), F.when(date.rlike(ISO), date.try_cast("timestamp")).alias("event_date"))
    micros = F.unix_micros("event_date")
    flagged = typed.select(
        "*", (F.col("customer_id").isNotNull() & F.col("product_id").isNotNull() & (F.col("event") != "")).alias("usable"),
        F.coalesce(micros.between(FIRST_MICROS, END_MICROS - 1), F.lit(False)).alias("dated"),
        F.when(micros > now.value // MICROS, "future_dates").when(micros < EARLIEST.value // MICROS, "absurd_dates")
        .otherwise("").alias("date_check"))
    odd = flagged.select("*", (~F.col("plain") | (F.col("usable") & ~F.col("dated"))).alias("odd"))
    return odd.select("customer_id", "product_id", "event", "event_date", "usable", "date_check", "odd",
                      *[F.when(F.col("odd"), F.col(f"text_{name}")).alias(f"raw_{name}") for name in REQUIRED])


def _parse_blocks(now: pd.Timestamp):
    """mapInPandas kernel for the odd rows: the in-process parser and date checks; the usable rows
    parsed, with the date check that drops each ("" when none), then one empty row (usable false) per
    unusable row, so the counts come out of the same table as the plain rows'."""
    def parse(blocks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for raw in blocks:
            rows, ok = parse_rows(raw.rename(columns=lambda name: name.removeprefix("raw_")))
            rows["date_check"] = ""
            for check, drop in date_checks(rows, now).items():
                rows.loc[drop, "date_check"] = check
            rows = rows.drop(columns="year_out_of_range")
            rows["event"] = rows["event"].astype(str)
            rows["usable"] = True
            yield rows
            unusable = int((~ok).sum())
            if unusable:  # placeholders, typed like the real rows; only their number is used
                zeros = np.zeros(unusable, np.int64)
                yield pd.DataFrame({"customer_id": zeros, "product_id": zeros, "event": "",
                                    "event_date": np.full(unusable, np.datetime64("NaT"), "datetime64[ns]"),
                                    "usable": False, "date_check": ""})
    return parse


def _weights(params: RunParams) -> tuple[Column, Column]:
    """(event weight, known event) as expressions: clean.event_weight and clean.known_events."""
    weight = F.lit(float(params.unknown_event_weight))
    for name, value in params.event_weights.items():
        weight = F.when(F.col("event") == name, F.lit(float(value))).otherwise(weight)
    return weight, F.col("event").isin(list(params.event_weights))


def parsed_rows(raw: DataFrame, now: pd.Timestamp) -> tuple[DataFrame, DataFrame]:
    """(every row typed, with usable and date_check, as PARSED_SCHEMA; the persisted frame it is read from,
    to unpersist once the counts are taken). The input is read once: the odd rows come from the same
    persisted frame as the plain ones."""
    native = _native(raw, now).persist(StorageLevel.MEMORY_AND_DISK)
    columns = [name for name, _ in (part.split() for part in PARSED_SCHEMA.split(", "))]
    plain = native.where(~F.col("odd")).select(*columns)
    odd = native.where(F.col("odd")).select(*[f"raw_{name}" for name in REQUIRED]) \
        .mapInPandas(_parse_blocks(now), PARSED_SCHEMA)
    return plain.unionByName(odd), native


def bot_ids(events: DataFrame, limit: int) -> DataFrame:
    """clean.bot_customers: customer_id of the customers with more than `limit` events on some day (UTC)
    of these events. (clean() below applies the same rule inside the aggregation that counts the rows.)"""
    per_day = events.groupBy("customer_id", F.to_date("event_date").alias("day")).agg(F.count(F.lit(1)).alias("n"))
    return per_day.where(F.col("n") > limit).select("customer_id").distinct()


def clean(raw: DataFrame, params: RunParams, now: pd.Timestamp | None = None
          ) -> tuple[DataFrame, dict[str, int], DataFrame | None]:
    """(clean events with weight and known, hash-partitioned by customer and read from one persisted frame,
    which spark.catalog.clearCache() at the end of the run releases; the data_quality counts; the rows
    dropped as bots', or None, for the holdout to judge on its fitting days alone). Raises InputError when
    nothing is left."""
    parsed, source = parsed_rows(raw, run_time(now))
    tally = parsed.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col("usable").cast("long")).alias("usable"),
                       *[F.sum((F.col("usable") & (F.col("date_check") == c)).cast("long")).alias(c)
                         for c in DATE_CHECKS]).first()
    counts = {"rows_read": int(tally["rows"])}
    if counts["rows_read"] == 0:
        raise InputError("events file has a header but no data rows; export the data again")
    counts["missing_fields"] = counts["rows_read"] - int(tally["usable"] or 0)
    counts.update({c: int(tally[c] or 0) for c in DATE_CHECKS})
    undated = sum(counts[c] for c in DATE_CHECKS)

    # Rows equal on all four columns are interchangeable, so which copy survives does not matter. Hashed
    # by customer once: the dedupe, the bot counts and the features group within those partitions.
    weight, known = _weights(params)
    dated = parsed.where(F.col("usable") & (F.col("date_check") == "")).select(*KEY)
    unique = dated.repartition("customer_id").dropDuplicates(KEY) \
        .withColumn("weight", weight).withColumn("known", known).persist(StorageLevel.MEMORY_AND_DISK)
    per_day = unique.groupBy("customer_id", F.to_date("event_date").alias("day")).agg(
        F.count(F.lit(1)).alias("n"), F.sum((~F.col("known")).cast("long")).alias("unknown"))
    per_user = per_day.groupBy("customer_id").agg(F.sum("n").alias("rows"), F.max("n").alias("busiest"),
                                                  F.sum("unknown").alias("unknown"))
    bot = F.col("busiest") > params.bot_daily_limit
    # The bots' ids come with the counts (a few customers), not from a second pass over the events.
    tally = per_user.agg(F.sum("rows").alias("rows"), F.sum(F.when(bot, F.col("rows"))).alias("bots"),
                         F.sum(F.when(~bot, F.col("unknown"))).alias("unknown"),
                         F.collect_list(F.when(bot, F.col("customer_id"))).alias("ids")).first()
    source.unpersist()
    counts["duplicates"] = counts["rows_read"] - counts["missing_fields"] - undated - int(tally["rows"] or 0)
    counts["bot_rows"] = int(tally["bots"] or 0)
    counts["unknown_events"] = int(tally["unknown"] or 0)
    counts["rows_clean"] = int(tally["rows"] or 0) - counts["bot_rows"]
    events, bot_rows = unique, None
    if counts["bot_rows"]:  # a few customers: their ids go to every task, the events stay cached once
        bots = unique.sparkSession.createDataFrame(pd.DataFrame({"customer_id": np.array(tally["ids"], np.int64)}))
        events = unique.join(F.broadcast(bots), "customer_id", "left_anti")
        bot_rows = unique.join(F.broadcast(bots), "customer_id", "left_semi")
    if counts["rows_clean"] == 0:
        dropped = ", ".join(f"{k}={counts[k]}" for k in DROPPED)
        raise InputError(f"no valid row left after cleaning ({dropped}); check the ids, events and dates")
    return events, counts, bot_rows

