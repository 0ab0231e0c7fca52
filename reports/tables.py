"""Small tables shared by the app and the HTML report (the figures' tabular companions)."""
from __future__ import annotations

import json

import pandas as pd

from pipeline.evaluation.calibration import chance_range
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


def certainty_titles(scored_as: str) -> dict[str, str]:
    """How people read certainty_view()'s columns."""
    return {"recall": "recall %", "recall_pm": "± %", "versus_run": f"vs {scored_as}, pp",
            "versus_run_pm": "± pp", "verdict": "verdict"}


def certainty_view(table: pd.DataFrame, scored_as: str) -> pd.DataFrame:
    """pipeline.evaluation.certainty of the holdout's rows (queries.evaluation; `scored_as`: the label of
    the run's strategy) in percent and percentage points, as the leaderboard shows recall."""
    from pipeline.evaluation.certainty import certainty
    out = certainty(table, scored_as)
    shares = ["recall", "recall_pm", "versus_run", "versus_run_pm"]
    out[shares] = out[shares].astype(float) * 100
    return out


CALIBRATION_COLUMNS = ["decile", "entries", "expected", "observed", "chance_low", "chance_high", "within_chance",
                       "observed_over_expected"]


def calibration_view(table: pd.DataFrame) -> pd.DataFrame:
    """The stored deciles with the range of engagements a perfectly calibrated model would show 19 times
    in 20 (calibration.chance_range), and whether the observed count is inside it: "observed / expected"
    far from 1 is only a miscalibration outside that range."""
    low, high = chance_range(table["expected"].to_numpy(dtype=float))
    observed = table["observed"].to_numpy(dtype=float)
    return table.assign(chance_low=low, chance_high=high,
                        within_chance=(observed >= low) & (observed <= high))[CALIBRATION_COLUMNS]
