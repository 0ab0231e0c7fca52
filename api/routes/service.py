"""Service endpoints: /, /health and /metrics."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api import __version__
from api.deps import Cache, Holder
from api.models import ErrorResponse, HealthResponse, MetricsResponse, RootResponse
from api.render import health_json
from api.responses import OrjsonResponse
from reports.gain import reach_table
from reports.words import NO_CALIBRATION, NO_GAIN
from store.names import published_label, strategy_label

router = APIRouter(tags=["service"])

ENDPOINTS = {
    "/recommend/{product_id}?n=10": "a product's audience as JSON (new products get the fallback audience)",
    "/audiences/{product_id}.csv?n=100": "the same audience as CSV",
    "/users/{customer_id}": "a user's features, engagement rank and how many audiences hold them",
    "/products/sample?n=10": "random product ids of the current run",
    "/health": "whether a run is loaded, and which",
    "/metrics": "the current run's counts, statistics and evaluation",
    "/docs": "this API's OpenAPI documentation",
}


@router.get("/", response_model=RootResponse, summary="What this API offers")
async def root() -> OrjsonResponse:
    return OrjsonResponse({"message": "Audience Workbench API: the users most likely to engage with each product",
                           "version": __version__, "endpoints": ENDPOINTS})


@router.get("/health", response_model=HealthResponse, summary="Is a run loaded",
            responses={503: {"model": HealthResponse, "description": "no run loaded yet, with the fix"}})
async def health(holder: Holder) -> Response:
    """healthy with model_loaded true once a run is served (detail says why a newer one could not be
    loaded, while the last good run is still served); 503 with the fix before that."""
    status, body = health_json(holder)  # what api.main answers itself, before this app is built
    return Response(body, status_code=status, media_type="application/json")


@router.get("/metrics", response_model=MetricsResponse, summary="The current run's figures",
            responses={503: {"model": ErrorResponse, "description": "no published run loaded yet"}})
async def metrics(cache: Cache) -> OrjsonResponse:
    """Counts, the run's statistics and data-quality checks, and whatever offline evaluation it has."""
    params = cache.run["params"]
    return OrjsonResponse({
        "run_id": cache.run_id, "loaded_at": cache.loaded_at, "strategy": params.get("strategy", "engagement"),
        "params": params,
        "counts": {"products": len(cache.product_ids), "users": int(cache.run["summary"].get("users", 0)),
                   "audience_entries": int(cache.sizes.sum()), "depth": cache.depth,
                   "fallback_size": cache.fallback_size},
        "stats": cache.stats, "data_quality": cache.data_quality, "evaluation": cache.evaluation,
        "headline": headline(cache.evaluation, params.get("strategy", "engagement"), params),
        "calibration": calibration(cache.calibration),
        "gain": gain(cache.gain, params.get("strategy", "engagement"))})


def calibration(deciles: list[dict]) -> dict:
    """The propensity scores' expected vs observed engagements per decile on the holdout, or why there are none."""
    return {"strategy": "propensity", "deciles": deciles, "note": None if deciles else NO_CALIBRATION}


def gain(rows: list[dict], strategy: str) -> dict:
    """The published strategy's holdout gain curve and the users it takes to reach 50 / 70 / 90% of what its
    lists caught, or why there is none."""
    curve = [{k: r[k] for k in ("n", "hits", "share_of_truth", "share_of_list")} for r in rows if r["strategy"] == strategy]
    reach = reach_table([r["share_of_list"] for r in curve]) if curve else {}
    return {"strategy": strategy, "users_for_share": {f"{share:g}": n for share, n in reach.items()},
            "curve": curve, "note": None if curve else NO_GAIN}


HEADLINE_METRICS = ("recall_micro", "recall_micro_se", "precision_micro", "hit_rate", "ndcg", "user_coverage",
                    "exposure_gini", "lift_over_random", "reachable_ceiling")


def headline(evaluation: list[dict], strategy: str, params: dict) -> dict:
    """The published strategy's holdout scores at k = 100 (its capped variant when the run has a cap)."""
    cap = params.get("max_audiences_per_user")
    if published_label({strategy_label(r["strategy"], r["cap"]) for r in evaluation}, params) == strategy:
        cap = None  # the run was not scored under its cap: report the uncapped rows
    values = {r["metric"]: r["value"] for r in evaluation
              if r["strategy"] == strategy and r["cap"] == cap and r["k"] == 100}
    return {"strategy": strategy, "cap": cap, "selection": params.get("strategy_selection"), "k": 100,
            **{m: values.get(m) for m in HEADLINE_METRICS}}
