"""Response bodies built straight from the cache as bytes: no model validation or JSON encoder per
request, which is what lets /recommend run near the server's own ceiling (see stress/bench.py)."""
from __future__ import annotations

import json
from array import array
from itertools import accumulate

from api.cache import AudienceCache
from store.names import SCORE_SCALE

CSV_HEADER = "product_id,rank,customer_id,score\n"
ITEM = b'{"customer_id":%d,"score":0.%09d,"rank":%d}'  # scores in [0, 1), as stored integers
HEAD = b'{"product_id":%d,"run_id":%d,"cold_start":false,"note":null,"recommendations":['


def cold_start_note(cache: AudienceCache, product_id: int) -> str:
    return (f"new product: {product_id} was not seen in run {cache.run_id}, "
            "so it gets the fallback audience (the most engaged users overall)")


def recommend_json(cache: AudienceCache, product_id: int, n: int) -> bytes:
    """The /recommend body: a known product's items are sliced from its list rendered once."""
    row = cache.row(product_id)
    if row < 0:
        return _fallback_json(cache, product_id, n)
    k = cache.count(row, n)
    return HEAD % (product_id, cache.run_id) + list_items(cache, cache.list_index(row), k) + b'],"count":%d}' % k


def list_items(cache: AudienceCache, index: int, k: int) -> bytes:
    """The first k items of list `index` as JSON, joined by commas."""
    hit = cache.rendered.get(index)
    if hit is None and not cache.rendered.full:
        hit = render_items(cache, index, cache.entries.shape[1])
        cache.rendered.add(index, *hit)
    if hit is None:  # over budget (a per-product strategy): render just these k
        return render_items(cache, index, k)[0]
    items, ends = hit
    return items[:ends[k]]


def render_items(cache: AudienceCache, index: int, k: int) -> tuple[bytes, array]:
    """k items of a list and where each ends (ends[i] = length of the first i items). Scores print
    as 0.<9 digits> when every score of the run is in [0, 1), else as the shortest text that reads
    back as the stored float."""
    flat = cache.list_pairs(index, k)
    if cache.unit_scores:
        parts = [ITEM % (c, s, r) for c, s, r in zip(flat[::2], flat[1::2], range(1, k + 1))]
    else:
        parts = [b'{"customer_id":%d,"score":%s,"rank":%d}' % (c, repr(s / SCORE_SCALE).encode(), r)
                 for c, s, r in zip(flat[::2], flat[1::2], range(1, k + 1))]
    ends = array("q", [0, *(end - 1 for end in accumulate(len(part) + 1 for part in parts))])  # less the comma
    return b",".join(parts), ends


def _fallback_json(cache: AudienceCache, product_id: int, n: int) -> bytes:
    ids, scores = cache.fallback_ids[:n], cache.fallback_scores[:n]
    items = ",".join([f'{{"customer_id":{c},"score":{s!r},"rank":{r}}}'
                      for r, c, s in zip(range(1, len(ids) + 1), ids, scores)])
    return (f'{{"product_id":{product_id},"run_id":{cache.run_id},"cold_start":true,'
            f'"note":{json.dumps(cold_start_note(cache, product_id))},"recommendations":[{items}],'
            f'"count":{len(ids)}}}').encode()


def audience_csv(cache: AudienceCache, product_id: int, n: int) -> bytes:
    ids, scores = cache.audience(cache.row(product_id), n)
    lines = [f"{product_id},{r},{c},{s!r}\n" for r, c, s in zip(range(1, len(ids) + 1), ids, scores)]
    return (CSV_HEADER + "".join(lines)).encode()
