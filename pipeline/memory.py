"""How much memory an in-process run needs, estimated from the input before it starts.

Calibrated on the default run (every strategy evaluated, the best published) of the generated
marketplace, this process's peak RSS measured by `python -m pipeline bench` (2026-12-06, with als,
itemknn and propensity evaluated on the inner split and the holdout): 1,494 MiB at 500K events, 7,637 MiB
at 5M. A straight line through both: a fixed ~0.79 GiB plus ~1,430 bytes per event.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import psutil

from store.errors import InputError

GB = 1 << 30
CALIBRATION = ((500_000, 1494 / 1024 * GB), (5_000_000, 7637 / 1024 * GB))  # (events, measured peak RSS)
BYTES_PER_ROW = (CALIBRATION[1][1] - CALIBRATION[0][1]) / (CALIBRATION[1][0] - CALIBRATION[0][0])
FIXED_BYTES = CALIBRATION[0][1] - BYTES_PER_ROW * CALIBRATION[0][0]
# The run may use this share of the machine: the OS, the app and the API keep the rest.
USABLE_SHARE = 0.8
SAMPLE_BYTES = 1 << 20


def estimate_rows(path: Path) -> int:
    """Data rows in an events file, without reading it: Parquet's footer, or a CSV's size over the mean
    length of its first lines (a .gz file's compressed share of them)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq
        return pq.ParquetFile(path).metadata.num_rows
    size = path.stat().st_size
    if path.suffix.lower() == ".gz":
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as fh:
            sample = fh.read(SAMPLE_BYTES)
            consumed = max(raw.tell(), 1)
        return round(size / consumed * max(sample.count(b"\n") - 1, 0))
    with open(path, "rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    lines = max(sample.count(b"\n"), 1)
    return lines - 1 if len(sample) == size else round(size / (len(sample) / lines))


def needed_bytes(rows: int) -> float:
    return FIXED_BYTES + BYTES_PER_ROW * rows


def machine_bytes() -> int:
    return psutil.virtual_memory().total


def available_bytes() -> int:
    """Memory free for a new allocation now (other processes, a running Spark JVM, already excluded)."""
    return psutil.virtual_memory().available


def check_fits(path: Path) -> None:
    """InputError when an in-process run of `path` would need more than the machine can give it."""
    if not path.is_file():
        return  # reading it reports what is wrong
    needed, machine = needed_bytes(estimate_rows(path)), machine_bytes()
    if needed > USABLE_SHARE * machine:
        raise InputError(f"{path} needs ~{needed / GB:.1f} GB in process, this machine has {machine / GB:.1f} GB; "
                         "use --engine spark")
