"""One user's features and standing in the current run."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import Cache
from api.models import ErrorResponse, UserResponse
from api.responses import OrjsonResponse

router = APIRouter(tags=["users"])


@router.get("/users/{customer_id}", response_model=UserResponse, summary="A user's features and rank",
            responses={404: {"model": ErrorResponse, "description": "the user is not in the current run"},
                       503: {"model": ErrorResponse, "description": "no published run loaded yet"}})
async def user(customer_id: Annotated[int, Path(ge=1, le=2**63 - 1, examples=[117])], cache: Cache) -> OrjsonResponse:
    """The user's engagement features, engagement rank (1 = most engaged) and how many audiences hold them."""
    users = cache.users
    found = users.find(customer_id)
    if found is None:
        raise HTTPException(404, f"customer {customer_id} is not in run {cache.run_id}")
    return OrjsonResponse({**found, "run_id": cache.run_id, "users_in_run": len(users)})
