"""Audiences page helpers: the product picker, the audience table's columns, and the export file's place."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app.data import RunRef, product_ids
from reports.gain import expected_share, reach_table
from reports.words import SOURCE_HELP, sources_text, why_phrases
from store.export import write_export

BROWSER_DOWNLOAD_LIMIT = 250_000_000  # bytes: st.download_button holds the whole file in server memory

TABLE_COLUMNS = {
    "rank": st.column_config.NumberColumn("rank", width="small"),
    "customer_id": st.column_config.NumberColumn("customer", format="%d"),
    "score": st.column_config.NumberColumn("score", format="%.4f"),
    "total_interactions": st.column_config.NumberColumn("interactions"),
    "unique_products": st.column_config.NumberColumn("products"),
    "avg_event_score": st.column_config.NumberColumn("avg event", format="%.2f"),
    "interaction_frequency": st.column_config.NumberColumn("per active day", format="%.2f"),
    "recency_days": st.column_config.NumberColumn("days since last"),
    "engagement_rank": st.column_config.NumberColumn("engagement rank", format="localized"),
    "other_audiences": st.column_config.NumberColumn("other audiences", format="localized",
                                                     help="How many other audiences of this run hold the user"),
    "sources": st.column_config.TextColumn("brought in by", help=SOURCE_HELP),
    "why": st.column_config.TextColumn("why this user", width="large",
                                       help="The user's strongest ties to the product, strongest first"),
}


def table(audience: pd.DataFrame, is_fallback: bool) -> pd.DataFrame:
    """The columns the page shows; 'other audiences' leaves out this one (the fallback is not one, nor is a
    category's audience: pass is_fallback=True). The why columns only when the audience has them."""
    out = audience.copy()
    out["other_audiences"] = out["audience_count"] - (0 if is_fallback else 1)
    return out[[c for c in TABLE_COLUMNS if c in out.columns]]


def with_reasons(audience: pd.DataFrame, records, category: str | None) -> pd.DataFrame:
    """The audience with, per user, the candidate sources and the reasons in words (records: the stored
    facts of the same ranks, store/reasons.py; fewer records than users leaves the rest blank)."""
    out = audience.copy()
    k = min(len(records), len(out))
    recency = out["recency_days"].tolist()
    out["sources"] = [sources_text(int(r["sources"])) for r in records[:k]] + [""] * (len(out) - k)
    out["why"] = ["; ".join(why_phrases(r, category, d)) for r, d in zip(records[:k], recency)] \
        + [""] * (len(out) - k)
    return out


def reach(scores: np.ndarray) -> tuple[float, dict[float, int | None]]:
    """(expected engagements of the whole list, {share: users to target}) of an audience of probabilities."""
    return float(np.clip(scores, 0, None).sum()), reach_table(expected_share(scores))


def slug(text: str) -> str:
    """A category name as a file-name part: letters, digits, - and _ only."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "category"


def random_product(ids: np.ndarray) -> int | None:
    return int(np.random.default_rng().choice(ids)) if len(ids) else None


def top_product_label(row: pd.Series) -> str:
    return f"{row.product_id} · {row.category} · {row.interactions:,} interactions"


def export_path(run: RunRef, compress: bool) -> Path:
    """Where a bulk export goes: data/exports/ next to the database, one file per build."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(run.db).resolve().parent / "exports" / (
        f"audiences-run{run.run_id}-{stamp}.csv" + (".gz" if compress else ""))


SAMPLE_PRODUCTS = 200  # audiences written to measure the bytes per product of a run's export


@st.cache_data(show_spinner=False, max_entries=32)
def export_estimate(run: RunRef, n: int) -> tuple[int, int, int]:
    """(products, plain bytes, gzipped bytes) of exporting every product of the run at top n: measured by
    writing the first SAMPLE_PRODUCTS audiences both ways and scaling by the run's product count."""
    ids = product_ids(run)
    sample = ids[:SAMPLE_PRODUCTS].tolist()
    if not sample:
        return 0, 0, 0
    sizes = []
    with tempfile.TemporaryDirectory() as tmp:
        for compress in (False, True):
            out = write_export(run.db, run.run_id, sample, n, Path(tmp) / f"sample{int(compress)}", compress)
            sizes.append(out.path.stat().st_size)
    return len(ids), *(int(size * len(ids) / len(sample)) for size in sizes)
