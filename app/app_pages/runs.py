"""Runs: history, publish or roll back, and a comparison of two runs."""
import math

import streamlit as st

from app import context, data, retrain, service
from app.compare import stat_deltas
from app.runs import KEY_STATS, held_reasons, history, publish_anyway, rollback_target
from reports import figures
from reports.tables import formatted_deltas


def publish_controls(ctx: context.Context) -> None:
    candidates = [r for r in ctx.runs if r["status"] == "succeeded" and r["run_id"] != ctx.current_id
                  and data.has_audiences(data.ref(ctx.db, r))]
    back = rollback_target(ctx.runs, ctx.current_id)
    left, right = st.columns(2)
    with left:
        if candidates:
            pick = st.selectbox("Publish a run", [r["run_id"] for r in candidates], key="runs_publish_pick",
                                format_func=lambda i: context.run_label(ctx.run_by_id(i), ctx.current_id)
                                + (" · held" if held_reasons(ctx.run_by_id(i)) else ""))
            if held_reasons(ctx.run_by_id(pick)):
                publish_anyway(ctx.db, ctx.run_by_id(pick), key="runs_publish_anyway")
            elif st.button(f"Publish run {pick}", type="primary", icon=":material/publish:"):
                _publish(ctx.db, pick)
        else:
            st.caption("No other succeeded run with audiences to publish.")
    with right:
        if back and data.has_audiences(data.ref(ctx.db, back)):
            st.write(f"Roll back to run {back['run_id']}, published before the current one.")
            if st.button(f"Roll back to run {back['run_id']}", icon=":material/undo:"):
                _publish(ctx.db, back["run_id"])
        else:
            st.caption("Nothing to roll back to: no earlier published run with audiences.")
    if "runs_message" in st.session_state:
        ok, message = st.session_state.pop("runs_message")
        (st.success if ok else st.error)(message)


def _publish(db: str, run_id: int) -> None:
    with st.spinner(f"Publishing run {run_id}…"):
        st.session_state["runs_message"] = retrain.publish(db, run_id)
    st.rerun()


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def compare(ctx: context.Context) -> None:
    succeeded = [r for r in ctx.runs if r["status"] == "succeeded"]
    if len(succeeded) < 2:
        st.caption("Comparing needs two succeeded runs.")
        return
    ids = [r["run_id"] for r in succeeded]
    label = lambda i: context.run_label(ctx.run_by_id(i), ctx.current_id)  # noqa: E731
    left, right = st.columns(2)
    b = right.selectbox("Run B", ids, index=ids.index(ctx.run["run_id"]) if ctx.run else 0, format_func=label,
                        key="cmp_b")
    others = [i for i in ids if i != b]
    a = left.selectbox("Run A (baseline)", others, format_func=label, key="cmp_a",
                       index=next((n for n, i in enumerate(others) if i < b), 0))
    ref_a, ref_b = data.ref(ctx.db, ctx.run_by_id(a)), data.ref(ctx.db, ctx.run_by_id(b))
    deltas = stat_deltas(data.stats(ref_a), data.stats(ref_b))
    shown = formatted_deltas(deltas)
    st.dataframe(shown[deltas["statistic"].isin(KEY_STATS)], hide_index=True, width="stretch")
    with st.expander("Every statistic"):
        st.dataframe(shown, hide_index=True, width="stretch")
    if not (data.has_audiences(ref_a) and data.has_audiences(ref_b)):
        st.info("One of these runs' audiences and user features were pruned, so only the statistics compare.")
        return
    if not st.toggle("Compare audiences and engagement scores", key="cmp_deep",
                     help="Reads both runs' audiences: a few seconds on a 500K-row run, then cached"):
        return
    overlap = data.audience_overlap(ref_a, ref_b)
    agreement = data.score_agreement(ref_a, ref_b)
    cards = [(f"Mean Jaccard@{o.k}", _number(o.mean_jaccard), f"over {o.products:,} common products")
             for o in overlap]
    cards.append(("Spearman ρ of engagement scores", _number(agreement.spearman),
                  f"over {agreement.users:,} common users"))
    for column, (title, value, note) in zip(st.columns(len(cards)), cards, strict=True):
        column.metric(title, value, border=True)
        column.caption(note)
    st.plotly_chart(figures.score_agreement(agreement.sample, f"run {a}", f"run {b}"), config=figures.PLOT_CONFIG)


ctx = context.get()
st.title("Runs")
if ctx.problem:
    context.need_run(ctx)
elif not ctx.runs:
    st.info("No run yet: start one from the **Retrain** page.")
else:
    # Text cells ("—" where a run has no value); wide sources and errors scroll inside the table.
    st.dataframe(history(ctx.runs, ctx.current_id), hide_index=True, width="stretch",
                 column_config={"source": st.column_config.TextColumn("source", width="medium"),
                                "error": st.column_config.TextColumn("error", width="large"),
                                "held because": st.column_config.TextColumn("held because", width="large")})
    for column, (label, size) in zip(st.columns(4), service.disk_usage(ctx.db)):
        column.metric(label, size, border=True, help="`python -m pipeline gc` removes old exports and uploads")
    st.subheader("Publish or roll back")
    publish_controls(ctx)
    st.subheader("Compare two runs")
    compare(ctx)
