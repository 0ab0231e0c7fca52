"""The response class of the FastAPI routes (api.render, which api.main uses before FastAPI is loaded,
makes bytes only and imports no web framework)."""
from __future__ import annotations

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """JSON answers rendered by orjson (FastAPI's own ORJSONResponse is deprecated)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
