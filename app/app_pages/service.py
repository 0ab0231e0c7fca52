"""Service: the API's /health and /metrics, and the latest stress run."""
import pandas as pd
import streamlit as st

from app import context, data, service
from reports.kpis import format_stat
from reports.tables import stress_cards, stress_endpoints


def cards(pairs: list[tuple[str, str]], per_row: int = 4) -> None:
    for start in range(0, len(pairs), per_row):
        for column, (label, value) in zip(st.columns(per_row), pairs[start:start + per_row]):
            column.metric(label, value, border=True)


def api_section(ctx: context.Context) -> None:
    st.caption(f"API at `{ctx.api_url}` — change it under **Settings** in the sidebar or with `WORKBENCH_API_URL`.")
    health = service.get(ctx.api_url, "/health")
    if health.status is None:
        st.info(f"The API is not reachable: {health.problem}. Start it with `honcho start api` "
                "(or `uvicorn api.main:app`), or point the API URL at where it runs.", icon=":material/cloud_off:")
        return
    if health.problem:
        st.warning(f"The API is up but not ready: {health.problem}", icon=":material/warning:")
        return
    h = health.body
    loaded = str(h.get("loaded_at") or "")
    cards([("Status", str(h.get("status"))), ("Serving run", str(h.get("run_id"))),
           ("Products", f"{h.get('products', 0):,}"), (f"Loaded {loaded[:10]}", loaded[11:19] or "?")])
    if ctx.current_id is not None and h.get("run_id") != ctx.current_id:
        st.warning(f"The API serves run {h.get('run_id')} but run {ctx.current_id} is published; "
                   "it picks the new run up on its next reload.")
    metrics = service.get(ctx.api_url, "/metrics")
    if metrics.problem:
        st.warning(f"/metrics: {metrics.problem}")
        return
    m = metrics.body
    counts = {k: v for k, v in (m.get("counts") or {}).items() if k != "products"}  # products: shown above
    if counts:
        cards([(k.replace("_", " ").capitalize(), f"{v:,}" if isinstance(v, (int, float)) else str(v))
               for k, v in counts.items()])
    left, right = st.columns(2)
    with left:
        st.markdown("**Statistics served**")
        served = m.get("stats") or {}
        st.dataframe(pd.DataFrame({"statistic": list(served), "value": [format_stat(k, v) for k, v in served.items()]}),
                     hide_index=True, width="stretch", height=300)
    with right:
        evaluation = m.get("evaluation")
        st.markdown("**Evaluation**")
        if evaluation:
            st.dataframe(pd.DataFrame(evaluation) if isinstance(evaluation, list) else pd.json_normalize(evaluation),
                         hide_index=True, width="stretch")
        else:
            st.caption("No offline evaluation for this run.")
    with st.expander("Raw /metrics answer"):
        st.json(m, expanded=False)


def stress_section(db: str, problem: str | None) -> None:
    row = None if problem else data.latest_stress_run(db)
    if row is None:
        st.caption("No stress run recorded yet: `python -m stress` stores one in `stress_runs`.")
        return
    st.caption(f"Stress run {row['stress_id']} against run {row['run_id']} · "
               f"{row['started_at']} → {row['finished_at']}")
    cards(stress_cards(row))
    endpoints = stress_endpoints(row)
    if not endpoints.empty:
        st.dataframe(endpoints, hide_index=True, width="stretch")
    if row.get("report_html"):
        st.caption(f"Locust's own report: `{row['report_html']}`")


ctx = context.get()
st.title("Service")
st.subheader("API")
api_section(ctx)
st.subheader("Latest stress run")
stress_section(ctx.db, ctx.problem)
