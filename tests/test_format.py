"""One spelling of a score: store.format, and the four surfaces that print one (API JSON, API CSV, CLI
export, the app's download) printing the same bytes for the same audience."""
from __future__ import annotations

import re

import numpy as np
import pytest

from store.format import score_text, score_texts

SPELLINGS = [(0.15, "0.150000000"), (0.9500000000000001, "0.950000000"), (0.0, "0.000000000"),
             (1e-9, "0.000000001"), (-3e-9, "-0.000000003"), (-1e-10, "0.000000000"), (2.5, "2.500000000"),
             (123.456789123, "123.456789123"), (-999.999999999, "-999.999999999")]


@pytest.mark.parametrize("score, text", SPELLINGS)
def test_score_text(score, text):
    assert score_text(score) == text


def test_the_bulk_spelling_is_the_same_table():
    assert score_texts(np.array([s for s, _ in SPELLINGS])).to_pylist() == [t for _, t in SPELLINGS]


HEADER = "product_id,rank,customer_id,score\n"
# Hand-worked in tests/test_api.py: product 10's audience is users 3, 4, 5; a product the run has not
# seen gets the fallback, users 1..5, whose first score is stored as the float 0.9750000000000001.
EXPECTED = {
    10: HEADER + "10,1,3,0.125000000\n10,2,4,0.075000000\n10,3,5,0.025000000\n",
    424242: HEADER + "424242,1,1,0.975000000\n424242,2,2,0.600000000\n424242,3,3,0.125000000\n"
                     "424242,4,4,0.075000000\n424242,5,5,0.025000000\n",
}
ITEM = re.compile(rb'\{"customer_id":(\d+),"score":([-0-9.]+),"rank":(\d+)\}')


def json_as_csv(product_id: int, body: bytes) -> bytes:
    """The JSON answer's items as export rows, keeping each score's characters exactly as the JSON has them."""
    rows = [b"%d,%s,%s,%s\n" % (product_id, rank, customer, score) for customer, score, rank in ITEM.findall(body)]
    return HEADER.encode() + b"".join(rows)


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory, build_api_db, api_client) -> dict:
    """Each product's audience as printed by the four surfaces."""
    import app.data
    from pipeline.cli import main as cli
    from store import queries
    from store.export import audience_csv
    folder = tmp_path_factory.mktemp("format")
    db, run_id = build_api_db(folder)
    with queries.connect(db) as con:
        run = app.data.ref(str(db), queries.run(con, run_id))
    printed = {}
    with api_client(db) as client:
        for product in EXPECTED:
            out = folder / f"export-{product}.csv"
            assert cli(["export", "--db", str(db), "--product", str(product), "--n", "5", "--out", str(out)]) == 0
            frame, _ = app.data.audience(run, product, 5)  # what the Audiences page shows and downloads
            printed[product] = {
                "api json": json_as_csv(product, client.get(f"/recommend/{product}?n=5").content),
                "api csv": client.get(f"/audiences/{product}.csv?n=5").content,
                "cli export": out.read_bytes(),
                "app download": audience_csv(product, frame).encode()}
    return printed


@pytest.mark.parametrize("product", list(EXPECTED))
def test_every_surface_prints_the_same_bytes(surfaces, product):
    assert surfaces[product] == dict.fromkeys(surfaces[product], EXPECTED[product].encode())
