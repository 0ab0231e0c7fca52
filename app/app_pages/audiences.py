"""Audiences: one product's audience and why, bulk export, and user lookup."""
from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from app import audiences as helpers
from app import context, data
from app.service import size_text
from reports import figures
from reports.gain import reach_table
from reports.model_figures import gain_figure, holdout_gain_figure
from reports.words import (
    EXPECTED_TEXT,
    GAIN_TEXT,
    NO_CATEGORIES,
    NO_GAIN,
    NO_REASONS,
    NO_REASONS_CATEGORY,
    NOT_PROBABILITIES,
)
from store.export import audience_csv, category_csv, parse_ids, write_category_export, write_export

PICKERS = ["Most active", "By id", "Random", "Category"]
SOURCES = ["Paste ids", "Upload a list", "All products", "All categories"]


def pick_product(run: data.RunRef, how: str) -> int | None:
    if how == "Most active":
        top = data.chart_table(run, "top_products")
        labels = {row.product_id: helpers.top_product_label(row) for row in top.itertuples()}
        return st.selectbox("Product", list(labels), format_func=labels.get, key="pick_top")
    if how == "By id":
        return st.number_input("Product id", min_value=1, step=1, value=None, placeholder="type a product id",
                               key="pick_id")
    drawn = st.session_state.get("pick_random")
    if st.button("Draw a random product", icon=":material/casino:") or drawn is None or drawn[0] != run:
        st.session_state["pick_random"] = drawn = (run, helpers.random_product(data.product_ids(run)))
    st.markdown(f"Drawn: **product {drawn[1]}**")
    return drawn[1]


def pick_category(run: data.RunRef) -> str | None:
    names = data.categories(run)
    if not names:
        st.info(NO_CATEGORIES, icon=":material/category:")
        return None
    return st.selectbox("Category", names, key="pick_category")


def gain_section(run: data.RunRef, strategy: str, scores, n: int) -> None:
    """Expected engagements (a propensity run's scores are probabilities) and the gain curve of the list,
    with the strategy's curve measured on the holdout; a message when the run has neither."""
    holdout = data.gain(run)
    mine = holdout[holdout["strategy"] == strategy]
    if strategy == "propensity" and len(scores):
        total, marks = helpers.reach(scores)
        cards = [("Expected engagements, top N", f"{float(sum(scores[:n])):.2f}", EXPECTED_TEXT),
                 (f"Expected, whole list ({len(scores)})", f"{total:.2f}", EXPECTED_TEXT)]
        source = "expected"
    elif not mine.empty:
        st.caption(NOT_PROBABILITIES.format(strategy=strategy))
        cards, marks, source = [], reach_table(mine["share_of_list"].to_numpy()), "holdout"
    else:
        st.info(NO_GAIN, icon=":material/info:")
        return
    cards += [(f"Users for {share:.0%}", "—" if users is None else f"{users:,}",
               f"Target the top N to reach {share:.0%} of what this list can capture ({source}). {GAIN_TEXT}")
              for share, users in marks.items()]
    for column, (label, value, help_text) in zip(st.columns(len(cards)), cards):
        column.metric(label, value, help=help_text, border=True)
    if source == "expected":
        st.plotly_chart(gain_figure(scores, mine), config=figures.PLOT_CONFIG)
        if mine.empty:
            st.caption(NO_GAIN)
    else:
        st.plotly_chart(holdout_gain_figure(mine, strategy, of_list=True), config=figures.PLOT_CONFIG)


def show_audience(run: data.RunRef, product_id: int, n: int, depth: int, weights: dict, strategy: str) -> None:
    audience, is_fallback = data.audience(run, product_id, n)
    if is_fallback:
        st.warning(f"Product {product_id} is not in run {run.run_id} (a new or unknown product), so this is the "
                   f"**fallback audience**: the {n} most engaged users, with nobody left out.",
                   icon=":material/new_releases:")
    else:
        info = data.product(run, product_id) or {}
        st.caption(f"Product {product_id} · category {info.get('category', '?')} · "
                   f"{info.get('interactions', 0):,} interactions by {info.get('users', 0):,} users · "
                   f"seen {str(info.get('first_seen', ''))[:10]} → {str(info.get('last_seen', ''))[:10]}")
        records = data.reasons(run, product_id, n)
        if len(records):
            audience = helpers.with_reasons(audience, records, info.get("category"))
    st.dataframe(helpers.table(audience, is_fallback), hide_index=True, width="stretch",
                 column_config=helpers.TABLE_COLUMNS, height=min(38 + 35 * len(audience), 420))
    if not is_fallback and "why" not in audience.columns:
        st.caption(NO_REASONS.format(strategy=strategy))
    st.download_button("Download this audience (CSV)", audience_csv(product_id, audience),
                       file_name=f"audience-{product_id}-run{run.run_id}.csv", mime="text/csv",
                       icon=":material/download:", key="download_audience")
    if not is_fallback:
        gain_section(run, strategy, data.audience(run, product_id, depth)[0]["score"].to_numpy(), n)
    if strategy != "engagement" and not is_fallback:
        st.caption(f"This run ranks with the **{strategy}** strategy: the table's score is its score. The chart "
                   "splits each user's engagement score, the signals every strategy falls back on.")
    st.plotly_chart(figures.score_components(audience, weights), config=figures.PLOT_CONFIG)


def show_category(run: data.RunRef, category: str, n: int, depth: int, weights: dict, strategy: str) -> None:
    audience = data.category_audience(run, category, n)
    st.caption(f"Category **{category}**: the audience of a new product of this category, what the API serves "
               "for a catalogue product the events never saw.")
    st.dataframe(helpers.table(audience, True), hide_index=True, width="stretch",
                 column_config=helpers.TABLE_COLUMNS, height=min(38 + 35 * len(audience), 420))
    st.caption(NO_REASONS_CATEGORY)
    st.download_button("Download this audience (CSV)", category_csv(category, audience),
                       file_name=f"audience-category-{helpers.slug(category)}-run{run.run_id}.csv", mime="text/csv",
                       icon=":material/download:", key="download_category")
    gain_section(run, strategy, data.category_audience(run, category, depth)["score"].to_numpy(), n)
    st.plotly_chart(figures.score_components(audience, weights), config=figures.PLOT_CONFIG)


def audience_tab(run: data.RunRef, depth: int, weights: dict, strategy: str) -> None:
    left, right = st.columns([3, 1])
    with left:
        how = st.segmented_control("Choose a product or a category", PICKERS, default=PICKERS[0],
                                   key="pick_how") or PICKERS[0]
        choice = pick_category(run) if how == "Category" else pick_product(run, how)
    with right:
        n = st.number_input("Audience size N", min_value=1, max_value=depth, value=min(20, depth), step=1,
                            key="audience_n", help=f"At most the run's depth ({depth})")
    if choice is None:
        return
    if how == "Category":
        show_category(run, str(choice), int(n), depth, weights, strategy)
    else:
        show_audience(run, int(choice), int(n), depth, weights, strategy)


def wanted_products(source: str) -> tuple[list[int] | None, list[str]]:
    """(product ids, tokens that are not ids); None means every product (or category) of the run."""
    if source in ("All products", "All categories"):
        return None, []
    if source == "Paste ids":
        return parse_ids(st.text_area("Product ids", placeholder="12, 345, 6789 — commas, spaces or new lines",
                                      key="export_text"))
    upload = st.file_uploader("A list of product ids: one per line, or a CSV whose first column is product_id",
                              type=["txt", "csv"], key="export_file")
    if upload is None:
        return [], []
    first_fields = "\n".join(line.split(",")[0] for line in upload.getvalue().decode(errors="replace").splitlines())
    return parse_ids(first_fields)


def export_tab(run: data.RunRef, depth: int) -> None:
    st.markdown("One CSV `product_id,rank,customer_id,score`, written chunk by chunk on the server. "
                "Products the run has not seen get the fallback audience. Command line: "
                "`python -m pipeline export --all --out FILE.csv`. All categories: the same layout with "
                "`category` first.")
    source = st.radio("Products", SOURCES, horizontal=True, key="export_source")
    ids, bad = wanted_products(source)
    left, right = st.columns(2)
    n = left.number_input("Top N of each audience", min_value=1, max_value=depth, value=depth, key="export_n")
    products, plain, gzipped = helpers.export_estimate(run, int(n))
    # No key: the default follows the choice of products (gzip for all of them).
    compress = right.checkbox("gzip the file", value=source == "All products",
                              help=f"All {products:,} products of this run at top {int(n)}: about "
                                   f"{size_text(plain)} as plain CSV, {size_text(gzipped)} gzipped (measured on "
                                   f"{min(products, helpers.SAMPLE_PRODUCTS)} of its audiences)")
    if st.button("Build export", type="primary", icon=":material/file_export:"):
        problem = None
        if bad:
            problem = (f"These are not product ids (positive integers): {', '.join(bad[:5])}"
                       + (" …" if len(bad) > 5 else ""))
        elif ids == []:
            problem = "Give at least one product id (paste them or upload a list), or choose All products."
        elif source == "All categories" and not data.categories(run):
            problem = NO_CATEGORIES
        if problem:
            st.session_state.pop("export", None)  # the last export's success would read as this one's
            st.error(problem)
        else:
            previous = st.session_state.pop("export", None)
            if previous:  # one export file per session: the new one replaces it
                previous[1].path.unlink(missing_ok=True)
            with st.spinner("Writing the export…"):
                path = helpers.export_path(run, compress)
                result = (write_category_export(run.db, run.run_id, int(n), path, compress)
                          if source == "All categories" else write_export(run.db, run.run_id, ids, int(n), path, compress))
            st.session_state["export"] = (run, result)
    made = st.session_state.get("export")
    if made and made[0] == run and made[1].path.is_file():
        result = made[1]
        st.success(f"{result.rows:,} rows for {result.products:,} {result.kind} · {size_text(result.path.stat().st_size)}"
                   f" · saved on the server as `{result.path}`")
        if result.unknown:
            st.warning(f"{len(result.unknown):,} product(s) not in run {run.run_id} got the fallback audience: "
                       + ", ".join(map(str, result.unknown[:10])) + (" …" if len(result.unknown) > 10 else ""))
        if result.path.stat().st_size > helpers.BROWSER_DOWNLOAD_LIMIT:
            st.info("Too large to hand to the browser (Streamlit holds a download in memory): use the file saved on "
                    "the server, or tick gzip and build again.")
        else:
            st.download_button("Download the export", partial(Path.read_bytes, result.path),
                               file_name=result.path.name, icon=":material/download:", key="download_export",
                               mime="application/gzip" if result.path.suffix == ".gz" else "text/csv")


def lookup_tab(run: data.RunRef, weights: dict, n_users: int) -> None:
    customer_id = st.number_input("Customer id", min_value=1, step=1, value=None, placeholder="type a customer id",
                                  key="lookup_id")
    if customer_id is None:
        return
    user = data.user(run, int(customer_id))
    if user is None:
        st.warning(f"Customer {customer_id} has no interaction in run {run.run_id}.", icon=":material/person_off:")
        return
    cards = [(f"Engagement rank (of {n_users:,})", f"{user['engagement_rank']:,}"),
             ("Engagement score", f"{user['engagement_score']:.4f}"), ("Audiences", f"{user['audience_count']:,}"),
             ("Days since last", f"{user['recency_days']:,}"), ("Interactions", f"{user['total_interactions']:,}"),
             ("Distinct products", f"{user['unique_products']:,}"), ("Avg event score", f"{user['avg_event_score']:.2f}"),
             ("Per active day", f"{user['interaction_frequency']:.2f}")]
    for row in (cards[:4], cards[4:]):
        for column, (label, value) in zip(st.columns(4), row):
            column.metric(label, value, border=True)
    one = pd.DataFrame([{**user, "rank": user["engagement_rank"]}])
    st.plotly_chart(figures.score_components(one, weights), config=figures.PLOT_CONFIG)
    held = data.user_audiences(run, int(customer_id))
    st.markdown(f"**In {len(held):,} audiences** (product, the user's rank in it)")
    if len(held):
        st.dataframe(held, hide_index=True, width="content", height=min(38 + 35 * len(held), 320))


ctx = context.get()
st.title("Audiences")
if context.need_run(ctx):
    run = ctx.ref
    params = ctx.run["params"]
    depth, weights = int(params.get("depth", 100)), params.get("component_weights", {})
    if not data.has_audiences(run):
        st.warning(f"Run {run.run_id}'s audiences were pruned (only the latest runs keep them): pick a newer run.")
    else:
        tab_audience, tab_export, tab_lookup = st.tabs(["Audience", "Bulk export", "User lookup"])
        with tab_audience:
            audience_tab(run, depth, weights, str(params.get("strategy", "engagement")))
        with tab_export:
            export_tab(run, depth)
        with tab_lookup:
            lookup_tab(run, weights, int(ctx.run["summary"].get("users", 0)))
