"""The export as text: ids, events (a few in messy case), four ISO-8601 timestamp styles, and the CSV
writer. Columns are built as numpy bytes arrays (several times faster than per-value formatting) and
written with pyarrow's CSV writer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.demo.market import DAY_US, EVENTS, HOUR_US, MINUTE_US, UNKNOWN_EVENTS

MESSY_EVENT_RATE = 0.003
# Unknown event values: kept by cleaning, so they must stay too rare to move the event mix.
# "2022-10-05T14:03:11.123+00:00" -- exports stitched from several systems mix them.
TIMESTAMP_STYLE_SHARES = (0.55, 0.25, 0.12, 0.08)
# Rows per write: the text of one chunk stays around 100 MB.
CSV_CHUNK_ROWS = 1_000_000



def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ASCII digits of non-negative integers, zero-padded on the left."""
    # Filled digit position by digit position into contiguous rows, transposed once at the end.
    out = np.empty((width, values.size), dtype=np.uint8)
    rest = values.astype(np.int64)
    for position in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, 10)
        out[position] = digit
    out += 48
    return np.ascontiguousarray(out.T)


def id_bytes(ids: np.ndarray) -> np.ndarray:
    """Positive integer ids as text: digit columns, then the zero padding stripped (numpy's own int-to-bytes
    conversion is several times slower)."""
    if ids.size == 0:
        return np.empty(0, dtype="S1")
    width = len(str(int(ids.max())))
    return np.strings.lstrip(_digits(ids, width).view(f"S{width}").ravel(), b"0")


def event_bytes(rng: np.random.Generator, codes: np.ndarray) -> np.ndarray:
    """Event text per code; a few rows in mixed case with stray spaces, as hand-edited exports have."""
    names = EVENTS + UNKNOWN_EVENTS
    variants = np.array([[e, e.upper(), e.title(), " " + e, e + " ", " " + e.title(), e.upper() + " "]
                         for e in names], dtype="S")
    variant = np.zeros(codes.size, dtype=np.int64)
    messy = np.flatnonzero(rng.random(codes.size) < MESSY_EVENT_RATE)
    variant[messy] = rng.integers(1, variants.shape[1], size=messy.size)
    return variants[codes, variant]


def timestamp_bytes(rng: np.random.Generator, time_us: np.ndarray) -> np.ndarray:
    """ISO-8601 text in the four styles of TIMESTAMP_STYLE_SHARES, mixed row by row."""
    style = rng.choice(len(TIMESTAMP_STYLE_SHARES), size=time_us.size, p=TIMESTAMP_STYLE_SHARES)
    # Composed as a byte matrix, "YYYY-MM-DDTHH:MM:SS.ffffff" plus room for "+00:00"; trailing NUL bytes
    # end the shorter styles (numpy's datetime_as_string is several times slower).
    text = np.zeros((time_us.size, 29), dtype=np.uint8)
    days = (time_us // DAY_US).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    rest = time_us % DAY_US
    fields = (
        (0, 4, months.astype("datetime64[Y]").astype(np.int64) + 1970),
        (5, 2, months.astype(np.int64) % 12 + 1),
        (8, 2, (days - months).astype(np.int64) + 1),
        (11, 2, rest // HOUR_US),
        (14, 2, rest // MINUTE_US % 60),
        (17, 2, rest // 1_000_000 % 60),
        (20, 6, rest % 1_000_000),
    )
    for at, width, value in fields:
        text[:, at:at + width] = _digits(value, width)
    for at, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, ".")):
        text[:, at] = ord(char)
    plain, utc_z, offset = style == 0, style == 2, style == 3
    text[plain, 10] = ord(" ")
    text[plain, 19:] = 0
    text[utc_z, 19] = ord("Z")
    text[utc_z, 20:] = 0
    text[np.ix_(offset, np.arange(23, 29))] = np.frombuffer(b"+00:00", dtype=np.uint8)
    return text.view("S29").ravel()


def _arrow(column: np.ndarray) -> pa.Array:
    """A bytes column as Arrow strings (the bytes are ASCII, so the cast only checks them); numbers as they are."""
    if column.dtype.kind == "S":
        return pa.array(column, type=pa.binary()).cast(pa.string())
    return pa.array(column)


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write the columns with pyarrow's CSV writer, a chunk of rows at a time (bounded memory at millions of
    rows). No value needs quoting (ids, events, timestamps and category names hold no comma, quote or
    newline), so nothing is quoted and a value that would need it is an error, not a silent change."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    n = len(next(iter(columns.values())))
    with open(path, "wb") as f:
        # Arrow always quotes the header: written here, so the file reads like any plain export.
        f.write(",".join(columns).encode() + b"\n")
        for lo in range(0, n, CSV_CHUNK_ROWS):
            chunk = pa.table({name: _arrow(column[lo:lo + CSV_CHUNK_ROWS]) for name, column in columns.items()})
            pacsv.write_csv(chunk, f, options)
