"""`uvicorn api.main:app`: the serving API over the current run in $AUDIENCE_DB."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from api import __version__, fastlane
from api.reload import CacheHolder, watch
from api.render import OrjsonResponse
from api.routes import ROUTERS
from api.settings import Settings

DESCRIPTION = """Audiences of the current published run, answered from memory.

The API maps the current run's serving snapshot at startup, and swaps in a newly published run (or a
rollback with `python -m pipeline publish --run ID`) within a few seconds, with no failed request. Until
a run is published every data endpoint answers 503 with the fix: `python -m pipeline demo`."""
# Swagger UI's script and style from a Python package (fastapi-offline ships them): /docs works offline.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
MAX_ECHO = 100  # characters of a rejected input a 422 may repeat


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    holder: CacheHolder = app.state.holder
    # Cache builds (only when a snapshot must be rebuilt) run in a thread beside the event loop; hand the
    # GIL back to the loop every 1 ms instead of every 5 ms, or requests queue behind a build.
    sys.setswitchinterval(0.001)
    await asyncio.to_thread(holder.poll)
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
    before its middleware and routing (see api.fastlane), and HEAD answered wherever GET is."""

    holder: CacheHolder

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "HEAD":
                scope, send = {**scope, "method": "GET"}, _headers_only(send)
            body = fastlane.answer(self.holder.cache, scope)
            if body is not None:  # sent here, not from a helper coroutine: one frame less on the hot path
                await send({"type": "http.response.start", "status": 200, "headers": fastlane.headers(body)})
                await send({"type": "http.response.body", "body": body})
                return
        await super().__call__(scope, receive, send)


def _headers_only(send):
    """HEAD: the GET answer's status and headers (content-length included), without its body."""
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)
    return wrapped


def _short(value):
    """A rejected input as a 422 repeats it: at most MAX_ECHO characters."""
    if isinstance(value, int) and not -2**63 <= value < 2**64:
        value = str(value)  # orjson writes 64-bit integers only: a longer one is echoed as its digits
    text = value if isinstance(value, str) else str(value)
    return value if len(text) <= MAX_ECHO else text[:MAX_ECHO - 1] + "…"


async def validation_error(request: Request, exc: RequestValidationError) -> OrjsonResponse:
    errors = jsonable_encoder(exc.errors())
    for error in errors:
        if "input" in error:
            error["input"] = _short(error["input"])
    return OrjsonResponse(status_code=422, content={"detail": errors})


async def http_error(request: Request, exc: HTTPException) -> OrjsonResponse:
    return OrjsonResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)


async def docs(request: Request):
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="Audience Workbench API - docs",
                               swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png")


def create_app(settings: Settings | None = None) -> AudienceAPI:
    settings = settings or Settings.from_env()
    app = AudienceAPI(title="Audience Workbench API", version=__version__, description=DESCRIPTION,
                      lifespan=lifespan, docs_url=None, redoc_url=None, default_response_class=OrjsonResponse,
                      exception_handlers={RequestValidationError: validation_error, HTTPException: http_error})
    app.state.settings = settings
    app.state.holder = app.holder = CacheHolder(settings)
    app.mount(ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.add_api_route("/docs", docs, include_in_schema=False)
    for router in ROUTERS:
        app.include_router(router)
    return app


app = create_app()
