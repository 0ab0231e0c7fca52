"""The Runs page's history table, the choice of what to publish or roll back to, and held runs."""
from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import streamlit as st

KEY_STATS = ["total_interactions", "unique_users", "unique_products", "sparsity", "one_time_users_pct",
             "retention_rate_pct", "new_products_pct", "mean_interactions_per_user"]
MISSING = "—"  # a value a run does not have (a failed run's counts, a run without a strategy yet)
COUNTS = ("rows read", "rows clean", "users", "products")


def held_reasons(run: dict) -> list[str]:
    """The publish gates a succeeded run failed (runs.held, a JSON list), [] when none. Read defensively:
    a database from before the gates has no such column, and a reader may hand it parsed or as text."""
    held = run.get("held")
    if isinstance(held, str):
        try:
            held = json.loads(held)
        except ValueError:
            return [held]
    return [str(reason) for reason in held] if isinstance(held, list) else []


def _seconds(run: dict) -> str:
    if not run.get("finished_at"):
        return MISSING
    seconds = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["created_at"])).total_seconds()
    return f"{seconds:,.1f}"


def _count(value) -> str:
    return MISSING if value is None else f"{int(value):,}"


def _published(run: dict, current_id: int | None) -> str:
    if run["run_id"] == current_id:
        return "● current"
    if run["published_at"]:
        return "was published"
    return "held" if held_reasons(run) else ""


def history(runs: list[dict], current_id: int | None) -> pd.DataFrame:
    """One row per run, newest first, as text: what a run lacks (a failed run's counts) shows as "—"."""
    table = pd.DataFrame([{
        "run": r["run_id"],
        "status": r["status"],
        "published": _published(r, current_id),
        "created (UTC)": r["created_at"][:19].replace("T", " "),
        "seconds": _seconds(r),
        **{name: _count(r["summary"].get(key)) for name, key in zip(
            COUNTS, ("rows_read", "rows_clean", "users", "products"), strict=True)},
        "strategy": r["params"].get("strategy") or MISSING,
        "source": r["source"] or MISSING,
        "stage": r["stage"] if r["status"] == "running" else "",
        "held because": "; ".join(held_reasons(r)),
        "error": r["error"] or "",
    } for r in runs])
    # A running stage, a held reason or an error column only when some run has one.
    return table.drop(columns=[c for c in ("stage", "held because", "error") if not table[c].astype(bool).any()])


def rollback_target(runs: list[dict], current_id: int | None) -> dict | None:
    """The run published before the current one: what "roll back" goes back to."""
    earlier = [r for r in runs if r["published_at"] and r["status"] == "succeeded" and r["run_id"] != current_id]
    return max(earlier, key=lambda r: r["published_at"]) if earlier else None


def publish_anyway(db: str, run: dict, key: str) -> None:
    """A held run's button: it names the gates the run failed and publishes through the pipeline's own
    `publish` command, as `python -m pipeline publish --run ID` would."""
    from app import retrain
    reasons = "; ".join(held_reasons(run))
    st.caption(f"Run {run['run_id']} is held: {reasons}.")
    if st.button(f"Publish run {run['run_id']} anyway, despite: {reasons}", key=key, icon=":material/warning:"):
        with st.spinner(f"Publishing run {run['run_id']}…"):
            st.session_state["runs_message"] = retrain.publish(db, run["run_id"])
        st.rerun()
