"""Cached readers for the pages: every loader wraps store.queries and is keyed by the run.

A `RunRef` names a run by database path, run id and creation time, so a database rebuilt under the same
path (run ids start again at 1) never serves another run's cached figures. A succeeded run's tables do
not change, so they are cached without expiry; the runs list itself is read fresh on every rerun.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from store import queries
from store.names import COMPONENT_COLUMNS

FEATURE_COLUMNS = ["customer_id", "total_interactions", "unique_products", "avg_event_score",
                   "interaction_frequency", "recency_days", "engagement_score", "engagement_rank",
                   "audience_count", *COMPONENT_COLUMNS.values()]


class RunRef(NamedTuple):
    db: str
    run_id: int
    created_at: str


@contextmanager
def connection(db: str) -> Iterator:
    con = queries.connect(db)
    try:
        yield con
    finally:
        con.close()


def runs(db: str) -> list[dict]:
    """Every run, newest first (not cached: a handful of rows that change while a run goes)."""
    with connection(db) as con:
        return queries.runs(con)


def current_run_id(db: str) -> int | None:
    with connection(db) as con:
        return queries.current_run_id(con)


def ref(db: str, run: dict) -> RunRef:
    return RunRef(db, int(run["run_id"]), str(run["created_at"]))


previous_succeeded = queries.previous_succeeded  # the baseline of "change since the previous run"


@st.cache_data(show_spinner="Loading run statistics…", max_entries=64)
def stats(run: RunRef) -> dict[str, float]:
    with connection(run.db) as con:
        return queries.stats(con, run.run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def data_quality(run: RunRef) -> pd.DataFrame:
    with connection(run.db) as con:
        return queries.data_quality(con, run.run_id)


@st.cache_data(show_spinner="Loading charts…", max_entries=128)
def chart_table(run: RunRef, name: str) -> pd.DataFrame:
    with connection(run.db) as con:
        return queries.chart_table(con, name, run.run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def evaluation(run: RunRef) -> pd.DataFrame:
    with connection(run.db) as con:
        return queries.evaluation(con, run.run_id)


def has_audiences(run: RunRef) -> bool:
    """Not cached: older runs lose their audiences when newer runs are written (store.writer.prune_runs)."""
    with connection(run.db) as con:
        return queries.has_audiences(con, run.run_id)


@st.cache_data(show_spinner="Loading the run's products…", max_entries=8)
def product_ids(run: RunRef) -> np.ndarray:
    with connection(run.db) as con:
        return queries.product_ids(con, run.run_id)


@st.cache_data(show_spinner=False, max_entries=1024)
def product(run: RunRef, product_id: int) -> dict | None:
    with connection(run.db) as con:
        return queries.product(con, run.run_id, product_id)


def _with_features(con, run_id: int, ranked: pd.DataFrame) -> pd.DataFrame:
    features = queries.user_features(con, run_id, ranked["customer_id"].tolist())
    if features.empty:
        features = pd.DataFrame(columns=FEATURE_COLUMNS)
    return ranked.merge(features[FEATURE_COLUMNS], on="customer_id", how="left").sort_values("rank")


@st.cache_data(show_spinner="Loading the audience…", max_entries=256)
def audience(run: RunRef, product_id: int, n: int) -> tuple[pd.DataFrame, bool]:
    """(audience with each user's features, is_fallback): an unseen product gets the fallback audience."""
    with connection(run.db) as con:
        ranked = queries.audience(con, run.run_id, product_id, n)
        is_fallback = ranked.empty
        if is_fallback:
            ranked = queries.fallback(con, run.run_id, n)
        return _with_features(con, run.run_id, ranked).reset_index(drop=True), is_fallback


@st.cache_data(show_spinner=False, max_entries=256)
def user(run: RunRef, customer_id: int) -> dict | None:
    with connection(run.db) as con:
        return queries.user(con, run.run_id, customer_id)


@st.cache_data(show_spinner="Searching the run's audiences…", max_entries=64)
def user_audiences(run: RunRef, customer_id: int) -> pd.DataFrame:
    with connection(run.db) as con:
        return queries.user_audiences(con, run.run_id, customer_id)


def latest_stress_run(db: str) -> dict | None:
    with connection(db) as con:
        return queries.latest_stress_run(con)


@st.cache_data(show_spinner="Comparing audiences…", max_entries=16)
def audience_overlap(run_a: RunRef, run_b: RunRef) -> list:
    from app.compare import audience_overlap as overlap
    with connection(run_a.db) as con:
        return overlap(con, run_a.run_id, run_b.run_id)


@st.cache_data(show_spinner="Comparing engagement scores…", max_entries=16)
def score_agreement(run_a: RunRef, run_b: RunRef):
    from app.compare import score_agreement as agreement
    with connection(run_a.db) as con:
        return agreement(con, run_a.run_id, run_b.run_id)


# --- The propensity model's tables: calibration, gain, "why this user", category audiences --------------

@st.cache_data(show_spinner=False, max_entries=64)
def calibration(run: RunRef) -> pd.DataFrame:
    with connection(run.db) as con:
        return queries.calibration(con, run.run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def gain(run: RunRef) -> pd.DataFrame:
    """Every strategy's holdout gain curve (empty: the run stored none)."""
    with connection(run.db) as con:
        return queries.gain(con, run.run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def has_reasons(run: RunRef) -> bool:
    with connection(run.db) as con:
        return queries.has_reasons(con, run.run_id)


@st.cache_data(show_spinner=False, max_entries=256)
def reasons(run: RunRef, product_id: int, n: int) -> np.ndarray:
    """The packed "why this user" records of a product's top n (store/reasons.py); empty when none."""
    with connection(run.db) as con:
        return queries.reasons(con, run.run_id, product_id, n)


@st.cache_data(show_spinner=False, max_entries=64)
def categories(run: RunRef) -> list[str]:
    with connection(run.db) as con:
        return queries.categories(con, run.run_id)


@st.cache_data(show_spinner="Loading the category's audience…", max_entries=256)
def category_audience(run: RunRef, category: str, n: int) -> pd.DataFrame:
    """A category's audience with each user's features (empty: the run has none for it)."""
    with connection(run.db) as con:
        ranked = queries.category_audience(con, run.run_id, category, n)
        return _with_features(con, run.run_id, ranked).reset_index(drop=True)
