"""Packed audience lists round-trip exactly, in numpy and through SQLite's `audiences` view."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from store import queries, writer
from store.packing import SCORE_WIDTH, digit_width, pack_ids, pack_scores, unpack_ids, unpack_scores


@pytest.mark.parametrize("values, width", [([1, 22, 333, 999999], 6), ([10**12 + 7, 5], 13), ([0, 9], 1)])
def test_ids_round_trip(values, width):
    ids = np.array([values])
    assert unpack_ids(pack_ids(ids, width)[0], width, len(values)).tolist() == values


@pytest.mark.parametrize("score", [0.0, 0.5, -0.25, 1e-9, 123.456789123, -999.999999999])
def test_scores_round_trip_to_nine_decimals(score):
    blob = pack_scores(np.array([[score]]), SCORE_WIDTH)[0]
    assert len(blob) == SCORE_WIDTH
    assert unpack_scores(blob, SCORE_WIDTH, 1)[0] == pytest.approx(score, abs=5e-10)


def test_the_view_expands_packed_rows_exactly(tmp_path):
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 10**7, (40, 12))
    scores = rng.normal(size=(40, 12))
    sizes = rng.integers(0, 13, 40).astype(np.int32)
    width = digit_width(ids.max())
    db = writer.connect(tmp_path / "a.db")
    writer.write_audience_lists(db, 1, np.arange(100, 140), sizes, pack_ids(ids, width),
                                pack_scores(scores, SCORE_WIDTH), width, SCORE_WIDTH)
    con = queries.connect(tmp_path / "a.db")
    for i in (0, 7, 39):
        got = queries.audience(con, 1, 100 + i)
        assert got["rank"].tolist() == list(range(1, sizes[i] + 1))
        assert got["customer_id"].tolist() == ids[i, :sizes[i]].tolist()
        assert np.allclose(got["score"], scores[i, :sizes[i]], atol=5e-10)
    streamed = pd.concat(queries.iter_audience_frames(con, 1, chunk=7))
    assert streamed.groupby("product_id").size().reindex(range(100, 140), fill_value=0).tolist() == sizes.tolist()
    assert streamed["customer_id"].tolist() == [c for i in range(40) for c in ids[i, :sizes[i]].tolist()]


@pytest.mark.parametrize("texts, values", [
    ([b"000000007", b"999999999", b"123456789"], [7, 999_999_999, 123_456_789]),         # int32 arithmetic
    ([b"000000000001", b"999999999999"], [1, 999_999_999_999]),                            # int64 arithmetic
])
def test_digits_decode_to_the_integers_they_spell(texts, values):
    from store.packing import digits_to_int
    fields = np.frombuffer(b"".join(texts), dtype=np.uint8).reshape(len(texts), -1)
    assert digits_to_int(fields).tolist() == values


def test_packed_scores_decode_to_exact_units():
    from store.packing import unpack_units
    assert unpack_units(b"+000150000000-000000000003", 13, 2).tolist() == [150_000_000, -3]
