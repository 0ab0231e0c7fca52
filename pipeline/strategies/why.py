""""Why this user": the facts behind each propensity audience entry, recorded at publish and packed by
store/reasons.py; the words for them live once, in reports/words.py (why_phrases)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.strategies.propensity_data import product_info


class Explainer:
    """The facts behind a fitted propensity model's audience entries: which candidate sources brought each
    user in (the model's own record of its tied pairs; users not tied come from the category pool when
    they have activity in the category, else from the likely returners), their strongest own event with
    the product and its age, their category share and their chance of coming back. Built once per run;
    `records` is vectorized over a block of audiences."""

    def __init__(self, model):
        from store import reasons as packed
        self.packed = packed
        self.model, self.sig = model, model.signals
        n_users = len(self.sig.users)
        events = model.events
        rows = np.searchsorted(model.ids, events["customer_id"].to_numpy())
        known = packed.OWN_EVENTS[1:-1]
        table = np.array([packed.OWN_EVENTS.index(c) if c in known else len(packed.OWN_EVENTS) - 1
                          for c in events["event"].cat.categories], dtype=np.int64)
        code = table[events["event"].cat.codes.to_numpy()]
        keys = events["product_id"].to_numpy().astype(np.int64) * n_users + rows
        dates = events["event_date"].to_numpy()
        # Per pair and event type its latest date; per pair the strongest type (smallest code) is named.
        pairs = pd.DataFrame({"k": keys, "c": code, "d": dates}).groupby(["k", "c"])["d"].max().reset_index()
        k = pairs["k"].to_numpy()
        first = np.r_[True, k[1:] != k[:-1]] if k.size else np.zeros(0, bool)
        self.own_keys, self.own_code = k[first], pairs["c"].to_numpy()[first]
        age = (dates.max() - pairs["d"].to_numpy()[first]) / np.timedelta64(1, "D") if k.size else np.zeros(0)
        self.own_age = np.clip(np.floor(age), 0, packed.MAX_AGE)
        self.n_users = n_users

    def records(self, product_ids: np.ndarray, positions: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """(P, D) packed records of a block of audiences given as user rows (entries past a product's size
        are zero). Lookups are hash lookups (pandas indexes built once): tens of millions of random
        searchsorted probes are several times slower."""
        p, sig, n = self.packed, self.sig, self.n_users
        valid = np.arange(positions.shape[1])[None, :] < sizes[:, None]
        user = positions
        index = np.searchsorted(self.model.ranked, product_ids)
        tied_keys, tied_bits = self._tied()
        at = tied_keys.get_indexer((index[:, None] * n + user).ravel()).reshape(user.shape)
        bits = np.where(at >= 0, tied_bits[np.maximum(at, 0)] if tied_bits.size else 0, 0)
        code = product_info(sig, product_ids, self.model.catalogue).code
        share_key = np.where(code[:, None] >= 0, code[:, None] * n + user, -1)
        at = self._index("shares", sig.share_keys).get_indexer(share_key.ravel()).reshape(user.shape)
        share = np.where(at >= 0, sig.share_values[np.maximum(at, 0)] if sig.share_keys.size else 0.0, 0.0)
        bits = np.where(bits > 0, bits, np.where(share > 0, p.CATEGORY, p.RETURNING))
        own_key = product_ids[:, None].astype(np.int64) * n + user
        at = self._index("own", self.own_keys).get_indexer(own_key.ravel()).reshape(user.shape)
        has_own = at >= 0
        out = np.zeros(positions.shape, dtype=p.RECORD)
        out["sources"] = bits
        out["own"] = np.where(has_own, self.own_code[np.maximum(at, 0)] if self.own_keys.size else 0, 0)
        out["own_age"] = np.where(has_own, self.own_age[np.maximum(at, 0)] if self.own_keys.size else 0, 0)
        out["share"] = p.percent(share)
        out["comeback"] = p.percent(sig.comeback[user])
        out[~valid] = np.zeros((), dtype=p.RECORD)
        return out

    def _index(self, name: str, keys: np.ndarray) -> pd.Index:
        """A hash index of unique keys, built on first use."""
        cache = self.__dict__.setdefault("_indexes", {})
        if name not in cache:
            cache[name] = pd.Index(keys)
        return cache[name]

    def _tied(self) -> tuple[pd.Index, np.ndarray]:
        """The model's tied pairs of its latest ranking as a hash index of keys, with their source bits
        (rebuilt when the model ranks again: a run ranks its categories, then its products)."""
        tied = self.model.tied
        if getattr(self, "_tied_of", None) is not tied:
            keys = tied.index.astype(np.int64) * self.n_users + tied.rows
            self._tied_of, self._tied_index = tied, (pd.Index(keys), np.asarray(self.model.tied_bits))
        return self._tied_index


def explainer(model) -> Explainer | None:
    """An Explainer when the model records why (propensity), else None (no reasons are stored)."""
    return Explainer(model) if getattr(model, "name", "") == "propensity" and hasattr(model, "signals") else None
