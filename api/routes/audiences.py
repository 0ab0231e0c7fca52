"""A product's audience: /recommend (JSON) and /audiences/{id}.csv."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError

from api import render
from api.deps import Cache
from api.models import ErrorResponse, RecommendResponse
from store.names import MAX_DEPTH

MAX_ID = 2**63 - 1

router = APIRouter(tags=["audiences"])
ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="a product id (new ones get the fallback)",
                                examples=[4021])]
ERRORS = {422: {"description": "n outside 1..depth, or a product id that is not a positive integer"},
          503: {"model": ErrorResponse, "description": "no published run loaded yet"}}
DEPTH_WHY = "the depth of the current run's audiences"


def n_bounds(high: int, why: str) -> str:
    """The one wording of an `n` out of range, whichever side and whichever route."""
    return f"n must be between 1 and {high}, {why}"


def checked_n(n: int | None, high: int, default: int, why: str = DEPTH_WHY) -> int:
    """n within 1..high (for audiences the run's depth); unset means min(default, high)."""
    if n is None:
        return min(default, high)
    if not 1 <= n <= high:
        raise RequestValidationError([{
            "type": "less_than_equal" if n > high else "greater_than_equal", "loc": ("query", "n"),
            "input": n, "ctx": {"ge": 1, "le": high}, "msg": n_bounds(high, why)}])
    return n


def n_query(default: int, high: int = MAX_DEPTH, what: str = "users, 1..the run's depth") -> object:
    """The `n` parameter: bounds checked by checked_n (one message), shown in the schema as min/max."""
    return Query(description=f"how many {what} (default {default})",
                 json_schema_extra={"minimum": 1, "maximum": high})


@router.get("/recommend/{product_id}", response_model=RecommendResponse, responses=ERRORS,
            summary="The users most likely to engage with a product")
async def recommend(product_id: ProductId, cache: Cache, n: Annotated[int | None, n_query(10)] = None) -> Response:
    """The product's audience in rank order. A product the run has not seen (a new product) gets its
    catalogue category's audience when the catalogue knows it, else the fallback audience, with
    `cold_start: true` and a note saying which."""
    body = render.recommend_json(cache, product_id, checked_n(n, cache.depth, 10))
    return Response(body, media_type="application/json")


@router.get("/audiences/{product_id}.csv", response_class=Response, summary="A product's audience as CSV",
            responses={200: {"content": {"text/csv": {"example": (
                "product_id,rank,customer_id,score\n4021,1,117,0.912345678\n4021,2,52,0.876543210\n")}},
                "description": "header product_id,rank,customer_id,score, then one row per user"}, **ERRORS})
async def audience_csv(product_id: ProductId, cache: Cache,
                       n: Annotated[int | None, n_query(100)] = None) -> Response:
    """The same audience as /recommend, as CSV (for a new product: its category's, else the fallback)."""
    body = render.audience_csv(cache, product_id, checked_n(n, cache.depth, 100))
    return Response(body, media_type="text/csv", headers={
        "content-disposition": f'attachment; filename="audience_{product_id}.csv"'})
