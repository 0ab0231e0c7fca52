"""How sure a split's headline is, read back from the evaluation rows a run stored (the standard errors
holdout.comparison_rows wrote): one table for the app, the report and `pipeline quality`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import Z, versus

COLUMNS = ["strategy", "recall", "recall_pm", "versus_run", "versus_run_pm", "verdict"]
ROWS = ("recall_micro", "recall_micro_se", "recall_micro_diff_se")


def certainty(rows: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Evaluation rows of one split (strategy, cap, k, metric, value; `label` names a strategy and its cap
    when present) against `reference`, the run's strategy (its label): per strategy scored under the same
    cap, its recall@100 and the half-width of its 95% interval, its difference to the reference with that
    difference's own interval (paired on the same truth pairs, so far narrower than the two recalls'
    intervals suggest), and whether the difference is beyond chance. Fractions, best first; empty when the rows
    hold no standard errors (no holdout, a single evaluated product, or a run from before they were kept)."""
    label = rows["label"] if "label" in rows.columns else rows["strategy"]
    cap = rows.loc[label == reference, "cap"]
    same_cap = rows["cap"].isna() if cap.empty or cap.isna().iloc[0] else rows["cap"] == cap.iloc[0]
    chosen = same_cap & (rows["k"] == 100) & rows["metric"].isin(ROWS)
    wide = rows[chosen].assign(label=label[chosen]).pivot_table(index="label", columns="metric", values="value",
                                                                aggfunc="first")
    if "recall_micro_se" not in wide.columns or reference not in wide.index:
        return pd.DataFrame(columns=COLUMNS)
    diff_se = wide["recall_micro_diff_se"] if "recall_micro_diff_se" in wide.columns else pd.Series(np.nan, wide.index)
    difference = wide["recall_micro"] - wide.loc[reference, "recall_micro"]
    out = pd.DataFrame({"strategy": wide.index, "recall": wide["recall_micro"].to_numpy(),
                        "recall_pm": Z * wide["recall_micro_se"].to_numpy(), "versus_run": difference.to_numpy(),
                        "versus_run_pm": Z * diff_se.to_numpy()})
    out["verdict"] = [("" if name == reference else versus(d, se)) for name, d, se in zip(wide.index, difference, diff_se)]
    return out.sort_values("recall", ascending=False, kind="stable").reset_index(drop=True)


def lead_text(row, reference: str, digits: int = 4) -> str:
    """One certainty row in words: the reference's own interval ("±0.0004"), another strategy's difference
    to it with that difference's interval and verdict ("-0.0002 ±0.0003 (within noise)")."""
    if row.strategy == reference:
        return f"±{row.recall_pm:.{digits}f}"
    return f"{row.versus_run:+.{digits}f} ±{row.versus_run_pm:.{digits}f} ({row.verdict})"
