"""Response shapes, for the OpenAPI schema and /docs (the hot routes build their bytes directly)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


def _example(example: dict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class Recommendation(BaseModel):
    customer_id: int
    score: float = Field(description="the strategy's score, higher is better, printed with nine decimals "
                                     "(the stored precision) as on every other surface")
    rank: int = Field(description="1 is the best")


class RecommendResponse(BaseModel):
    # Two examples: a new product (first, every field set: OpenAPI output drops an example's nulls) and a known one.
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"product_id": 990001, "run_id": 3, "cold_start": True,
         "note": "new product: 990001 was not seen in run 3, so it gets the fallback audience (the most engaged "
                 "users overall)",
         "recommendations": [{"customer_id": 8, "score": 0.975000000, "rank": 1}], "count": 1},
        {"product_id": 4021, "run_id": 3, "cold_start": False, "note": None,
         "recommendations": [{"customer_id": 117, "score": 0.912345678, "rank": 1},
                             {"customer_id": 52, "score": 0.876543210, "rank": 2}], "count": 2}]})
    product_id: int
    run_id: int
    cold_start: bool = Field(description="true when the run has not seen the product: the fallback audience")
    note: str | None = Field(description="why the fallback was served, else null")
    recommendations: list[Recommendation]
    count: int = Field(description="len(recommendations): n, or fewer when fewer users are eligible")


class UserResponse(BaseModel):
    model_config = _example({
        "customer_id": 117, "run_id": 3, "total_interactions": 12, "unique_products": 9,
        "avg_event_score": 3.8, "interaction_frequency": 2.4, "recency_days": 3, "engagement_score": 0.91,
        "days_active": 5, "engagement_rank": 1, "audience_count": 18234, "users_in_run": 433787})
    customer_id: int
    run_id: int
    total_interactions: int
    unique_products: int
    avg_event_score: float
    interaction_frequency: float
    recency_days: int
    engagement_score: float
    days_active: int
    engagement_rank: int = Field(description="1 is the most engaged user of the run")
    audience_count: int = Field(description="how many products' audiences hold this user")
    users_in_run: int


class SampleResponse(BaseModel):
    model_config = _example({"sample_products": [4021, 88, 190233], "total_available": 200325})
    sample_products: list[int]
    total_available: int = Field(description="products with an audience in the current run")


class HealthResponse(BaseModel):
    model_config = _example({"status": "healthy", "model_loaded": True, "run_id": 3, "products": 200325,
                             "loaded_at": "2024-05-01T10:00:00+00:00", "detail": None})
    status: str = Field(description="healthy, or unavailable (with HTTP 503) while no run is loaded")
    model_loaded: bool = Field(description="true once a run is loaded (clients check it with status)")
    run_id: int | None
    products: int
    loaded_at: str | None
    detail: str | None = Field(default=None, description=(
        "what is missing and how to fix it; while healthy, why a newer run could not be loaded"))


class EvaluationRow(BaseModel):
    strategy: str
    cap: int | None = None  # the per-user exposure cap the row was scored under (None: uncapped)
    k: int
    metric: str
    value: float | None


class CalibrationDecile(BaseModel):
    decile: int
    entries: int
    expected: float
    observed: float
    min_score: float
    max_score: float
    observed_over_expected: float | None


class CalibrationReport(BaseModel):
    strategy: str
    deciles: list[CalibrationDecile]
    note: str | None = Field(description="why there are no deciles (no holdout, or an older run), else null")


class GainPoint(BaseModel):
    n: int
    hits: int
    share_of_truth: float
    share_of_list: float


class GainReport(BaseModel):
    strategy: str
    users_for_share: dict[str, int | None] = Field(description='{"0.5": N, "0.7": N, "0.9": N}')
    curve: list[GainPoint]
    note: str | None = Field(description="why there is no curve (no holdout, or an older run), else null")


class MetricsResponse(BaseModel):
    model_config = _example({
        "run_id": 3, "loaded_at": "2024-05-01T10:00:00+00:00", "strategy": "engagement",
        "params": {"depth": 100, "strategy": "engagement", "exclude": "all"},
        "counts": {"products": 200325, "users": 433787, "audience_entries": 20032500, "depth": 100,
                   "fallback_size": 100},
        "stats": {"total_interactions": 498879.0, "sparsity": 0.999994},
        "data_quality": {"rows_read": 500400, "rows_clean": 498879},
        "evaluation": [{"strategy": "affinity", "k": 100, "metric": "recall_micro", "value": 0.0021}],
        "headline": {"strategy": "affinity", "cap": None, "selection": "best recall_micro@100 on the holdout", "k": 100,
                     "recall_micro": 0.0021, "recall_micro_se": 0.0003, "precision_micro": 0.00005,
                     "hit_rate": 0.0048, "ndcg": 0.0006,
                     "user_coverage": 0.0217, "exposure_gini": 0.9963,
                     "lift_over_random": 55.9, "reachable_ceiling": 0.1325},
        "calibration": {"strategy": "propensity", "note": None, "deciles": [
            {"decile": 1, "entries": 2000, "expected": 41.2, "observed": 38.0, "min_score": 0.012,
             "max_score": 0.31, "observed_over_expected": 0.92}]},
        "gain": {"strategy": "propensity", "users_for_share": {"0.5": 18, "0.7": 41, "0.9": 77}, "note": None,
                 "curve": [{"n": 1, "hits": 120, "share_of_truth": 0.004, "share_of_list": 0.09}]}})
    run_id: int
    loaded_at: str
    strategy: str
    params: dict
    counts: dict[str, int]
    stats: dict[str, float | None]
    data_quality: dict[str, int]
    evaluation: list[EvaluationRow]
    headline: dict[str, str | int | float | None]
    calibration: CalibrationReport = Field(description="expected vs observed engagements per score decile of the "
                                           "propensity model on the holdout (empty deciles and a note when none)")
    gain: GainReport = Field(description="the published strategy's gain curve on the holdout and the users it "
                                         "takes to reach 50 / 70 / 90% of what its lists caught")


class RootResponse(BaseModel):
    model_config = _example({"message": "Audience Workbench API", "version": "1.0.0",
                             "endpoints": {"/health": "is a run loaded"}})
    message: str
    version: str
    endpoints: dict[str, str]


class ErrorResponse(BaseModel):
    detail: str
