"""Evaluation: every strategy scored on the temporal holdout, the reachable ceiling, and what each number means."""
import streamlit as st

from app import context, data
from pipeline.evaluation.holdout import leaderboard
from pipeline.evaluation.metrics import EXPLANATIONS
from pipeline.strategies import DESCRIPTIONS
from reports import figures
from store.names import published_label


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.3f}%"


def _value(table, strategy: str, metric: str, k: int) -> float | None:
    rows = table[(table["label"] == strategy) & (table["metric"] == metric) & (table["k"] == k)]
    return None if rows.empty else float(rows["value"].iloc[0])


def headline(table, stats: dict, params: dict) -> str:
    """Cards for the published strategy against the ceiling; returns the name its rows go by."""
    strategy = params.get("strategy", "engagement")
    scored_as = published_label(set(table["label"]), params)
    cards = [("Published strategy", strategy, params.get("strategy_selection")),
             ("Its recall@100", _pct(_value(table, scored_as, "recall_micro", 100)),
              EXPLANATIONS["recall_micro"]),
             ("Reachable ceiling@100", _pct(_value(table, scored_as, "reachable_ceiling", 100)),
              EXPLANATIONS["reachable_ceiling"]),
             ("Lift over random@100", f"{_value(table, scored_as, 'lift_over_random', 100) or 0:.1f}×",
              EXPLANATIONS["lift_over_random"])]
    for column, (label, value, help_text) in zip(st.columns(4), cards):
        column.metric(label, value, help=help_text, border=True)
    if stats.get("holdout_products"):
        st.caption(
            f"Fitted on the events before the split ({100 * (1 - params.get('holdout', 0.2)):.0f}% quantile of "
            f"event time), scored on the {int(stats['holdout_products']):,} products seen on both sides over all "
            f"{int(stats['holdout_candidate_users']):,} users known before the split. After it, those products got "
            f"{int(stats['holdout_truth_pairs']):,} product-user engagements; only "
            f"{int(stats['holdout_known_truth_pairs']):,} came from users seen before, which is why the ceiling "
            "is low.")
    return scored_as


def leaderboard_section(table, published: str) -> None:
    k = st.radio("Cut-off k", sorted(table["k"].unique(), reverse=True), horizontal=True,
                 format_func=lambda v: f"top {v}", key="eval_k")
    board = leaderboard(table, k)
    config = {m: st.column_config.NumberColumn(f"{m} (%)", help=EXPLANATIONS[m], format="%.4f")
              for m in board.columns if m in EXPLANATIONS and m != "lift_over_random"}
    config["lift_over_random"] = st.column_config.NumberColumn("lift over random (×)",
                                                               help=EXPLANATIONS["lift_over_random"], format="%.1f")
    config["strategy"] = st.column_config.TextColumn("strategy", help="(cap K): the same strategy under the "
                                                     "exposure cap of K audiences per user")
    board["strategy"] = [f"{s} ★" if s == published else s for s in board["strategy"]]
    st.dataframe(board, hide_index=True, width="stretch", column_config=config)
    st.caption(f"★ published. Sorted by recall_micro@{k}; shares in percent.")
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.recall_vs_coverage(table, k, published), config=figures.PLOT_CONFIG)
    right.plotly_chart(figures.lift_over_random(table), config=figures.PLOT_CONFIG)


def explanations(published: str | None) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("What the numbers mean")
        st.markdown("\n".join(f"- **{m}**: {text}" for m, text in EXPLANATIONS.items()))
    with right:
        st.subheader("The strategies")
        for name, text in DESCRIPTIONS.items():
            st.markdown(f"**{name}**{' — published' if name == published else ''}: {text}")


ctx = context.get()
st.title("Evaluation — honest scores on the temporal holdout")
if context.need_run(ctx):
    run = ctx.ref
    params = ctx.run["params"]
    table = data.evaluation(run)
    if table.empty:
        st.info("This run has no offline evaluation: it ran with `--holdout 0`, or no product was seen both "
                "before and after the split. Run again with a holdout (default 0.2) to score the strategies.",
                icon=":material/info:")
        explanations(params.get("strategy"))
    else:
        scored_as = headline(table, data.stats(run), params)
        leaderboard_section(table, scored_as)
        explanations(params.get("strategy"))
