"""Read raw events (CSV or Parquet) and the optional product catalogue, refusing unusable input
with one line that says what is wrong and how to fix it."""
from __future__ import annotations

import codecs
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from store.errors import InputError

REQUIRED = ("customer_id", "product_id", "event", "event_date")


GZIP_MAGIC = b"\x1f\x8b"
SEPARATORS = {";": "';'-separated", "\t": "tab-separated", "|": "'|'-separated"}


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} not found: {path}; check the path")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; pass the file inside it (e.g. {path}/interactions.csv)")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty; export the data again")


def _is_gzip(path: Path) -> bool:
    """By content, not name: a gzip file called .csv is read like one called .csv.gz."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def _open_bytes(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _check_utf8(path: Path, what: str) -> None:
    """Decode the whole file incrementally: a stray byte deep in the file must not pass silently."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with _open_bytes(path) as fh:
            while block := fh.read(1 << 24):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    bad = offset + exc.start
                    raise InputError(f"{what} {path} is not UTF-8 (byte 0x{block[exc.start]:02x} at offset {bad}); "
                                     "re-export it as UTF-8") from None
                offset += len(block)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{what} {path} is not a readable gzip file ({exc or 'cut short'}); "
                         "compress it again or pass the plain CSV") from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not UTF-8 (truncated character at the end); "
                         "re-export it as UTF-8") from None


def _header(path: Path) -> list[str]:
    with _open_bytes(path) as fh:
        first = fh.readline()
    return first.decode("utf-8-sig").rstrip("\r\n").split(",")


def _match_columns(found: list[str], required: tuple[str, ...], path: Path, what: str) -> dict[str, str]:
    """Map each required name to the file's own header (case-insensitive, trimmed)."""
    by_norm = {}
    for name in found:
        by_norm.setdefault(name.strip().strip('"').lower(), name)
    missing = [c for c in required if c not in by_norm]
    if missing:
        for separator, words in SEPARATORS.items():
            if len(found) == 1 and separator in found[0]:
                raise InputError(f"{what} {path} looks {words}; save it comma-separated (CSV with ',')")
        shown = ", ".join(n.strip() for n in found) or "(none)"
        raise InputError(f"{what} {path} is missing column(s) {', '.join(missing)}; columns found: {shown}")
    return {c: by_norm[c] for c in required}


def _csv_columns(path: Path, required: tuple[str, ...], what: str, optional: tuple[str, ...] = ()) -> dict[str, str]:
    """Everything checked before parsing the rows: encoding (whole file), header, required columns.
    Returns {our name: the file's header name} for the required and the present optional columns."""
    _check_utf8(path, what)
    found = _header(path)
    columns = _match_columns(found, required, path, what)
    normalized = {n.strip().strip('"').lower(): n for n in found}
    columns.update({c: normalized[c] for c in optional if c in normalized})
    return columns


def _read_csv_strings(path: Path, columns: dict[str, str], what: str) -> pd.DataFrame:
    try:
        table = pacsv.read_csv(
            pa.input_stream(str(path), compression="gzip" if _is_gzip(path) else None),
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


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _parquet_columns(path: Path) -> dict[str, str]:
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
    return columns


def _events_columns(path: Path) -> dict[str, str]:
    _check_file(path, "events file")
    return _parquet_columns(path) if _is_parquet(path) else _csv_columns(path, REQUIRED, "events file")


def check_events_file(path: str | Path) -> None:
    """The one check of an events file before a run (the app calls it too): raises InputError with the
    same line `run` would print (missing, a directory, empty, bad gzip, not UTF-8, a ';' or tab separator,
    a missing column, Parquet columns of the wrong type); returns None when the file can be read."""
    _events_columns(Path(path))


def read_events(path: str | Path) -> pd.DataFrame:
    """The four required columns, raw (cleaning decides what each value means)."""
    path = Path(path)
    columns = _events_columns(path)
    if _is_parquet(path):
        frame = pq.read_table(path, columns=list(columns.values())).to_pandas()
        frame = frame.rename(columns={v: k for k, v in columns.items()})
    else:
        frame = _read_csv_strings(path, columns, "events file")
    if frame.empty:
        raise InputError(f"events file {path} has a header but no data rows; export the data again")
    return frame


@dataclass(frozen=True)
class Catalogue:
    products: pd.DataFrame  # product_id int64 (unique), category
    duplicates: int         # rows whose product_id repeats an earlier row's (dropped: the first one wins)


def _catalogue_columns(path: Path) -> dict[str, str]:
    _check_file(path, "products file")
    return _csv_columns(path, ("product_id", "category"), "products file")


def check_products_file(path: str | Path) -> None:
    """check_events_file's twin for the optional catalogue (CSV with product_id and category)."""
    _catalogue_columns(Path(path))


def read_catalogue(path: str | Path) -> Catalogue:
    """Product catalogue: product_id and category, one row per product, its duplicate ids counted."""
    path = Path(path)
    columns = _catalogue_columns(path)
    frame = _read_csv_strings(path, columns, "products file")
    frame["category"] = frame["category"].str.strip()
    ids = pd.to_numeric(frame["product_id"].str.strip(), errors="coerce").astype("float64")
    frame = frame.assign(product_id=ids)[ids.notna() & (ids > 0) & (ids % 1 == 0)]
    frame["product_id"] = frame["product_id"].astype("int64")
    frame["category"] = frame["category"].replace("", "unknown")
    repeated = frame["product_id"].duplicated()
    return Catalogue(frame[~repeated].reset_index(drop=True), int(repeated.sum()))


def read_products(path: str | Path) -> pd.DataFrame:
    """The catalogue's rows, one per product (first one wins)."""
    return read_catalogue(path).products
