"""Read raw events (CSV or Parquet) and the optional product catalogue, refusing unusable input
with one line that says what is wrong and how to fix it."""
from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from store.errors import InputError

REQUIRED = ("customer_id", "product_id", "event", "event_date")


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} not found: {path}; check the path")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; pass the file inside it (e.g. {path}/interactions.csv)")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty; export the data again")


def _check_utf8(path: Path, what: str) -> None:
    """Decode the whole file incrementally: a stray byte deep in the file must not pass silently."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                raise InputError(f"{what} {path} is not UTF-8 (byte 0x{block[exc.start]:02x} at offset {bad}); "
                                 "re-export it as UTF-8") from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{what} {path} is not UTF-8 (truncated character at the end); "
                             "re-export it as UTF-8") from None


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig") as fh:
        return next(iter(fh), "").rstrip("\r\n").split(",")


def _match_columns(found: list[str], required: tuple[str, ...], path: Path, what: str) -> dict[str, str]:
    """Map each required name to the file's own header (case-insensitive, trimmed)."""
    by_norm = {}
    for name in found:
        by_norm.setdefault(name.strip().strip('"').lower(), name)
    missing = [c for c in required if c not in by_norm]
    if missing:
        if len(found) == 1 and ";" in found[0]:
            raise InputError(f"{what} {path} looks ';'-separated; save it comma-separated (CSV with ',')")
        shown = ", ".join(n.strip() for n in found) or "(none)"
        raise InputError(f"{what} {path} is missing column(s) {', '.join(missing)}; columns found: {shown}")
    return {c: by_norm[c] for c in required}


def _read_csv_strings(path: Path, required: tuple[str, ...], what: str,
                      optional: tuple[str, ...] = ()) -> pd.DataFrame:
    _check_utf8(path, what)
    found = _header(path)
    columns = _match_columns(found, required, path, what)
    normalized = {n.strip().strip('"').lower(): n for n in found}
    columns.update({c: normalized[c] for c in optional if c in normalized})
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns.values()),
                column_types={name: pa.string() for name in columns.values()},
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{what} {path} is not a well-formed CSV ({first}); check the delimiters and quoting") \
            from None
    frame = table.rename_columns([next(k for k, v in columns.items() if v == n) for n in table.column_names])
    # Arrow-backed strings: a tenth of the memory of Python strings, and cleaning uses Arrow's kernels.
    return frame.to_pandas(types_mapper=pd.ArrowDtype)


PARQUET_TYPES = {
    "customer_id": (pa.types.is_integer, pa.types.is_floating, pa.types.is_string, pa.types.is_large_string),
    "product_id": (pa.types.is_integer, pa.types.is_floating, pa.types.is_string, pa.types.is_large_string),
    "event": (pa.types.is_string, pa.types.is_large_string, pa.types.is_dictionary),
    "event_date": (pa.types.is_timestamp, pa.types.is_date, pa.types.is_string, pa.types.is_large_string),
}
EXPECTED_WORDS = {"customer_id": "integers", "product_id": "integers", "event": "strings",
                  "event_date": "timestamps or ISO-8601 strings"}


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"events file {path} is not a readable Parquet file ({exc}); "
                         "export it again or pass a CSV") from None
    columns = _match_columns(schema.names, REQUIRED, path, "events file")
    for name, source in columns.items():
        kind = schema.field(source).type
        if not any(check(kind) for check in PARQUET_TYPES[name]):
            raise InputError(f"events file {path}: column {source} has Parquet type {kind}, expected "
                             f"{EXPECTED_WORDS[name]}; fix the column type in the export")
    table = pq.read_table(path, columns=list(columns.values()))
    frame = table.to_pandas()
    return frame.rename(columns={v: k for k, v in columns.items()})


def read_events(path: str | Path) -> pd.DataFrame:
    """The four required columns, raw (cleaning decides what each value means)."""
    path = Path(path)
    _check_file(path, "events file")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = _read_parquet(path)
    else:
        frame = _read_csv_strings(path, REQUIRED, "events file")
    if frame.empty:
        raise InputError(f"events file {path} has a header but no data rows; export the data again")
    return frame


def read_products(path: str | Path) -> pd.DataFrame:
    """Product catalogue: product_id and category; a row per product (first one wins)."""
    path = Path(path)
    _check_file(path, "products file")
    frame = _read_csv_strings(path, ("product_id",), "products file", optional=("category",))
    frame["category"] = frame["category"].str.strip() if "category" in frame else "unknown"
    ids = pd.to_numeric(frame["product_id"].str.strip(), errors="coerce").astype("float64")
    frame = frame.assign(product_id=ids)[ids.notna() & (ids > 0) & (ids % 1 == 0)]
    frame["product_id"] = frame["product_id"].astype("int64")
    frame["category"] = frame["category"].replace("", "unknown")
    return frame.drop_duplicates("product_id").reset_index(drop=True)
