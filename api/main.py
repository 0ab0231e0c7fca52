"""`uvicorn api.main:app`: the serving API over the current run in $AUDIENCE_DB."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api import __version__
from api import fastlane
from api.reload import CacheHolder, watch
from api.routes import ROUTERS
from api.settings import Settings

DESCRIPTION = """Audiences of the current published run, answered from memory.

The API loads the current run at startup, and swaps in a newly published run (or a rollback with
`python -m pipeline publish --run ID`) within a few seconds, with no failed request. Until a run is
published every data endpoint answers 503 with the fix: `python -m pipeline demo`."""


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    holder: CacheHolder = app.state.holder
    # Cache builds run in a thread beside the event loop; hand the GIL back to the loop every 1 ms
    # instead of every 5 ms, or requests queue behind a build for up to 5 ms at a time.
    sys.setswitchinterval(0.001)
    await asyncio.to_thread(holder.poll, True)
    # The app's long-lived objects (FastAPI, pydantic, the cache) never become garbage: keep the
    # collector from rescanning them while requests allocate.
    gc.freeze()
    watcher = asyncio.create_task(watch(holder))
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    holder.close()


class AudienceAPI(FastAPI):
    """FastAPI for the schema, the docs and every route, with the hot /recommend lookup answered
    before its middleware and routing (see api.fastlane)."""

    holder: CacheHolder

    async def __call__(self, scope, receive, send) -> None:
        body = fastlane.answer(self.holder.cache, scope)
        if body is None:
            await super().__call__(scope, receive, send)
        else:
            await fastlane.send_json(send, body)


def create_app(settings: Settings | None = None) -> AudienceAPI:
    settings = settings or Settings.from_env()
    app = AudienceAPI(title="Audience Workbench API", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.holder = app.holder = CacheHolder(settings)
    for router in ROUTERS:
        app.include_router(router)
    return app


app = create_app()
