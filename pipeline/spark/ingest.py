"""Reading the events with Spark: CSV, CSV.gz, Parquet, or a folder of Parquet parts.

Every column is read as text and typed by pipeline.spark.clean with the in-process rules (Spark
expressions where they decide exactly as pipeline.data.clean.parse_rows, that function itself for the
odd rows). Header names are matched as in-process
(case-insensitively, trimmed, other columns ignored).
"""
from __future__ import annotations

from pathlib import Path

from pipeline.data.ingest import REQUIRED, _check_utf8, _match_columns
from store.errors import InputError

PARQUET_SUFFIXES = (".parquet", ".pq")
SCHEME = "://"


def _kind(path: str) -> str:
    """'parquet' for a Parquet file or a folder of parts, else 'csv' (plain or .gz)."""
    if SCHEME not in path and Path(path).is_dir():
        parts = list(Path(path).glob("*.parquet")) + list(Path(path).glob("*.pq"))
        if not parts:
            raise InputError(f"events folder {path} holds no .parquet parts; pass a CSV or Parquet file, "
                             "or a folder of Parquet parts")
        return "parquet"
    return "parquet" if path.lower().endswith(PARQUET_SUFFIXES) else "csv"


def _check_local(path: Path) -> None:
    if not path.exists():
        raise InputError(f"events file not found: {path}; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"events file {path} is empty; export the data again")
    if path.is_file() and path.suffix.lower() == ".csv":
        _check_utf8(path, "events file")  # Spark would replace a bad byte silently


def _uri(path: str) -> str:
    """Local paths become absolute file:// URIs, so a cluster's workers on this machine read the same
    file; hdfs://, s3a://… pass through unchanged."""
    return path if SCHEME in path else Path(path).resolve().as_uri()


def read_events(spark, path: str):
    """The four required columns as strings, named as in-process (customer_id, product_id, event,
    event_date), one row per data row of the input."""
    path = str(path)
    if SCHEME not in path:
        _check_local(Path(path))
    reader = spark.read
    if _kind(path) == "parquet":
        frame = reader.parquet(_uri(path))
    else:
        # No schema inference: every value stays text; empty lines are skipped as pyarrow does.
        frame = reader.option("header", True).option("inferSchema", False).option("encoding", "UTF-8") \
            .option("mode", "PERMISSIVE").csv(_uri(path))
    found = [name.lstrip("\ufeff") for name in frame.columns]
    frame = frame.toDF(*found)
    columns = _match_columns(found, REQUIRED, Path(path), "events file")
    return frame.selectExpr(*[f"CAST(`{source}` AS STRING) AS {name}" for name, source in columns.items()])
