"""Dependencies shared by the routes."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.cache import AudienceCache
from api.reload import CacheHolder


def get_holder(request: Request) -> CacheHolder:
    return request.app.state.holder


def current_cache(holder: Annotated[CacheHolder, Depends(get_holder)]) -> AudienceCache:
    """The served run, read once per request; 503 with the way out while there is none."""
    cache = holder.cache
    if cache is None:
        raise HTTPException(status_code=503, detail=holder.problem)
    return cache


Cache = Annotated[AudienceCache, Depends(current_cache)]
Holder = Annotated[CacheHolder, Depends(get_holder)]
