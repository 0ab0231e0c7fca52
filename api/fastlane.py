"""A pure-ASGI shortcut for the one hot request, GET /recommend/{id}[?n=N], taken before FastAPI.

FastAPI's per-request work (middleware, routing, dependency solving, validation, a Response object)
costs several times what this lookup does. Requests in the plain form the API documents are answered
here with the same bytes the FastAPI route builds (a HEAD arrives here as a GET whose body is dropped,
see api.main); anything else (other parameters, a value out of range, no run loaded) goes on to FastAPI,
which validates it and answers with the documented error. GET /health is answered before FastAPI too
(api.main), so a worker is healthy before FastAPI is even imported. A known product's answer is kept whole
(api.cache.Answers), so a request asked before costs one dict lookup.
"""
from __future__ import annotations

from api import render
from api.cache import AudienceCache

PREFIX = "/recommend/"
HEALTH = "/health"  # answered by api.main before FastAPI too: see there
MAX_ID_DIGITS = 18  # below 2**63: ids always fit the int64 product index
DEFAULT_N = 10
JSON_TYPE = (b"content-type", b"application/json")
_HEADERS: dict[int, list] = {}  # by body length: a few hundred lists, shared, so they stay in the CPU cache


def answer(cache: AudienceCache | None, scope: dict) -> bytes | None:
    """The body answering a plain GET /recommend (an http scope), or None to let FastAPI answer."""
    if cache is None or scope["method"] != "GET":
        return None
    key = (scope["path"], scope["query_string"])
    return cache.answers.bodies.get(key) or _render(cache, key)


def headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """The response headers of a JSON body."""
    found = _HEADERS.get(len(body))
    if found is None:
        found = _HEADERS[len(body)] = [JSON_TYPE, (b"content-length", b"%d" % len(body))]
    return found


def _render(cache: AudienceCache, key: tuple[str, bytes]) -> bytes | None:
    """The answer of a plain request, kept when the run knows the product (cold-start answers are not
    kept, so a scan of unknown ids cannot push the popular answers out); None for anything else."""
    path, query = key
    text = path[len(PREFIX):]
    if not (path.startswith(PREFIX) and 0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit()):
        return None
    product_id = int(text)
    n = parse_n(query, cache.depth)
    if product_id < 1 or n is None:
        return None
    body = render.recommend_json(cache, product_id, n)
    return cache.answers.add(key, body) if cache.row(product_id) >= 0 else body


def parse_n(query: bytes, depth: int) -> int | None:
    """n from a query string that is empty or exactly n=<digits> within 1..depth, else None."""
    if not query:
        return min(DEFAULT_N, depth)
    if not query.startswith(b"n=") or not query[2:].isdigit() or len(query) > 8:
        return None
    n = int(query[2:])
    return n if 1 <= n <= depth else None
