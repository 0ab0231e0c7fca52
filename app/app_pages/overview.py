"""Overview: churn and sparsity of the chosen run."""
import streamlit as st

from app import context, data
from reports import figures
from reports.kpis import kpis
from reports.reading import reading

ctx = context.get()
st.title("Overview — churn and sparsity")
if context.need_run(ctx):
    run = ctx.ref
    stats = data.stats(run)
    previous = data.previous_succeeded(ctx.runs, run.run_id)
    before = data.stats(data.ref(ctx.db, previous)) if previous else None
    summary = ctx.run["summary"]
    since = f"changes since run {previous['run_id']}" if previous else "first run, no earlier one to compare"
    st.caption(f"Run {run.run_id} · {ctx.run['source']} · {summary.get('rows_read', 0):,} rows read · {since}")

    cards = kpis(stats, before)
    for row in (cards[:4], cards[4:]):
        for column, kpi in zip(st.columns(4), row):
            column.metric(kpi.label, kpi.value, kpi.delta, delta_color=kpi.delta_color, help=kpi.help, border=True)

    left, right = st.columns(2)
    left.plotly_chart(figures.users_by_interactions(data.chart_table(run, "activity_histogram")),
                      config=figures.PLOT_CONFIG)
    right.plotly_chart(figures.event_mix(stats), config=figures.PLOT_CONFIG)
    left, right = st.columns(2)
    left.plotly_chart(figures.cohort_retention(data.chart_table(run, "cohort_retention")),
                      config=figures.PLOT_CONFIG)
    right.plotly_chart(figures.product_months(data.chart_table(run, "product_months")), config=figures.PLOT_CONFIG)
    st.plotly_chart(figures.daily_interactions(data.chart_table(run, "daily_events")), config=figures.PLOT_CONFIG)

    left, right = st.columns([2, 3])
    with left:
        st.subheader("Data quality")
        st.dataframe(data.data_quality(run), hide_index=True, width="stretch",
                     column_config={"check": "rule", "rows": st.column_config.NumberColumn("rows", format="localized")})
    with right:
        st.subheader("What this means for targeting")
        for paragraph in reading(stats):
            st.markdown(paragraph)
