"""Where the Spark engine ranks: on its driver, with the in-process strategies, when the clean events fit
there; else engagement, as Spark jobs.

Every strategy but engagement (ALS, item-kNN, the propensity model and its training) works on the whole
interaction matrix at once. So once the data stages are done, the Spark engine collects the clean events
(four columns) when the driver has the memory an in-process run of that many events needs, and runs
pipeline.run.model_stages on them: the in-process engine's own code, so both engines choose the strategy
on the same inner split and publish the same run. Beyond that size it ranks and evaluates engagement as
Spark jobs, which grow with the cluster, and says so in the run's strategy_selection.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from pipeline import memory
from pipeline.config import RunParams
from pipeline.data.clean import sorted_event_names
from pipeline.strategies import AUTO, FORCED
from store.errors import InputError

SPARK_STRATEGY = "engagement"  # what the Spark jobs rank with (pipeline/spark/audiences.py)
KEY = ["customer_id", "product_id", "event", "event_date"]


def needs_driver(params: RunParams) -> bool:
    """A forced strategy other than engagement, or the exposure cap, can only run on the driver."""
    return params.strategy not in (AUTO, SPARK_STRATEGY) or params.max_audiences_per_user is not None


def _too_big(rows: int) -> str | None:
    """Why `rows` clean events do not fit on the driver, or None when they do."""
    needed, free = memory.needed_bytes(rows), memory.available_bytes()
    if needed <= memory.USABLE_SHARE * free:
        return None
    return f"{rows:,} events need ~{needed / memory.GB:.1f} GB on the driver, {free / memory.GB:.1f} GB are free"


def refuse_early(params: RunParams, input_path: Path) -> None:
    """Before the run starts: a run that needs the driver, of an input too big for it (estimated from the
    file, as the in-process engine does), is refused now rather than after the data stages."""
    if needs_driver(params) and input_path.is_file():
        _refuse(params, _too_big(memory.estimate_rows(input_path)))


def _refuse(params: RunParams, why: str | None) -> None:
    if why:
        wanted = f"--strategy {params.strategy}" if params.strategy != AUTO else "--max-audiences-per-user"
        raise InputError(f"{wanted} ranks on the Spark driver, and {why}; use --strategy engagement without "
                         "--max-audiences-per-user (Spark jobs), or a driver with more memory")


def plan(params: RunParams, rows: int) -> str | None:
    """None: the model stages run on the driver. Else the run's strategy_selection for engagement as Spark
    jobs: forced with --strategy, or chosen because the events are too many for the driver."""
    if params.strategy == SPARK_STRATEGY and params.max_audiences_per_user is None:
        return FORCED
    why = _too_big(rows)
    if needs_driver(params):
        _refuse(params, why)
    if why is None:
        return None
    return (f"engagement: {why} to score every strategy, so the Spark engine ranks and evaluates engagement "
            "as Spark jobs")


def collected(events: DataFrame | None) -> pd.DataFrame | None:
    """Clean events as the in-process engine holds them: int64 ids, the event a category of the sorted
    names, naive UTC instants, grouped by customer. (The rows' order within a customer differs from the
    file's; a run does not depend on it: tests/test_row_order.py.)"""
    if events is None:
        return None
    frame = events.select(*KEY).toPandas()
    frame["event"] = sorted_event_names(frame["event"])
    frame["event_date"] = frame["event_date"].astype("datetime64[ns]")
    order = np.lexsort((frame["event"].cat.codes.to_numpy(), frame["event_date"].to_numpy(),
                        frame["product_id"].to_numpy(), frame["customer_id"].to_numpy()))
    return frame.take(order).reset_index(drop=True)
