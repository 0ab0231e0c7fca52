"""Small tables shared by the app and the HTML report (the figures' tabular companions)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from reports.kpis import format_stat
from reports.words import EXPLANATIONS


def stress_cards(row: dict) -> list[tuple[str, str]]:
    """The latest stress run (a stress_runs row) as (label, value) pairs."""
    requests, failures = int(row.get("requests") or 0), int(row.get("failures") or 0)
    return [("Users", f"{row.get('users', 0):,}"), ("Duration", f"{row.get('duration_s', 0):g} s"),
            ("Requests", f"{requests:,}"),
            ("Failures", f"{failures:,} ({100 * failures / requests if requests else 0:.2f}%)"),
            ("Requests/s", f"{row.get('rps', 0):,.1f}"), ("p50", f"{row.get('p50_ms', 0):,.0f} ms"),
            ("p95", f"{row.get('p95_ms', 0):,.0f} ms"), ("p99", f"{row.get('p99_ms', 0):,.0f} ms")]


def stress_endpoints(row: dict) -> pd.DataFrame:
    """Per-endpoint figures of a stress run (stress_runs.per_endpoint JSON), empty if there are none."""
    try:
        detail = json.loads(row.get("per_endpoint") or "[]")
    except (TypeError, ValueError):
        return pd.DataFrame()
    endpoints = detail.get("endpoints", []) if isinstance(detail, dict) else detail
    return pd.DataFrame(endpoints) if isinstance(endpoints, list) else pd.DataFrame()


def stat_table(stats: dict[str, float]) -> pd.DataFrame:
    """Every statistic of a run, by name, formatted as people read it."""
    names = sorted(stats)
    return pd.DataFrame({"statistic": names, "value": [format_stat(n, stats[n]) for n in names]})


def formatted_deltas(deltas: pd.DataFrame) -> pd.DataFrame:
    """app.compare.stat_deltas as display text, each statistic in its own format."""
    return pd.DataFrame({
        "statistic": deltas["statistic"],
        "run A": [format_stat(n, v) for n, v in zip(deltas["statistic"], deltas["run A"])],
        "run B": [format_stat(n, v) for n, v in zip(deltas["statistic"], deltas["run B"])],
        "change": [format_stat(n, v, signed=True) for n, v in zip(deltas["statistic"], deltas["change"])],
    })


RANDOM = "random"  # the baseline strategy: lift over random is 1 by definition


def leaderboard(rows: pd.DataFrame, k: int) -> pd.DataFrame:
    """Evaluation rows at one k as strategy x metric, best recall_micro first; shares in percent (lift
    stays a ratio). The reachable ceiling is the same for every strategy, so it is left to the caller."""
    part = random_lift_is_one(rows[rows["k"] == k]).pivot_table(index="label", columns="metric", values="value")
    columns = [m for m in EXPLANATIONS if m in part.columns and m != "reachable_ceiling"]
    part = part[columns].sort_values([c for c in ("recall_micro", "recall_macro") if c in columns],
                                     ascending=False)
    shares = [c for c in columns if c != "lift_over_random"]
    part[shares] = part[shares] * 100
    part.columns.name = None
    return part.rename_axis("strategy").reset_index()


def random_lift_is_one(rows: pd.DataFrame) -> pd.DataFrame:
    """Random audiences' lift over random is 1 by definition: the stored value divides one draw's recall by
    the expectation, and that draw's luck is not a property of the strategy. Capped random too."""
    base = rows["strategy"] if "strategy" in rows else rows["label"]
    is_random = (base == RANDOM) & (rows["metric"] == "lift_over_random")
    return rows.assign(value=rows["value"].where(~is_random, 1.0))


CERTAINTY_COLUMNS = ["strategy", "recall", "recall_pm", "versus_run", "versus_run_pm", "verdict"]


def certainty_titles(scored_as: str) -> dict[str, str]:
    """How people read certainty()'s columns."""
    return {"recall": "recall@100 %", "recall_pm": "± %", "versus_run": f"vs {scored_as} (pp)",
            "versus_run_pm": "± pp", "verdict": "verdict"}


def certainty(table: pd.DataFrame, scored_as: str) -> pd.DataFrame:
    """How sure the holdout's headline is (queries.evaluation rows; `scored_as`: the label of the run's
    strategy; the strategies scored under the same cap as it): per strategy its recall@100 and the half-width of its 95% interval, and its difference to
    the run's strategy with that difference's own interval (paired by product, so far narrower than the
    two recalls' intervals suggest) and whether it is beyond chance. In percent, best first; empty when
    the run stored no standard errors (no holdout, or a run from before they were kept)."""
    from pipeline.evaluation.metrics import Z, versus
    cap = table.loc[table["label"] == scored_as, "cap"]
    same_cap = table["cap"].isna() if cap.empty or cap.isna().iloc[0] else table["cap"] == cap.iloc[0]
    rows = table[same_cap & (table["k"] == 100)
                 & table["metric"].isin(["recall_micro", "recall_micro_se", "recall_micro_diff_se"])]
    wide = rows.pivot_table(index="label", columns="metric", values="value", aggfunc="first")
    if "recall_micro_se" not in wide.columns or scored_as not in wide.index:
        return pd.DataFrame(columns=CERTAINTY_COLUMNS)
    diff_se = wide["recall_micro_diff_se"] if "recall_micro_diff_se" in wide.columns else pd.Series(np.nan, wide.index)
    difference = wide["recall_micro"] - wide.loc[scored_as, "recall_micro"]
    out = pd.DataFrame({"strategy": wide.index, "recall": 100 * wide["recall_micro"].to_numpy(),
                        "recall_pm": 100 * Z * wide["recall_micro_se"].to_numpy(),
                        "versus_run": 100 * difference.to_numpy(), "versus_run_pm": 100 * Z * diff_se.to_numpy()})
    out["verdict"] = [("" if label == scored_as else versus(d, se))
                      for label, d, se in zip(wide.index, difference, diff_se)]
    return out.sort_values("recall", ascending=False, kind="stable").reset_index(drop=True)


CHANCE = 0.95  # the share of outcomes a calibrated model's observed count falls within
CALIBRATION_COLUMNS = ["decile", "entries", "expected", "observed", "chance_low", "chance_high", "within_chance",
                       "observed_over_expected"]


def calibration_view(table: pd.DataFrame) -> pd.DataFrame:
    """The stored deciles with the range of engagements a perfectly calibrated model would show 19 times
    in 20, and whether the observed count is inside it. Each entry is a small, independent chance, so the
    count is Poisson with the expected engagements as its mean: a decile expecting 10 may see 4 to 17 by
    chance alone, so "observed / expected" far from 1 is only a miscalibration outside that range."""
    from scipy.stats import poisson
    expected = table["expected"].to_numpy(dtype=float)
    tail = (1 - CHANCE) / 2
    low = np.where(expected > 0, poisson.ppf(tail, np.maximum(expected, 1e-12)), 0.0)
    high = np.where(expected > 0, poisson.ppf(1 - tail, np.maximum(expected, 1e-12)), 0.0)
    observed = table["observed"].to_numpy(dtype=float)
    return table.assign(chance_low=low.astype(np.int64), chance_high=high.astype(np.int64),
                        within_chance=(observed >= low) & (observed <= high))[CALIBRATION_COLUMNS]
