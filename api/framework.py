"""The FastAPI application: the OpenAPI schema, /docs and every route (api/routes/).

api.main builds it in a thread once the worker is serving (importing FastAPI is most of a worker's start);
until then requests other than /health and /recommend wait for it. It shares the worker's CacheHolder.
"""
from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from api import __version__
from api.reload import CacheHolder
from api.responses import OrjsonResponse
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


def create_framework(settings: Settings, holder: CacheHolder) -> FastAPI:
    """The FastAPI app over the worker's holder. It has no lifespan: api.main loads and watches the run."""
    app = FastAPI(title="Audience Workbench API", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, default_response_class=OrjsonResponse,
                  exception_handlers={RequestValidationError: validation_error, HTTPException: http_error})
    app.state.settings, app.state.holder = settings, holder
    app.mount(ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.add_api_route("/docs", docs, include_in_schema=False)
    for router in ROUTERS:
        app.include_router(router)
    return app
