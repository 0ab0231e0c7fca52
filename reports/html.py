"""A run's report as one self-contained HTML file: plotly.js is inlined, so it opens offline."""
from __future__ import annotations

import html
import json
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from reports import figures
from reports.kpis import kpis
from reports.model_figures import calibration_figure, holdout_gain_figure
from reports.reading import reading
from reports.tables import (
    calibration_view,
    certainty_titles,
    certainty_view,
    random_lift_is_one,
    stat_table,
    stress_cards,
    stress_endpoints,
)
from reports.words import (
    CALIBRATION_TEXT,
    CERTAINTY_TEXT,
    DESCRIPTIONS,
    EXPLANATIONS,
    GAIN_TEXT,
    NO_CALIBRATION,
    NO_CERTAINTY,
    NO_GAIN,
    learned_from_words,
    strategy_title,
)
from store import queries
from store.names import published_label

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2933; background: #f7f8fa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 1px solid #d9dee4; padding-bottom: 6px; }
.meta { color: #52606d; margin-top: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid #d9dee4; border-radius: 8px; padding: 12px 14px; }
.card .label { color: #52606d; font-size: 13px; } .card .value { font-size: 22px; font-weight: 600; }
.card .delta { font-size: 13px; color: #52606d; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.chart { background: #fff; border: 1px solid #d9dee4; border-radius: 8px; padding: 8px; }
table { border-collapse: collapse; background: #fff; font-size: 14px; }
th, td { border: 1px solid #d9dee4; padding: 4px 10px; text-align: right; }
th { background: #eef1f4; } td:first-child, th:first-child { text-align: left; }
.wide { overflow-x: auto; }
pre { background: #fff; border: 1px solid #d9dee4; padding: 12px; overflow-x: auto; }
.note { color: #52606d; font-style: italic; }
"""


def _chart(fig: go.Figure) -> str:
    inner = fig.to_html(full_html=False, include_plotlyjs=False, config=figures.PLOT_CONFIG)
    return f'<div class="chart">{inner}</div>'


def _table(frame: pd.DataFrame, float_format: str = "{:,.4f}") -> str:
    return '<div class="wide">' + frame.to_html(index=False, border=0, float_format=float_format.format,
                                                na_rep="") + "</div>"


def _cards(pairs: list[tuple[str, str, str | None]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{html.escape(label)}</div><div class="value">{html.escape(value)}</div>'
        + (f'<div class="delta">{html.escape(delta)}</div>' if delta else "") + "</div>"
        for label, value, delta in pairs) + "</div>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>'


def _stamp(iso: str) -> str:
    return iso[:19].replace("T", " ") + " UTC"


def _previous_stats(con, all_runs: list[dict], run_id: int) -> tuple[int | None, dict | None]:
    previous = queries.previous_succeeded(all_runs, run_id)
    return (previous["run_id"], queries.stats(con, previous["run_id"])) if previous else (None, None)


def _overview(con, run: dict, stats: dict, all_runs: list[dict]) -> str:
    previous_id, before = _previous_stats(con, all_runs, run["run_id"])
    cards = _cards([(k.label, k.value, f"{k.delta} since run {previous_id}" if k.delta else None)
                    for k in kpis(stats, before)])
    summary = run["summary"]
    published = f"published {_stamp(run['published_at'])}" if run["published_at"] else "not published"
    facts = (f'<p class="meta">Source: {html.escape(str(run["source"]))} · created {_stamp(run["created_at"])} · '
             f'{summary.get("rows_read", 0):,} rows read, {summary.get("rows_clean", 0):,} clean · {published}</p>')
    return _section("summary", "Summary", facts + cards)


def _charts(con, run_id: int, stats: dict) -> str:
    table = lambda name: queries.chart_table(con, name, run_id)  # noqa: E731
    pairs = [(figures.users_by_interactions(table("activity_histogram")), figures.event_mix(stats)),
             (figures.cohort_retention(table("cohort_retention")), figures.product_months(table("product_months")))]
    body = "".join(f'<div class="grid">{_chart(a)}{_chart(b)}</div>' for a, b in pairs)
    body += _chart(figures.daily_interactions(table("daily_events")))
    body += _chart(figures.top_products(table("top_products")))
    return _section("charts", "Churn and sparsity", body)


def _quality(con, run: dict) -> str:
    checks = queries.data_quality(con, run["run_id"])
    shown = checks.assign(rows=checks["rows"].map("{:,}".format))
    body = f'<div class="grid"><div>{_table(shown)}</div>{_chart(figures.data_quality(checks))}</div>'
    seconds = run["summary"].get("seconds") or {}
    if seconds:
        body += _chart(figures.stage_seconds(seconds))
    return _section("data-quality", "Data quality", body)


def _evaluation(con, run_id: int) -> str:
    table = queries.evaluation(con, run_id)
    if not table.empty:
        table = random_lift_is_one(table)
    if table.empty:
        return _section("evaluation", "Evaluation", '<p class="note">No offline evaluation stored for this run.</p>')
    scores = table[~table["metric"].str.endswith("_se")]  # the standard errors have a section of their own
    wide = scores.pivot_table(index=["label", "k"], columns="metric", values="value").reset_index()
    wide = wide.rename(columns={"label": "strategy"})
    wide.columns.name = None
    published = published_label(set(table["label"]), queries.run(con, run_id)["params"])
    charts = (_chart(figures.evaluation(scores)) + _chart(figures.recall_vs_coverage(table, published=published))
              + _chart(figures.lift_over_random(table)))
    return _section("evaluation", "Evaluation", charts + _table(wide, "{:.4g}") + _certainty(table, published)
                    + _evaluation_reading(con, run_id, table))


def _certainty(table: pd.DataFrame, published: str) -> str:
    """Recall@100 against the published strategy with 95% intervals (the app's "How sure is it?")."""
    certain = certainty_view(table, published)
    if certain.empty:
        return f'<p class="note">{html.escape(NO_CERTAINTY)}</p>'
    shown = certain.rename(columns=certainty_titles(published))
    return (f'<h3>How sure is it? Recall@100 with 95% intervals</h3><div class="grid">'
            f'{_chart(figures.recall_certainty(certain, published))}<div>{_table(shown, "{:.3f}")}'
            f'<p class="note">{html.escape(CERTAINTY_TEXT)}</p></div></div>')


def _evaluation_reading(con, run_id: int, table: pd.DataFrame) -> str:
    """The published strategy against the reachable ceiling, recall against reach, and every metric and
    strategy in plain words (the app's Evaluation page says the same)."""
    params = queries.run(con, run_id)["params"]
    stats = queries.stats(con, run_id)
    at100 = table[table["k"] == 100].pivot_table(index="label", columns="metric", values="value")
    at100.index.name = "strategy"
    needed = ["recall_micro", "user_coverage", "exposure_gini", "lift_over_random", "reachable_ceiling"]
    body = ""
    if set(needed) <= set(at100.columns):
        ceiling = float(at100["reachable_ceiling"].max())
        published = published_label(set(table["label"]), params)
        selection = params.get("strategy_selection")
        title = strategy_title(queries.current_run_id(con) == run_id)
        facts = (f"{title}: <strong>{html.escape(str(published))}</strong>"
                 + (f" ({html.escape(str(selection))})" if selection else "") + ". "
                 f"Reachable ceiling at k = 100: <strong>{ceiling:.3%}</strong> of the late engagements: the rest "
                 "came from users nobody had seen before the split.")
        if stats.get("holdout_products"):
            facts += (f" Scored on {int(stats['holdout_products']):,} products seen on both sides of the split, over "
                      f"{int(stats['holdout_candidate_users']):,} users known before it.")
        reach = at100[needed[:4]].sort_values("recall_micro", ascending=False)
        reach.insert(1, "share_of_ceiling", reach["recall_micro"] / ceiling if ceiling else 0.0)
        reach = reach.reset_index()
        reach.columns.name = None
        body += (f"<h3>Recall against reach (k = 100)</h3><p>{facts}</p>" + _table(reach, "{:.4g}"))
    terms = "".join(f"<li><strong>{html.escape(m)}</strong>: {html.escape(t)}</li>" for m, t in EXPLANATIONS.items())
    described = "".join(f"<p><strong>{html.escape(n)}</strong>: {html.escape(t)}</p>" for n, t in DESCRIPTIONS.items())
    return body + f"<h3>What the numbers mean</h3><ul>{terms}</ul><h3>The strategies</h3>{described}"


def _model(con, run_id: int) -> str:
    """Calibration of the propensity scores and every strategy's gain on the holdout (the app's Evaluation
    page draws the same), or a note saying why the run has none."""
    table = queries.calibration(con, run_id)
    if table.empty:
        body = f'<h3>Calibration</h3><p class="note">{html.escape(NO_CALIBRATION)}</p>'
    else:
        shown = calibration_view(table)
        shown["within_chance"] = shown["within_chance"].map({True: "yes", False: "no"})
        learned = learned_from_words(queries.stats(con, run_id))
        body = (f"<h3>Calibration</h3><p>{html.escape(CALIBRATION_TEXT)}</p>"
                + (f"<p>{html.escape(learned)}</p>" if learned else "") +
                f'<div class="grid">{_chart(calibration_figure(table))}<div>{_table(shown, "{:,.2f}")}</div></div>')
    gain = queries.gain(con, run_id)
    if gain.empty:
        body += f'<h3>Gain</h3><p class="note">{html.escape(NO_GAIN)}</p>'
    else:
        strategy = queries.run(con, run_id)["params"].get("strategy")
        body += f"<h3>Gain</h3><p>{html.escape(GAIN_TEXT)}</p>" + _chart(holdout_gain_figure(gain, strategy))
    return _section("model", "Propensity: calibration and gain", body)


def _stress(con) -> str:
    row = queries.latest_stress_run(con)
    if row is None:
        return _section("stress", "Latest stress run",
                        '<p class="note">No stress run recorded yet (`python -m stress`).</p>')
    meta = (f'<p class="meta">Stress run {row["stress_id"]} against run {row["run_id"]} · '
            f'{html.escape(str(row["started_at"]))} → {html.escape(str(row["finished_at"]))}</p>')
    endpoints = stress_endpoints(row)
    return _section("stress", "Latest stress run", meta + _cards([(a, b, None) for a, b in stress_cards(row)])
                    + ("" if endpoints.empty else _table(endpoints, "{:,.1f}")))


def build_report(db: str | None = None, run_id: int | None = None) -> str:
    """The HTML text of a run's report (default: the published run)."""
    con = queries.connect(db)
    try:
        run_id = run_id if run_id is not None else queries.require_current_run(con)
        run = queries.run(con, run_id)
        stats = queries.stats(con, run_id)
        all_runs = queries.runs(con)
        sections = [
            _overview(con, run, stats, all_runs),
            _section("reading", "What this means for targeting",
                     "".join(f"<p>{_markdown_bold(p)}</p>" for p in reading(stats))),
            _charts(con, run_id, stats),
            _quality(con, run),
            _evaluation(con, run_id),
            _model(con, run_id),
            _stress(con),
            _section("statistics", "Every statistic", _table(stat_table(stats))),
            _section("parameters", "Run parameters",
                     f"<pre>{html.escape(json.dumps(run['params'], indent=2, sort_keys=True))}</pre>"),
        ]
    finally:
        con.close()
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Audience Workbench — run {run_id}'
            f'</title><style>{STYLE}</style><script type="text/javascript">{get_plotlyjs()}</script></head><body><main>'
            f'<h1>Audience Workbench — run {run_id}</h1><p class="meta">Report generated {made}.</p>'
            + "".join(sections) + "</main></body></html>")


def _markdown_bold(text: str) -> str:
    """The reading's **bold** lead-ins as <strong>; everything else escaped."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
