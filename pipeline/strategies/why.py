""""Why this user": the words behind a propensity audience entry, from the same pair features the ranker
scored (pure: signals in, sentences out)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.strategies.affinity import neighbour_ties
from pipeline.strategies.propensity_data import FEATURES, Signals, pair_features, product_info


def reasons(sig: Signals, catalogue, product_id: int, user_positions: np.ndarray) -> list[list[str]]:
    """For each user (position in sig.users), the phrases that tie them to the product, strongest first."""
    info = product_info(sig, np.array([product_id], dtype=np.int64), catalogue)
    zeros = np.zeros(len(user_positions))
    ties = neighbour_ties(sig.matrix, sig.items, np.array([product_id], dtype=np.int64)).toarray()[:, 0]
    feats = pair_features(sig, info, np.zeros(len(user_positions), np.int64), user_positions,
                          ties[user_positions], zeros)
    f = {name: feats[:, i] for i, name in enumerate(FEATURES)}
    category = sig.categories[info.code[0]] if info.code[0] >= 0 else None
    out = []
    for i in range(len(user_positions)):  # words for a page of users (<= depth), not a ranking loop
        words = []
        if f["own_weight"][i] > 0:
            verb = "bought" if f["own_bought"][i] else "showed interest in"
            words.append(f"{verb} this product {int(f['own_age_days'][i])} days ago")
        if f["neighbour"][i] > 0:
            words.append("buys what this product's buyers buy")
        if category and f["category_share"][i] > 0:
            words.append(f"{f['category_share'][i]:.0%} of their activity is in {category}")
        if f["recency_days"][i] <= 7:
            words.append(f"active {int(f['recency_days'][i])} days ago")
        words.append(f"{f['comeback'][i]:.0%} of users like them came back")
        out.append(words)
    return out


# --- Stored at publish: the facts behind every audience entry, packed (store/reasons.py) ----------------

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

    def records(self, product_ids: np.ndarray, customer_ids: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """(P, D) packed records of a block of audiences (entries past a product's size are zero)."""
        p, sig, n = self.packed, self.sig, self.n_users
        out = np.zeros(customer_ids.shape, dtype=p.RECORD)
        valid = np.arange(customer_ids.shape[1])[None, :] < sizes[:, None]
        user = np.where(valid, np.searchsorted(self.model.ids, customer_ids), 0)
        user = np.minimum(user, n - 1)
        ranked = self.model.ranked
        index = np.searchsorted(ranked, product_ids)
        tied_keys, tied_bits = self._tied()
        bits = np.zeros(customer_ids.shape, dtype=np.int64)
        if tied_keys.size:
            keys = index[:, None] * n + user
            at = np.minimum(np.searchsorted(tied_keys, keys), tied_keys.size - 1)
            hit = tied_keys[at] == keys
            bits[hit] = tied_bits[at[hit]]
        code = product_info(sig, product_ids, self.model.catalogue).code
        share_key = np.where(code[:, None] >= 0, code[:, None] * n + user, -1)
        share = np.zeros(customer_ids.shape)
        if sig.share_keys.size:
            at = np.minimum(np.searchsorted(sig.share_keys, share_key), sig.share_keys.size - 1)
            share = np.where(sig.share_keys[at] == share_key, sig.share_values[at], 0.0)
        bits = np.where(bits > 0, bits, np.where(share > 0, p.CATEGORY, p.RETURNING))
        own_key = product_ids[:, None].astype(np.int64) * n + user
        at = np.minimum(np.searchsorted(self.own_keys, own_key), max(self.own_keys.size - 1, 0))
        has_own = (self.own_keys[at] == own_key) if self.own_keys.size else np.zeros(own_key.shape, bool)
        out["sources"] = bits
        out["own"] = np.where(has_own, self.own_code[at] if self.own_keys.size else 0, 0)
        out["own_age"] = np.where(has_own, self.own_age[at] if self.own_keys.size else 0, 0)
        out["share"] = p.percent(share)
        out["comeback"] = p.percent(sig.comeback[user])
        out[~valid] = np.zeros((), dtype=p.RECORD)
        return out


    def _tied(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's tied pairs of its latest ranking as sorted keys, with their source bits (built once
        per ranking: a run ranks its products, then its categories, with the same model)."""
        tied = self.model.tied
        if getattr(self, "_tied_of", None) is not tied:
            keys = tied.index.astype(np.int64) * self.n_users + tied.rows
            order = np.argsort(keys, kind="stable") if np.any(keys[1:] < keys[:-1]) else slice(None)
            self._tied_of, self._tied_sorted = tied, (keys[order], np.asarray(self.model.tied_bits)[order])
        return self._tied_sorted


def explainer(model) -> Explainer | None:
    """An Explainer when the model records why (propensity), else None (no reasons are stored)."""
    return Explainer(model) if getattr(model, "name", "") == "propensity" and hasattr(model, "signals") else None
