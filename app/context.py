"""What every page needs to know: the database, the API URL and the chosen run (sidebar settings)."""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime

import streamlit as st

from app import data
from store.errors import WorkbenchError
from store.names import db_path

_KEY = "workbench_context"


def default_api_url() -> str:
    """$WORKBENCH_API_URL, else where the Procfile's api: line listens (port $API_PORT, default 8000)."""
    return os.environ.get("WORKBENCH_API_URL") or f"http://127.0.0.1:{os.environ.get('API_PORT') or 8000}"


@dataclass(frozen=True)
class Context:
    db: str
    api_url: str
    runs: list[dict] = field(default_factory=list)
    run: dict | None = None        # the run chosen in the sidebar (succeeded runs only)
    current_id: int | None = None  # the published run
    problem: str | None = None     # why there is no database to read, when there is none

    @property
    def ref(self) -> data.RunRef | None:
        return None if self.run is None else data.ref(self.db, self.run)

    def run_by_id(self, run_id: int) -> dict | None:
        return next((r for r in self.runs if r["run_id"] == run_id), None)


def run_label(run: dict, current_id: int | None) -> str:
    created = datetime.fromisoformat(run["created_at"]).strftime("%d %b %H:%M")
    mark = " (published)" if run["run_id"] == current_id else ""
    return f"Run {run['run_id']}{mark} · {created}"


def sidebar() -> Context:
    """Draw the settings and the run picker; remember the context for the pages of this rerun."""
    picker = st.sidebar.container()  # the run picker goes above the settings it depends on
    st.session_state.setdefault("db_path", str(db_path()))
    st.session_state.setdefault("api_url", default_api_url())
    with st.sidebar.expander("Settings"):
        db = st.text_input("Database", key="db_path",
                           help="SQLite file of the pipeline's runs (default: $AUDIENCE_DB or data/audiences.db)")
        api_url = st.text_input("API URL", key="api_url",
                                help="Where the Service page finds the API (default: $WORKBENCH_API_URL)")
    try:
        runs = data.runs(db)
        current_id = data.current_run_id(db)
    except (WorkbenchError, sqlite3.Error) as exc:
        problem = str(exc) if isinstance(exc, WorkbenchError) else f"cannot read {db} as a workbench database ({exc})"
        ctx = Context(db, api_url.rstrip("/"), problem=problem)
        st.session_state[_KEY] = ctx
        return ctx
    succeeded = [r for r in runs if r["status"] == "succeeded"]
    chosen = None
    if succeeded:
        ids = [r["run_id"] for r in succeeded]
        default = ids.index(current_id) if current_id in ids else 0
        labels = {r["run_id"]: run_label(r, current_id) for r in succeeded}
        picked = picker.selectbox("Run", ids, index=default, format_func=labels.get,
                                  help="Every page shows this run; the default is the published one.")
        chosen = next(r for r in succeeded if r["run_id"] == picked)
    running = [r for r in runs if r["status"] == "running"]
    if running:
        r = running[0]
        picker.caption(f"⏳ Run {r['run_id']} in progress: {r['stage']} {100 * (r['progress'] or 0):.0f}%")
    picker.caption(f"Database `{db}` · {len(runs)} run(s)")
    ctx = Context(db, api_url.rstrip("/"), runs, chosen, current_id)
    st.session_state[_KEY] = ctx
    return ctx


def get() -> Context:
    return st.session_state[_KEY]


def need_run(ctx: Context) -> bool:
    """Say what to do when there is nothing to show yet; True when the page can go on."""
    if ctx.problem:
        st.info(f"{ctx.problem}. Or start one from the **Retrain** page.", icon=":material/info:")
        return False
    if ctx.run is None:
        st.info("No succeeded run yet: start one from the **Retrain** page or with `python -m pipeline demo`.",
                icon=":material/info:")
        return False
    return True
