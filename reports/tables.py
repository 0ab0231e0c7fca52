"""Small tables shared by the app and the HTML report (the figures' tabular companions)."""
from __future__ import annotations

import json

import pandas as pd


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


def format_stat(name: str, value: float | None, signed: bool = False) -> str:
    """A statistic as people read it: counts with thousands separators, percentages, sparsity to 1e-6."""
    if value is None or value != value:
        return ""
    sign = "+" if signed else ""
    if name == "sparsity":
        return f"{value:{sign}.6f}"
    if name.endswith("_pct") or name.startswith("event_pct_"):
        return f"{value:{sign}.2f}" + (" pp" if signed else "%")
    if name.endswith(("_per_user",)):
        return f"{value:{sign}.3f}"
    return f"{value:{sign},.0f}"


def formatted_deltas(deltas: pd.DataFrame) -> pd.DataFrame:
    """app.compare.stat_deltas as display text, each statistic in its own format."""
    return pd.DataFrame({
        "statistic": deltas["statistic"],
        "run A": [format_stat(n, v) for n, v in zip(deltas["statistic"], deltas["run A"])],
        "run B": [format_stat(n, v) for n, v in zip(deltas["statistic"], deltas["run B"])],
        "change": [format_stat(n, v, signed=True) for n, v in zip(deltas["statistic"], deltas["change"])],
    })
