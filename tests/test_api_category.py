"""Cold start by category: a product the run has not ranked but the catalogue lists gets its category's
audience (cold_start: true, a note naming the category) before the global fallback.

The run is tests/test_api.py's (fallback users 1..5; products 10, 11, 12 ranked). The catalogue tables,
written by the pipeline when a catalogue is given, are created here by hand before the run is published:
shoes -> users 4 (0.5), 5 (0.25); hats -> user 2 (0.75); bags has no audience. Products 500 (shoes),
501 (hats), 502 (bags) and 503 (listed without a category) are in the catalogue only; 10 is in both (its
own audience wins).
"""
from __future__ import annotations

import sqlite3

import pytest

from store import writer

CATALOGUE = [(10, "shoes"), (500, "shoes"), (501, "hats"), (502, "bags"), (503, None)]
CATEGORY_AUDIENCES = [("shoes", 1, 4, 0.5), ("shoes", 2, 5, 0.25), ("hats", 1, 2, 0.75)]


@pytest.fixture(scope="module")
def client(tmp_path_factory, build_api_db, api_client):
    db, run_id = build_api_db(tmp_path_factory.mktemp("category"), publish=False)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE IF NOT EXISTS catalogue_products (run_id INTEGER, product_id INTEGER, category TEXT)")
        con.execute("CREATE TABLE IF NOT EXISTS category_audiences "
                    "(run_id INTEGER, category TEXT, rank INTEGER, customer_id INTEGER, score FLOAT)")
        con.executemany("INSERT INTO catalogue_products VALUES (?, ?, ?)", [(run_id, *row) for row in CATALOGUE])
        con.executemany("INSERT INTO category_audiences VALUES (?, ?, ?, ?, ?)",
                        [(run_id, *row) for row in CATEGORY_AUDIENCES])
    writer.publish(writer.connect(db), run_id)
    with api_client(db) as c:
        yield c


@pytest.mark.parametrize("product, category, expected", [
    (500, "shoes", [(4, "0.500000000"), (5, "0.250000000")]),
    (501, "hats", [(2, "0.750000000")]),
])
def test_a_catalogue_product_gets_its_categorys_audience(client, product, category, expected):
    resp = client.get(f"/recommend/{product}?n=5")
    items = ",".join(f'{{"customer_id":{u},"score":{s},"rank":{r}}}' for r, (u, s) in enumerate(expected, 1))
    assert resp.text == (
        f'{{"product_id":{product},"run_id":1,"cold_start":true,"note":"new product: {product} was not seen in '
        f"run 1; the catalogue lists it under category '{category}', so it gets that category's audience "
        f'(cold start by category)","recommendations":[{items}],"count":{len(expected)}}}')
    assert client.get(f"/audiences/{product}.csv?n=1").text == (
        f"product_id,rank,customer_id,score\n{product},1,{expected[0][0]},{expected[0][1]}\n")


@pytest.mark.parametrize("product", [502, 503, 999])  # a category without an audience; none; not listed
def test_otherwise_the_global_fallback(client, product):
    body = client.get(f"/recommend/{product}?n=2").json()
    assert body["cold_start"] is True and "fallback" in body["note"]
    assert [r["customer_id"] for r in body["recommendations"]] == [1, 2]


def test_a_ranked_product_keeps_its_own_audience(client):
    body = client.get("/recommend/10?n=5").json()
    assert body["cold_start"] is False and [r["customer_id"] for r in body["recommendations"]] == [3, 4, 5]
