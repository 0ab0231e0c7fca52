"""The server's own ceiling for `python -m stress bench`: an ASGI app that answers every request
with the same bytes, about the size of a /recommend answer for n=10, on the same uvicorn stack."""
from __future__ import annotations

BODY = b'{"product_id":1,"run_id":1,"cold_start":false,"note":null,"recommendations":[' + b",".join(
    b'{"customer_id":%d,"score":0.123456789,"rank":%d}' % (1000000 + r, r) for r in range(1, 11)) + b'],"count":10}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
