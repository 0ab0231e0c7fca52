"""`uvicorn api.main:app`: the serving API over the current run in $AUDIENCE_DB."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api import __version__
from api.fastlane import RecommendFastLane
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
    await asyncio.to_thread(holder.poll, True)
    watcher = asyncio.create_task(watch(holder))
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    holder.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="Audience Workbench API", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.holder = CacheHolder(settings)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(RecommendFastLane, holder=app.state.holder)
    return app


app = create_app()
