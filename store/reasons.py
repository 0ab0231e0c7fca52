"""The packed "why this user" facts of an audience: one fixed-size binary record per audience entry,
in rank order, one blob per (run, product) in `audience_reasons`. The pipeline packs (pipeline/
strategies/why.py), store.read unpacks, reports/words.py turns a record into phrases.

A record is six bytes: the candidate sources that brought the user in (bits below), the user's own
strongest event with the product (an index into OWN_EVENTS, 0 = none) and its age in days, the share
of the user's activity in the product's category (percent) and the learned chance that users like them
come back (percent). 100 entries x 200K products stay near 120 MB.
"""
from __future__ import annotations

import numpy as np

OWN, NEIGHBOUR, TASTE, CATEGORY, RETURNING = 1, 2, 4, 8, 16  # the propensity model's candidate sources
SOURCES = (OWN, NEIGHBOUR, TASTE, CATEGORY, RETURNING)
OWN_EVENTS = ("", "purchased", "cart", "rating", "wishlist", "search_keyword", "other")  # strongest first
MAX_AGE = np.iinfo(np.uint16).max
RECORD = np.dtype([("sources", "u1"), ("own", "u1"), ("own_age", "<u2"), ("share", "u1"), ("comeback", "u1")])


def pack(records: np.ndarray, sizes: np.ndarray) -> list[bytes]:
    """(P, D) records -> one blob per product of its first sizes[i] records."""
    return [records[i, :size].tobytes() for i, size in enumerate(sizes.tolist())]  # one slice per product


def unpack(blob: bytes | None) -> np.ndarray:
    """One product's records, rank order (empty when nothing was stored)."""
    return np.frombuffer(blob or b"", dtype=RECORD)


def percent(values: np.ndarray) -> np.ndarray:
    """Shares in [0, 1] as whole percents for a record."""
    return np.clip(np.rint(np.asarray(values, dtype=float) * 100), 0, 100).astype(np.uint8)
