"""A random sample of the products the current run has audiences for."""
from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter

from api.deps import Cache
from api.models import ErrorResponse, SampleResponse
from api.responses import OrjsonResponse
from api.routes.audiences import checked_n, n_query

router = APIRouter(tags=["products"])
MAX_SAMPLE = 1000


@router.get("/products/sample", response_model=SampleResponse, summary="Random known product ids",
            responses={422: {"description": "n outside 1..1000"},
                       503: {"model": ErrorResponse, "description": "no published run loaded yet"}})
async def sample(cache: Cache, n: Annotated[int | None, n_query(10, MAX_SAMPLE, "product ids, 1..1000")] = None
                 ) -> OrjsonResponse:
    """Distinct product ids drawn at random from the run (fewer when it has fewer than n)."""
    n = checked_n(n, MAX_SAMPLE, 10, "the most one sample holds")
    total = len(cache.product_ids)
    picked = np.random.default_rng().choice(total, size=min(n, total), replace=False)
    return OrjsonResponse({"sample_products": cache.product_ids[picked], "total_available": total})
