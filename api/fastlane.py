"""A pure-ASGI shortcut for the one hot request, GET /recommend/{id}[?n=N], taken before FastAPI.

FastAPI's per-request work (middleware, routing, dependency solving, validation, a Response object)
costs several times what this lookup does. Requests in the plain form the API documents are answered
here with the same bytes the FastAPI route builds; anything else (HEAD, other parameters, a value out
of range, no run loaded) goes on to FastAPI, which validates it and answers with the documented error.
"""
from __future__ import annotations

from api import render
from api.reload import CacheHolder

PREFIX = "/recommend/"
MAX_ID_DIGITS = 18  # below 2**63: ids always fit the int64 product index
DEFAULT_N = 10
JSON_HEADERS = [(b"content-type", b"application/json")]


async def try_answer(holder: CacheHolder, scope, send) -> bool:
    """Answer a plain GET /recommend request; False when FastAPI must handle it."""
    if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(PREFIX):
        return False
    body = answer(holder, scope["path"], scope["query_string"])
    if body is None:
        return False
    await send({"type": "http.response.start", "status": 200,
                "headers": JSON_HEADERS + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
    return True


def answer(holder: CacheHolder, path: str, query: bytes) -> bytes | None:
    """The body for a well-formed request, or None to let FastAPI handle it."""
    cache = holder.cache
    text = path[len(PREFIX):]
    if cache is None or not (0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit()):
        return None
    product_id = int(text)
    n = parse_n(query, cache.depth)
    if product_id < 1 or n is None:
        return None
    return render.recommend_json(cache, product_id, n)


def parse_n(query: bytes, depth: int) -> int | None:
    """n from a query string that is empty or exactly n=<digits> within 1..depth, else None."""
    if not query:
        return min(DEFAULT_N, depth)
    if not query.startswith(b"n=") or not query[2:].isdigit() or len(query) > 8:
        return None
    n = int(query[2:])
    return n if 1 <= n <= depth else None
