"""Audiences page helpers: the product picker, the audience table's columns, and the export file's place."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app.data import RunRef

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
}


def table(audience: pd.DataFrame, is_fallback: bool) -> pd.DataFrame:
    """The columns the page shows; 'other audiences' leaves out this one (the fallback is not one)."""
    out = audience.copy()
    out["other_audiences"] = out["audience_count"] - (0 if is_fallback else 1)
    return out[list(TABLE_COLUMNS)]


def random_product(ids: np.ndarray) -> int | None:
    return int(np.random.default_rng().choice(ids)) if len(ids) else None


def top_product_label(row: pd.Series) -> str:
    return f"{row.product_id} · {row.category} · {row.interactions:,} interactions"


def export_path(run: RunRef, compress: bool) -> Path:
    """Where a bulk export goes: data/exports/ next to the database, one file per build."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(run.db).resolve().parent / "exports" / (
        f"audiences-run{run.run_id}-{stamp}.csv" + (".gz" if compress else ""))
