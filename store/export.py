"""Audience CSVs (`product_id,rank,customer_id,score`): written by `python -m pipeline export` and the app.

Bulk exports stream chunk by chunk from store.queries.iter_audience_frames into a file, so "all products"
never holds every audience in memory; products the run has not seen get the fallback audience.
"""
from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from store import queries
from store.format import score_texts

HEADER = "product_id,rank,customer_id,score\n"
GZIP_LEVEL = 1  # audiences repeat a lot: level 1 already shrinks them ~10x, at several times level 6's speed
_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass
class Export:
    path: Path
    rows: int
    products: int
    unknown: list[int] = field(default_factory=list)
    kind: str = "products"  # what the file has an audience of: products, or categories


def parse_ids(text: str) -> tuple[list[int], list[str]]:
    """Product ids from pasted text or a one-column file: (ids in order, unique; tokens that are not ids)."""
    tokens = [t for t in _SEPARATORS.split(text) if t and t.lower() != "product_id"]
    bad = [t for t in tokens if not (t.isdigit() and int(t) > 0)]
    ids = list(dict.fromkeys(int(t) for t in tokens if t.isdigit() and int(t) > 0))
    return ids, bad


def audience_csv(product_id: int, audience: pd.DataFrame) -> str:
    """One product's audience (rank, customer_id, score) as the export CSV: the app's download, written by
    the same writer as the bulk export, so both spell every score with store.format."""
    frame = audience[["rank", "customer_id", "score"]].copy()
    frame.insert(0, "product_id", product_id)
    out = io.BytesIO()
    out.write(HEADER.encode())
    _write_rows(out, frame)
    return out.getvalue().decode()


CATEGORY_HEADER = "category,rank,customer_id,score\n"


def _csv_field(text: str) -> str:
    """A text field as CSV writes it: quoted (quotes doubled) only when it holds a comma, quote or newline."""
    return f'"{text.replace(chr(34), 2 * chr(34))}"' if any(c in text for c in ',"\r\n') else text


def category_csv(category: str, audience: pd.DataFrame) -> str:
    """A category's audience as CSV: the product export's layout with the category in the first column and
    every score spelled by store.format, as in the product download."""
    field = _csv_field(str(category))
    scores = score_texts(audience["score"].to_numpy()).to_pylist()
    rows = (f"{field},{rank},{customer},{score}\n" for rank, customer, score in
            zip(audience["rank"].tolist(), audience["customer_id"].tolist(), scores))
    return CATEGORY_HEADER + "".join(rows)


def _write_rows(fh, frame: pd.DataFrame) -> None:
    """Rows without a header, through pyarrow's CSV writer (pandas' to_csv is ~10x slower at this size)."""
    table = pa.table({"product_id": frame["product_id"].to_numpy(np.int64), "rank": frame["rank"].to_numpy(np.int64),
                      "customer_id": frame["customer_id"].to_numpy(np.int64),
                      "score": score_texts(frame["score"].to_numpy())})
    pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def _fallback_rows(unknown: list[int], fallback: pd.DataFrame) -> pd.DataFrame:
    """The fallback audience under each unknown product id, built with repeat/tile (no loop)."""
    size = len(fallback)
    return pd.DataFrame({"product_id": np.repeat(np.asarray(unknown, dtype=np.int64), size),
                         "rank": np.tile(fallback["rank"].to_numpy(), len(unknown)),
                         "customer_id": np.tile(fallback["customer_id"].to_numpy(), len(unknown)),
                         "score": np.tile(fallback["score"].to_numpy(), len(unknown))})


def _in_given_order(con, run_id: int, product_ids: list[int], n: int, known: np.ndarray,
                    fallback: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The audiences of a list of products in the order the ids were given (a product the run lacks gets
    the fallback audience in its place), 900 ids at a time so memory stays bounded."""
    for start in range(0, len(product_ids), 900):
        chunk = np.asarray(product_ids[start:start + 900], dtype=np.int64)
        found = list(queries.iter_audience_frames(con, run_id, chunk.tolist(), n))
        missing = chunk[~np.isin(chunk, known)].tolist()
        frame = pd.concat([*found, _fallback_rows(missing, fallback)], ignore_index=True)
        position = pd.Series(np.arange(chunk.size), index=chunk)[frame["product_id"]].to_numpy()
        yield frame.iloc[np.argsort(position, kind="stable")]  # stable: ranks stay in order


def write_export(db: str, run_id: int, product_ids: list[int] | None, n: int, out: Path,
                 compress: bool = False) -> Export:
    """Stream the audiences of these products (None: every product of the run) to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, seen = 0, []
    con = queries.connect(db)
    try:
        with (gzip.open(out, "wb", compresslevel=GZIP_LEVEL) if compress else open(out, "wb")) as fh:
            fh.write(HEADER.encode())
            if product_ids is None:
                frames, unknown = queries.iter_audience_frames(con, run_id, None, n), []
            else:
                ordered = list(dict.fromkeys(int(p) for p in product_ids))  # a repeated id: once, first place
                known = queries.product_ids(con, run_id)
                unknown = np.asarray(ordered, dtype=np.int64)[~np.isin(ordered, known)].tolist()
                frames = _in_given_order(con, run_id, ordered, n, known, queries.fallback(con, run_id, n))
            for frame in frames:
                _write_rows(fh, frame)
                seen.append(frame["product_id"].unique())
                rows += len(frame)
    finally:
        con.close()
    products = int(sum(len(s) for s in seen))  # a product's rows come in one frame
    return Export(out, rows, products, unknown)


def write_category_export(db: str, run_id: int, n: int, out: Path, compress: bool = False) -> Export:
    """Every category's audience (top n) in one CSV, `category,rank,customer_id,score`, categories by name.
    A run has at most a few thousand categories: each is read and written whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    con = queries.connect(db)
    try:
        names = queries.categories(con, run_id)
        with (gzip.open(out, "wb", compresslevel=GZIP_LEVEL) if compress else open(out, "wb")) as fh:
            fh.write(CATEGORY_HEADER.encode())
            for name in names:
                audience = queries.category_audience(con, run_id, name, n)
                fh.write(category_csv(name, audience)[len(CATEGORY_HEADER):].encode())
                rows += len(audience)
    finally:
        con.close()
    return Export(out, rows, len(names), kind="categories")
