"""The yardsticks of `python -m stress bench`, on the same uvicorn stack as the API.

`app` is the server's own ceiling: every request gets the same bytes, about the size of a /recommend
answer for n=10. `varied` is the least any server with data can do: each distinct (path, query) gets its
own body of the asked size (n items, made up on first ask and kept in a dict), so its answers are as
many, as large and as cold in the CPU cache as the API's kept answers.
"""
from __future__ import annotations

import random
from urllib.parse import parse_qs


def body(n: int, rng: random.Random | None = None) -> bytes:
    """A /recommend-shaped answer of n items (ids and scores from rng, or fixed)."""
    items = (b'{"customer_id":%d,"score":0.%09d,"rank":%d}' % (
        (rng.randrange(10**6, 10**7), rng.randrange(10**9), r) if rng else (1000000 + r, 123456789, r))
        for r in range(1, n + 1))
    return b'{"product_id":1,"run_id":1,"cold_start":false,"note":null,"recommendations":[%b],"count":%d}' % (
        b",".join(items), n)


BODY = body(10)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
_VARIED: dict[tuple[str, bytes], bytes] = {}
_HEADERS: dict[int, list] = {}
_RNG = random.Random(0)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def _varied_answer(key: tuple[str, bytes]) -> bytes:
    made = _VARIED[key] = body(int(parse_qs(key[1].decode()).get("n", ["10"])[0]), _RNG)
    _HEADERS.setdefault(len(made), [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(made))])
    return made


async def varied(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    key = (scope["path"], scope["query_string"])
    made = _VARIED.get(key) or _varied_answer(key)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS[len(made)]})
    await send({"type": "http.response.body", "body": made})
