"""A random sample of the products the current run has audiences for."""
from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from api.deps import Cache
from api.models import ErrorResponse, SampleResponse

router = APIRouter(tags=["products"])


@router.get("/products/sample", response_model=SampleResponse, summary="Random known product ids",
            responses={503: {"model": ErrorResponse, "description": "no published run loaded yet"}})
async def sample(cache: Cache, n: Annotated[int, Query(ge=1, le=1000, description="how many")] = 10) -> dict:
    """Distinct product ids drawn at random from the run (fewer when it has fewer than n)."""
    total = len(cache.product_ids)
    picked = np.random.default_rng().choice(total, size=min(n, total), replace=False)
    return {"sample_products": cache.product_ids[picked].tolist(), "total_available": total}
