"""A product's audience: /recommend (JSON) and /audiences/{id}.csv."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError

from api import render
from api.deps import Cache
from api.models import ErrorResponse, RecommendResponse

MAX_ID = 2**63 - 1
MAX_DEPTH = 1000  # store.schema.MAX_DEPTH: no run is deeper

router = APIRouter(tags=["audiences"])
ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="a product id (new ones get the fallback)",
                                examples=[4021])]
ERRORS = {422: {"description": "n outside 1..depth, or a product id that is not a positive integer"},
          503: {"model": ErrorResponse, "description": "no published run loaded yet"}}


def checked_n(n: int | None, depth: int, default: int) -> int:
    """n within 1..depth (the run's audience size); unset means min(default, depth)."""
    if n is None:
        return min(default, depth)
    if n > depth:
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": ("query", "n"), "input": n, "ctx": {"le": depth},
            "msg": f"n must be between 1 and {depth}, the depth of the current run's audiences"}])
    return n


@router.get("/recommend/{product_id}", response_model=RecommendResponse, responses=ERRORS,
            summary="The users most likely to engage with a product")
async def recommend(product_id: ProductId, cache: Cache,
                    n: Annotated[int | None, Query(ge=1, le=MAX_DEPTH, description=(
                        "how many users, 1..the run's depth (default 10)"))] = None) -> Response:
    """The product's audience in rank order. A product the run has not seen (a new product) gets the
    fallback audience, with `cold_start: true` and a note saying so."""
    body = render.recommend_json(cache, product_id, checked_n(n, cache.depth, 10))
    return Response(body, media_type="application/json")


@router.get("/audiences/{product_id}.csv", response_class=Response, summary="A product's audience as CSV",
            responses={200: {"content": {"text/csv": {"example": (
                "product_id,rank,customer_id,score\n4021,1,117,0.912345678\n4021,2,52,0.87654321\n")}},
                "description": "header product_id,rank,customer_id,score, then one row per user"}, **ERRORS})
async def audience_csv(product_id: ProductId, cache: Cache,
                       n: Annotated[int | None, Query(ge=1, le=MAX_DEPTH, description=(
                           "how many users, 1..the run's depth (default 100)"))] = None) -> Response:
    """The same audience as /recommend, as CSV (the fallback audience for a new product)."""
    body = render.audience_csv(cache, product_id, checked_n(n, cache.depth, 100))
    return Response(body, media_type="text/csv", headers={
        "content-disposition": f'attachment; filename="audience_{product_id}.csv"'})
