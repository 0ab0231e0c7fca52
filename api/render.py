"""Every answer's bytes, rendered with orjson; scores spelled by store.format (as JSON numbers with the
same characters the CSV, the CLI export and the app download print).

/recommend is the hot path: an answer is rendered once per worker (its items with orjson, wrapped with an
orjson.Fragment) and kept whole by api.cache.Answers; no model validation or JSON encoder per request
(see stress/bench.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from orjson import Fragment

from api.cache import AudienceCache
from store.format import units_text

if TYPE_CHECKING:
    from api.reload import CacheHolder

CSV_HEADER = "product_id,rank,customer_id,score\n"
CSV_TYPE = "text/csv; charset=utf-8"


def item(customer_id: int, units: int, rank: int) -> bytes:
    return orjson.dumps({"customer_id": customer_id, "score": Fragment(units_text(units)), "rank": rank})


def cold_start_note(cache: AudienceCache, product_id: int, category: str | None) -> str:
    if category is not None:
        return (f"new product: {product_id} was not seen in run {cache.run_id}; the catalogue lists it under "
                f"category {category!r}, so it gets that category's audience (cold start by category)")
    return (f"new product: {product_id} was not seen in run {cache.run_id}, "
            "so it gets the fallback audience (the most engaged users overall)")


def health_json(holder: CacheHolder) -> tuple[int, bytes]:
    """/health: healthy with model_loaded true once a run is served (detail says why a newer one could not
    be loaded, while the last good run is still served); 503 with the fix before that."""
    cache = holder.cache
    if cache is None:
        return 503, orjson.dumps({"status": "unavailable", "model_loaded": False, "run_id": None, "products": 0,
                                  "loaded_at": None, "detail": holder.problem})
    return 200, orjson.dumps({"status": "healthy", "model_loaded": True, "run_id": cache.run_id,
                              "products": len(cache.product_ids), "loaded_at": cache.loaded_at,
                              "detail": holder.stale})


def recommend_json(cache: AudienceCache, product_id: int, n: int) -> bytes:
    """The /recommend body: the first n of the product's list, or its cold-start answer."""
    row = cache.row(product_id)
    if row < 0:
        return _cold_json(cache, product_id, n)
    k = cache.count(row, n)
    items = render_items(cache.list_pairs(cache.list_index(row), k))
    return orjson.dumps({"product_id": product_id, "run_id": cache.run_id, "cold_start": False, "note": None,
                         "recommendations": Fragment(b"[%b]" % items), "count": k})


def render_items(flat: list[int]) -> bytes:
    """JSON items of flat (id, score units) pairs, joined by commas."""
    return b",".join(item(c, s, r) for c, s, r in zip(flat[::2], flat[1::2], range(1, len(flat) // 2 + 1)))


def _cold_json(cache: AudienceCache, product_id: int, n: int) -> bytes:
    """A product the run has not seen: its catalogue category's audience, else the fallback."""
    category = cache.category(product_id)
    flat = cache.cold_pairs(category, n)
    return orjson.dumps({"product_id": product_id, "run_id": cache.run_id, "cold_start": True,
                         "note": cold_start_note(cache, product_id, category),
                         "recommendations": Fragment(b"[%b]" % render_items(flat)), "count": len(flat) // 2})


def audience_csv(cache: AudienceCache, product_id: int, n: int) -> bytes:
    """The same audience as /recommend, as CSV."""
    flat = cache.pairs(product_id, n)[0]
    lines = [f"{product_id},{r},{c},{units_text(s)}\n"
             for r, c, s in zip(range(1, len(flat) // 2 + 1), flat[::2], flat[1::2])]
    return (CSV_HEADER + "".join(lines)).encode()
