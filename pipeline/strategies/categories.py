"""Category audiences: with a catalogue, the audience of each category, served for a product the
catalogue knows but the events do not (the API's cold start). A category's audience is what the fitted
strategy ranks for a new product of that category: a stand-in product id per category, added to the
catalogue the strategy sees, never mentioned by any event (so nobody is excluded)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.strategies.base import Strategy
from pipeline.strategies.ranking import Exclusions


def category_audiences(model: Strategy, catalogue: pd.DataFrame, depth: int) -> pd.DataFrame:
    """Rows (category, rank, customer_id, score) for every category of the catalogue."""
    names = np.sort(catalogue["category"].dropna().astype(str).unique())
    if names.size == 0:
        return pd.DataFrame(columns=["category", "rank", "customer_id", "score"])
    top = max(int(catalogue["product_id"].max()), int(model.events["product_id"].max()))
    stand_ins = np.arange(top + 1, top + 1 + names.size, dtype=np.int64)
    original = model.catalogue
    model.catalogue = pd.concat([catalogue, pd.DataFrame({"product_id": stand_ins, "category": names})],
                                ignore_index=True)
    none = np.zeros(0, np.int64)
    try:
        blocks = list(model.rank(stand_ins, Exclusions(none, none, none, max(len(model.users), 1)), depth))
    finally:
        model.catalogue = original
    sizes = np.concatenate([b.sizes for b in blocks])
    ids = np.concatenate([b.customer_ids for b in blocks])
    scores = np.concatenate([b.scores for b in blocks])
    valid = np.arange(ids.shape[1])[None, :] < sizes[:, None]
    row, col = np.nonzero(valid)
    return pd.DataFrame({"category": names[row], "rank": col + 1, "customer_id": ids[row, col],
                         "score": scores[row, col]})


def catalogue_products(catalogue: pd.DataFrame) -> pd.DataFrame:
    """Every catalogue product and its category (seen in the events or not)."""
    return (catalogue.drop_duplicates("product_id")[["product_id", "category"]]
            .assign(category=lambda f: f["category"].astype(str)))
