"""Fixed-width ASCII packing of ranked lists, vectorized in both directions.

This is the one place the packed format is encoded and decoded: the pipeline packs, store.read,
store.snapshot and the app's queries unpack with the functions below.

A product's audience is stored as two byte strings: ``size`` customer ids of ``id_width`` digits and
``size`` scores of ``score_width`` characters (a sign, then digits of 1e-9). Fixed width lets SQLite
expand them with ``substr`` in the ``audiences`` view, and lets numpy build and read them without a
Python loop over products.
"""
from __future__ import annotations

import numpy as np

from store.format import scores_units
from store.names import SCORE_SCALE

# One width for every run (the API decodes a run's lists as one matrix): a sign and 12 digits of 1e-9,
# so scores are stored to 9 decimals and clipped to +-999.999999999 (no strategy scores that high).
SCORE_WIDTH = 13
SCORE_LIMIT = (10 ** (SCORE_WIDTH - 1) - 1) / SCORE_SCALE
DECODE_FIELDS = 32768  # fields decoded per pass: small enough to stay in the CPU cache


def digit_fields(values: np.ndarray, width: int) -> np.ndarray:
    """(P, D) non-negative ints -> (P, D, width) ASCII digit bytes, most significant first."""
    if width > 9:  # split so every division runs on uint32, ~2.5x faster than on int64
        high, low = np.divmod(values.astype(np.int64), 10 ** 9)
        return np.concatenate([digit_fields(high, width - 9), digit_fields(low, 9)], axis=-1)
    out = np.empty(values.shape + (width,), dtype=np.uint8)
    rest = values.astype(np.uint32)
    for i in range(width - 1, -1, -1):  # a loop over digit positions, not over rows
        quotient = rest // 10
        out[..., i] = rest - quotient * 10 + 48
        rest = quotient
    return out


def digit_width(max_value: int) -> int:
    return max(1, len(str(int(max_value))))


def pack_ids(ids: np.ndarray, width: int) -> np.ndarray:
    """(P, D) ids -> P byte strings of D*width ASCII digits (numpy 'S' array)."""
    p, d = ids.shape
    raw = digit_fields(np.maximum(ids, 0), width).reshape(p, d * width)
    return raw.view(f"S{d * width}").ravel() if d else np.full(p, b"", dtype="S1")


def pack_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """(P, D) floats -> P byte strings of D fields: '+' or '-' then width-1 digits of 1e-9."""
    p, d = scores.shape
    scaled = scores_units(np.clip(np.nan_to_num(scores), -SCORE_LIMIT, SCORE_LIMIT))
    fields = np.empty((p, d, width), dtype=np.uint8)
    fields[..., 0] = np.where(scaled < 0, ord("-"), ord("+"))
    fields[..., 1:] = digit_fields(np.abs(scaled), width - 1)
    return fields.reshape(p, d * width).view(f"S{d * width}").ravel() if d else np.full(p, b"", "S1")


def decode_digits(fields: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(N, w) ASCII digit fields -> N integers written into `out` (returned).

    Chunks small enough to stay in the CPU cache, transposed so each digit position is contiguous;
    int32 arithmetic when w <= 9 digits (twice the values per instruction of int64)."""
    width = fields.shape[1]
    dtype = np.int32 if width <= 9 else np.int64
    for lo in range(0, len(fields), DECODE_FIELDS):  # a loop over cache-sized chunks, not over rows
        digits = fields[lo:lo + DECODE_FIELDS].T.copy()
        digits -= 48
        acc = digits[0].astype(dtype)
        for position in digits[1:]:
            acc *= 10
            acc += position
        out[lo:lo + DECODE_FIELDS] = acc
    return out


def decode_signed(fields: np.ndarray) -> np.ndarray:
    """(N, w) fields of a sign ('+' or '-') and w-1 digits -> N int64 (scores in stored units)."""
    values = np.empty(len(fields), dtype=np.int64)
    decode_digits(fields[:, 1:], values)
    np.negative(values, out=values, where=fields[:, 0] == ord("-"))
    return values


def digits_to_int(digits: np.ndarray) -> np.ndarray:
    """(..., width) ASCII digit bytes -> int64 of shape (...)."""
    flat = np.ascontiguousarray(digits).reshape(-1, digits.shape[-1])
    return decode_digits(flat, np.empty(len(flat), dtype=np.int64)).reshape(digits.shape[:-1])


def unpack_ids(blob: bytes, width: int, size: int) -> np.ndarray:
    return digits_to_int(np.frombuffer(blob, dtype=np.uint8, count=size * width).reshape(size, width))


def unpack_units(blob: bytes, width: int, size: int) -> np.ndarray:
    """Packed scores -> int64 in stored units of 1e-9, exactly."""
    return decode_signed(np.frombuffer(blob, dtype=np.uint8, count=size * width).reshape(size, width))


def unpack_scores(blob: bytes, width: int, size: int) -> np.ndarray:
    return unpack_units(blob, width, size) / SCORE_SCALE
