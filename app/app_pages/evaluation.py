"""Evaluation: every strategy scored on the temporal holdout, the reachable ceiling, and what each number means."""
import streamlit as st

from app import context, data
from reports import figures
from reports.model_figures import calibration_figure, holdout_gain_figure
from reports.tables import calibration_view, certainty_titles, certainty_view, leaderboard, random_lift_is_one
from reports.words import (
    CALIBRATION_TEXT,
    CERTAINTY_TEXT,
    DESCRIPTIONS,
    EXPLANATIONS,
    GAIN_TEXT,
    NO_CALIBRATION,
    NO_CERTAINTY,
    NO_GAIN,
    SHORT_NAMES,
    learned_from_words,
    strategy_title,
)
from store.names import published_label


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.3f}%"


def _value(table, strategy: str, metric: str, k: int) -> float | None:
    rows = table[(table["label"] == strategy) & (table["metric"] == metric) & (table["k"] == k)]
    return None if rows.empty else float(rows["value"].iloc[0])


def headline(table, stats: dict, params: dict, is_current: bool) -> str:
    """Cards for the run's strategy against the ceiling; returns the name its rows go by."""
    strategy = params.get("strategy", "engagement")
    scored_as = published_label(set(table["label"]), params)
    cards = [(strategy_title(is_current), strategy, params.get("strategy_selection")),
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


def leaderboard_section(table, scored_as: str, is_current: bool) -> None:
    k = st.radio("Cut-off k", sorted(table["k"].unique(), reverse=True), horizontal=True,
                 format_func=lambda v: f"top {v}", key="eval_k")
    board = leaderboard(table, k)
    # Short titles and two decimals: every metric fits the page's width; the full name is in the help.
    config = {m: st.column_config.NumberColumn(f"{SHORT_NAMES[m]} %", help=f"{m}: {EXPLANATIONS[m]}", format="%.2f")
              for m in board.columns if m in EXPLANATIONS and m != "lift_over_random"}
    config["lift_over_random"] = st.column_config.NumberColumn(
        SHORT_NAMES["lift_over_random"], format="%.1f",
        help=f"lift_over_random: {EXPLANATIONS['lift_over_random']} random is 1× by definition.")
    config["strategy"] = st.column_config.TextColumn("strategy", help="(cap K): the same strategy under the "
                                                     "exposure cap of K audiences per user")
    mark = "★" if is_current else "☆"
    board["strategy"] = [f"{s} {mark}" if s == scored_as else s for s in board["strategy"]]
    st.dataframe(board, hide_index=True, width="stretch", column_config=config)
    st.caption(f"{mark} {strategy_title(is_current).lower()}. Sorted by recall@{k}; shares in percent; "
               "random's lift is 1× by definition.")
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.recall_vs_coverage(table, k, scored_as), config=figures.PLOT_CONFIG)
    right.plotly_chart(figures.lift_over_random(table), config=figures.PLOT_CONFIG)
    certainty_section(table, scored_as)


def certainty_section(table, scored_as: str) -> None:
    """Each strategy's recall@100 against the run's strategy with 95% intervals: is the lead real?"""
    st.subheader("How sure is it? Recall@100 with 95% intervals")
    certain = certainty_view(table, scored_as)
    if certain.empty:
        st.info(NO_CERTAINTY, icon=":material/info:")
        return
    left, right = st.columns([4, 5])  # the table's six columns fit without scrolling
    left.plotly_chart(figures.recall_certainty(certain, scored_as), config=figures.PLOT_CONFIG)
    titles = certainty_titles(scored_as)
    right.dataframe(certain, hide_index=True, key="certainty_table", column_config={
        column: st.column_config.NumberColumn(titles[column], format="%+.3f" if column == "versus_run" else "%.3f")
        for column in ("recall", "recall_pm", "versus_run", "versus_run_pm")})
    right.caption(CERTAINTY_TEXT)


def model_section(run, scored_as: str, stats: dict) -> None:
    """Calibration of the propensity scores and every strategy's gain on the holdout, or why they are missing."""
    st.subheader("Are the propensity scores probabilities? Calibration on the holdout")
    table = data.calibration(run)
    if table.empty:
        st.info(NO_CALIBRATION, icon=":material/info:")
    else:
        left, right = st.columns([3, 2])
        left.plotly_chart(calibration_figure(table), config=figures.PLOT_CONFIG)
        right.dataframe(calibration_view(table), hide_index=True, key="calibration_table", column_config={
                            "expected": st.column_config.NumberColumn(format="%.1f"),
                            "chance_low": st.column_config.NumberColumn("chance from", format="%d"),
                            "chance_high": st.column_config.NumberColumn("chance to", format="%d"),
                            "within_chance": st.column_config.CheckboxColumn("within chance"),
                            "observed_over_expected": st.column_config.NumberColumn("observed ÷ expected",
                                                                                    format="%.2f")})
        right.caption(CALIBRATION_TEXT)
        if learned := learned_from_words(stats):
            right.caption(learned)
    st.subheader("Gain: how many users to target")
    gain = data.gain(run)
    if gain.empty:
        st.info(NO_GAIN, icon=":material/info:")
    else:
        st.plotly_chart(holdout_gain_figure(gain, scored_as.split(" (cap")[0]), config=figures.PLOT_CONFIG)
        st.caption(GAIN_TEXT + " Here as the share of all the products' later engagements (the recall at N); "
                   "the Audiences page shows it for one list.")


def explanations(strategy: str | None, is_current: bool) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("What the numbers mean")
        st.markdown("\n".join(f"- **{m}**: {text}" for m, text in EXPLANATIONS.items()))
    with right:
        st.subheader("The strategies")
        for name, text in DESCRIPTIONS.items():
            mark = f" — {strategy_title(is_current).lower()}" if name == strategy else ""
            st.markdown(f"**{name}**{mark}: {text}")


ctx = context.get()
st.title("Evaluation — honest scores on the temporal holdout")
if context.need_run(ctx):
    run = ctx.ref
    params = ctx.run["params"]
    table = data.evaluation(run)
    is_current = run.run_id == ctx.current_id
    if table.empty:
        st.info("This run has no offline evaluation: it ran with `--holdout 0`, or no product was seen both "
                "before and after the split. Run again with a holdout (default 0.2) to score the strategies.",
                icon=":material/info:")
        explanations(params.get("strategy"), is_current)
    else:
        table = random_lift_is_one(table)
        stats = data.stats(run)
        scored_as = headline(table, stats, params, is_current)
        leaderboard_section(table, scored_as, is_current)
        model_section(run, scored_as, stats)
        explanations(params.get("strategy"), is_current)
