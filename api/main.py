"""`uvicorn api.main:app`: the serving API over the current run in $AUDIENCE_DB.

A worker is serving within a second whatever the run's size: it maps the run's snapshot (api.cache),
answers GET /health and the hot GET /recommend itself (api.fastlane), and builds the FastAPI app
(api.framework: the schema, /docs and every other route) in a thread once it is up. Importing FastAPI and
pydantic's models is most of a worker's start (~0.7 s of CPU here, `python -X importtime`), so this module
must not import them: a test holds it to that. Requests for other routes in a worker's first second wait
for the build; none fails.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc

from api import fastlane, render
from api.reload import CacheHolder, look, watch
from api.settings import Settings


class AudienceAPI:
    """The ASGI app: its own lifespan (load, then watch the published run), /health and /recommend
    answered here with the bytes the FastAPI routes build, HEAD answered wherever GET is, and everything
    else handed to the FastAPI app."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.holder = CacheHolder(settings)
        self._framework: asyncio.Future | None = None  # the build, while it runs
        self._built = None  # the FastAPI app once built (a future belongs to one event loop; this does not)
        self._watcher: asyncio.Task | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http":
            if scope["method"] == "HEAD":
                scope, send = {**scope, "method": "GET"}, _headers_only(send)
            status, body = 200, fastlane.answer(self.holder.cache, scope)
            if body is None and scope["path"] == fastlane.HEALTH and scope["method"] == "GET":
                status, body = render.health_json(self.holder)
            if body is not None:  # sent here, not from a helper coroutine: one frame less on the hot path
                await send({"type": "http.response.start", "status": status, "headers": fastlane.headers(body)})
                await send({"type": "http.response.body", "body": body})
                return
        framework = await self.framework()
        await framework(scope, receive, send)

    async def framework(self):
        """The FastAPI app, built once per worker in a thread beside the event loop; requests that come
        while it is being built wait for that one build."""
        if self._built is not None:
            return self._built
        if self._framework is None:
            self._framework = asyncio.ensure_future(self._build())
        return await asyncio.shield(self._framework)

    async def _build(self):
        self._built = await asyncio.to_thread(_create_framework, self.settings, self.holder)
        # The app's long-lived objects (FastAPI, pydantic, the cache) never become garbage: keep the
        # collector from rescanning them while requests allocate.
        gc.freeze()
        return self._built

    async def _lifespan(self, receive, send) -> None:
        await receive()  # lifespan.startup
        await look(self.holder)  # a snapshot rebuilt only when missing or damaged, in a thread
        self._watcher = asyncio.create_task(watch(self.holder))
        asyncio.ensure_future(self.framework())
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        self.holder.close()
        await send({"type": "lifespan.shutdown.complete"})


def _create_framework(settings: Settings, holder: CacheHolder):
    from api.framework import create_framework  # here, not at the top: see the module's docstring
    return create_framework(settings, holder)


def _headers_only(send):
    """HEAD: the GET answer's status and headers (content-length included), without its body."""
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)
    return wrapped


def create_app(settings: Settings | None = None) -> AudienceAPI:
    return AudienceAPI(settings or Settings.from_env())


app = create_app()
