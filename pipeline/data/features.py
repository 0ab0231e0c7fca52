"""Per-user engagement features and score, exactly as DESIGN.md defines them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.data.clean import event_weight
from pipeline.config import RunParams
from store.names import COMPONENT_COLUMNS

DAY = np.timedelta64(1, "D")
RAW_COLUMNS = {"total": "total_interactions", "unique": "unique_products", "avg_event": "avg_event_score",
               "frequency": "interaction_frequency", "recency": "recency_score"}
# component weight name -> (raw column, normalized column: store.names.COMPONENT_COLUMNS, the stored name)
COMPONENTS = {name: (raw, COMPONENT_COLUMNS[name]) for name, raw in RAW_COLUMNS.items()}


def min_max(values: pd.Series) -> pd.Series:
    """Min-max to [0, 1]; a constant column carries no information, so everyone gets 0.5."""
    low, high = values.min(), values.max()
    if not high > low:
        return pd.Series(0.5, index=values.index)
    return (values - low) / (high - low)


def user_features(events: pd.DataFrame, params: RunParams) -> pd.DataFrame:
    """One row per customer, sorted by customer_id, with raw, normalized and final scores."""
    frame = pd.DataFrame({
        "customer_id": events["customer_id"].to_numpy(),
        "product_id": events["product_id"].to_numpy(),
        "weight": event_weight(events, params),
        "ts": events["event_date"].to_numpy(),
    })
    grouped = frame.groupby("customer_id", sort=True)
    users = grouped.agg(total_interactions=("product_id", "size"),
                        unique_products=("product_id", "nunique"),
                        avg_event_score=("weight", "mean"),
                        first=("ts", "min"), last=("ts", "max"))
    latest = frame["ts"].max()
    # Whole days, floored, as timedelta.days does: 23 h between first and last event is 0 days.
    users["days_active"] = (users["last"] - users["first"]) // DAY + 1
    users["interaction_frequency"] = users["total_interactions"] / users["days_active"]
    users["recency_days"] = (latest - users["last"]) // DAY
    users["recency_score"] = np.exp(-users["recency_days"] / params.decay_days)

    score = pd.Series(0.0, index=users.index)
    for name, (raw, norm) in COMPONENTS.items():  # five components, not a loop over users
        users[norm] = min_max(users[raw].astype(float))
        score += params.component_weights[name] * users[norm]
    users["engagement_score"] = score
    users["first_event"], users["last_event"] = users["first"], users["last"]
    return users.drop(columns=["first", "last"]).reset_index()


def engagement_order(users: pd.DataFrame) -> np.ndarray:
    """Row positions of `users` best first: score descending, then later last event, then smaller id."""
    return np.lexsort((users["customer_id"].to_numpy(),
                       -users["last_event"].to_numpy().astype("int64"),
                       -users["engagement_score"].to_numpy()))
