"""Why this user: the facts a propensity run stores per audience entry, read back and put in words."""
from __future__ import annotations

import numpy as np
import pytest

from reports.words import sources_text, why_phrases
from store import read
from store.export import category_csv
from store.reasons import CATEGORY, NEIGHBOUR, OWN, OWN_EVENTS, RECORD, RETURNING, TASTE, pack, unpack


def record(sources=0, own="", age=0, share=0, comeback=0):
    out = np.zeros((), dtype=RECORD)
    out["sources"], out["own"], out["own_age"] = sources, OWN_EVENTS.index(own), age
    out["share"], out["comeback"] = share, comeback
    return out


@pytest.mark.parametrize("entry, category, recency, words", [
    (record(OWN, "cart", 5), None, 30, ["carted this product 5 days ago"]),
    (record(OWN, "purchased", 1), None, 30, ["bought this product 1 day ago"]),
    (record(OWN | NEIGHBOUR, "wishlist", 0, share=62), "Shoes", 2,
     ["wishlisted this product today", "buys what this product's buyers buy",
      "62% of their activity is in Shoes", "active 2 days ago"]),
    (record(CATEGORY, share=62), "Shoes", 30, ["62% of their activity is in Shoes"]),
    (record(TASTE), None, 30, ["their taste matches this product's buyers'"]),
    (record(RETURNING, comeback=41), None, 30, ["41% of users like them came back"]),
    (record(CATEGORY, share=62), None, 30, ["0% of users like them came back"]),  # no category name: no share
])
def test_an_entry_in_words(entry, category, recency, words):
    assert why_phrases(entry, category, recency) == words


@pytest.mark.parametrize("bits, text", [
    (OWN, "own interest"), (OWN | NEIGHBOUR, "own interest + neighbours"),
    (TASTE | CATEGORY | RETURNING, "taste + category + likely to return"), (0, ""),
])
def test_sources_in_words(bits, text):
    assert sources_text(bits) == text


def test_records_pack_per_product_and_unpack_in_rank_order():
    records = np.zeros((2, 3), dtype=RECORD)
    records["own_age"] = [[1, 2, 3], [4, 5, 6]]
    blobs = pack(records, np.array([3, 1]))
    assert [len(b) for b in blobs] == [3 * RECORD.itemsize, RECORD.itemsize] and RECORD.itemsize == 6
    assert unpack(blobs[0])["own_age"].tolist() == [1, 2, 3] and unpack(blobs[1])["own_age"].tolist() == [4]
    assert unpack(None).size == 0


def test_a_propensity_run_stores_why_each_user_is_in_the_audience(propensity_db):
    con = read.connect(propensity_db)
    run_id = read.current_run_id(con)
    ids, _ = read.audience(con, run_id, 10)
    facts = read.reasons(con, run_id, 10)
    assert len(facts) == len(ids) == 5 and 1 not in ids  # user 1 bought product 10: left out
    by_user = dict(zip(ids.tolist(), facts))
    six, two = by_user[6], by_user[2]
    assert six["sources"] & OWN and OWN_EVENTS[six["own"]] == "cart" and six["own_age"] == 8
    assert two["sources"] & OWN and OWN_EVENTS[two["own"]] == "cart" and two["own_age"] == 73
    assert why_phrases(six, "Shoes", 8)[0] == "carted this product 8 days ago"
    wish = dict(zip(read.audience(con, run_id, 13)[0].tolist(), read.reasons(con, run_id, 13)))[2]
    assert why_phrases(wish, "Bags", 38)[0] == "wishlisted this product 38 days ago"
    assert len(read.reasons(con, run_id, 10, n=2)) == 2 and read.reasons(con, run_id, 999).size == 0


def test_older_databases_and_other_strategies_have_no_reasons(propensity_db, without_model_tables, tmp_path,
                                                              make_workbench_db):
    old = without_model_tables(propensity_db, tmp_path)
    con = read.connect(old)
    run_id = read.current_run_id(con)
    assert read.reasons(con, run_id, 10).size == 0 and not read.has_reasons(con, run_id)
    assert read.calibration(con, run_id) == [] and read.gain(con, run_id) == []
    engagement = read.connect(make_workbench_db(tmp_path))
    assert not read.has_reasons(engagement, read.current_run_id(engagement))
    assert read.categories(engagement, 1) == []


def test_a_category_exports_like_a_product_with_its_name_quoted_when_needed(propensity_db):
    con = read.connect(propensity_db)
    run_id = read.current_run_id(con)
    assert read.categories(con, run_id) == ["Bags", "Hats, caps", "Shoes"]
    from store.queries import category_audience
    audience = category_audience(con, run_id, "Hats, caps", 2)
    text = category_csv("Hats, caps", audience)
    lines = text.splitlines()
    assert lines[0] == "category,rank,customer_id,score" and len(lines) == 3
    assert lines[1].startswith(f'"Hats, caps",1,{int(audience["customer_id"].iloc[0])},') and len(lines[1].rsplit(".", 1)[1]) == 9


def test_category_csv_spells_scores_as_the_product_export_does():
    import pandas as pd
    frame = pd.DataFrame({"rank": [1, 2], "customer_id": [7, 3], "score": [0.15, 2.5]})
    assert category_csv("Shoes", frame) == "category,rank,customer_id,score\nShoes,1,7,0.150000000\nShoes,2,3,2.500000000\n"
    assert category_csv('The "best"', frame.head(1)).splitlines()[1] == '"The ""best""",1,7,0.150000000'
