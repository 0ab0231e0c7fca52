"""Response bodies built straight from the cache as bytes: no model validation or JSON encoder per
request, which is what lets /recommend run near the server's own ceiling (see stress/bench.py)."""
from __future__ import annotations

import functools
import json

from api.cache import AudienceCache

CSV_HEADER = "product_id,rank,customer_id,score\n"


def cold_start_note(cache: AudienceCache, product_id: int) -> str:
    return (f"new product: {product_id} was not seen in run {cache.run_id}, "
            "so it gets the fallback audience (the most engaged users overall)")


@functools.lru_cache(maxsize=1024)
def items_format(k: int) -> str:
    """One %-format for k recommendations, ranks baked in: a whole answer in a single C-level call."""
    return ",".join(['{"customer_id":%d,"score":0.%09d,"rank":' + str(r) + "}" for r in range(1, k + 1)])


def recommend_json(cache: AudienceCache, product_id: int, n: int) -> bytes:
    """The /recommend body. Scores in [0, 1) print as 0.<9 digits> straight from the stored integers;
    others (and the fallback's floats) as the shortest text that reads back as the stored float."""
    row = cache.row(product_id)
    if row >= 0 and cache.unit_scores:
        pairs = cache.pairs(row, n)
        count = len(pairs) // 2
        items = items_format(count) % tuple(pairs)
    else:
        ids, scores = cache.audience(row, n)
        count = len(ids)
        items = ",".join([f'{{"customer_id":{c},"score":{s!r},"rank":{r}}}'
                          for r, c, s in zip(range(1, count + 1), ids, scores)])
    if row < 0:
        head = f'"cold_start":true,"note":{json.dumps(cold_start_note(cache, product_id))}'
    else:
        head = '"cold_start":false,"note":null'
    return (f'{{"product_id":{product_id},"run_id":{cache.run_id},{head},'
            f'"recommendations":[{items}],"count":{count}}}').encode()


def audience_csv(cache: AudienceCache, product_id: int, n: int) -> bytes:
    ids, scores = cache.audience(cache.row(product_id), n)
    lines = [f"{product_id},{r},{c},{s!r}\n" for r, c, s in zip(range(1, len(ids) + 1), ids, scores)]
    return (CSV_HEADER + "".join(lines)).encode()
