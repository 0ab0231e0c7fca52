"""Response bodies built straight from the cache as bytes: no model validation or JSON encoder per
request, which is what lets /recommend run near the server's own ceiling (see stress/bench.py)."""
from __future__ import annotations

import json

from api.cache import AudienceCache

CSV_HEADER = "product_id,rank,customer_id,score\n"


def cold_start_note(cache: AudienceCache, product_id: int) -> str:
    return (f"new product: {product_id} was not seen in run {cache.run_id}, "
            "so it gets the fallback audience (the most engaged users overall)")


def recommend_json(cache: AudienceCache, product_id: int, n: int) -> bytes:
    """The /recommend body; scores print as the shortest text that reads back as the stored float."""
    row = cache.row(product_id)
    ids, scores = cache.audience(row, n)
    items = ",".join([f'{{"customer_id":{c},"score":{s!r},"rank":{r}}}'
                      for r, c, s in zip(range(1, len(ids) + 1), ids, scores)])
    if row < 0:
        head = f'"cold_start":true,"note":{json.dumps(cold_start_note(cache, product_id))}'
    else:
        head = '"cold_start":false,"note":null'
    return (f'{{"product_id":{product_id},"run_id":{cache.run_id},{head},'
            f'"recommendations":[{items}],"count":{len(ids)}}}').encode()


def audience_csv(cache: AudienceCache, product_id: int, n: int) -> bytes:
    ids, scores = cache.audience(cache.row(product_id), n)
    lines = [f"{product_id},{r},{c},{s!r}\n" for r, c, s in zip(range(1, len(ids) + 1), ids, scores)]
    return (CSV_HEADER + "".join(lines)).encode()
