"""The one spelling of a score as text, on every surface: API JSON and CSV, CLI export, app download.

Scores are stored as integers of 1e-9 (store.names.SCORE_SCALE), so a score prints with exactly nine
decimals: 0.15 is "0.150000000", -3e-9 is "-0.000000003", 2.5 is "2.500000000". Nine fixed decimals show
every stored digit and never a float artefact ("0.9500000000000001"); JSON carries the same characters
as a number. A float is first rounded to the stored scale (half to even, like numpy's rint), so a score
read back from SQLite and the same score still held as a float print alike.
"""
from __future__ import annotations

import numpy as np

from store.names import SCORE_SCALE

DECIMALS = 9  # len(str(SCORE_SCALE)) - 1


def score_units(score: float) -> int:
    """A score in stored units of 1e-9 (round half to even, as numpy's rint does when scores are packed)."""
    return round(score * SCORE_SCALE)


def units_text(units: int) -> str:
    """The text of a score already in stored units: sign, whole part, '.', nine digits."""
    whole, fraction = divmod(abs(units), SCORE_SCALE)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:09d}"


def score_text(score: float) -> str:
    """THE text of a score, e.g. 0.15 -> "0.150000000"."""
    return units_text(score_units(score))


def units_texts(units: np.ndarray):
    """units_text over an array at once (a pyarrow string array): the bulk export's millions of rows
    cannot afford a Python call per score. tests/test_format.py holds both to the same hand-written table."""
    import pyarrow as pa  # only the export needs it: the API workers never import pyarrow
    import pyarrow.compute as pc
    units = np.asarray(units, dtype=np.int64)
    whole, fraction = np.divmod(np.abs(units), SCORE_SCALE)
    text = pc.binary_join_element_wise(pc.cast(pa.array(whole), pa.string()),
                                       pc.utf8_lpad(pc.cast(pa.array(fraction), pa.string()), DECIMALS, "0"), ".")
    return pc.if_else(pa.array(units < 0), pc.binary_join_element_wise("-", text, ""), text)


def scores_units(scores: np.ndarray) -> np.ndarray:
    """score_units over an array: int64 units of 1e-9, rounded half to even like round()."""
    return np.rint(np.asarray(scores, dtype=np.float64) * SCORE_SCALE).astype(np.int64)


def score_texts(scores: np.ndarray):
    """score_text over an array of float scores (see units_texts)."""
    return units_texts(scores_units(scores))
