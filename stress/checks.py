"""Content checks for every answer of the stress run: plain functions (no locust import, so tests
can call them without gevent patching the test process). Each returns None when the answer is
right, else one line saying what is wrong."""
from __future__ import annotations

CSV_HEADER = "product_id,rank,customer_id,score"


def check_recommend(body: object, product_id: int, n: int, cold_start: bool) -> str | None:
    """The right product, count == n, ranks 1..n, scores best first, and the fallback flagged."""
    if not isinstance(body, dict):
        return "not a JSON object"
    if body.get("product_id") != product_id:
        return f"asked for product {product_id}, got {body.get('product_id')!r}"
    recs = body.get("recommendations")
    if not isinstance(recs, list) or body.get("count") != n or len(recs) != n:
        return f"asked for {n} users, got count {body.get('count')!r} and {len(recs or [])} recommendations"
    try:
        ranks = [r["rank"] for r in recs]
        scores = [float(r["score"]) for r in recs]
        ids = [r["customer_id"] for r in recs]
    except (KeyError, TypeError, ValueError):
        return "a recommendation without customer_id, score and rank"
    if ranks != list(range(1, n + 1)):
        return f"ranks are not 1..{n}"
    if not all(isinstance(c, int) and c > 0 for c in ids) or len(set(ids)) != n:
        return "customer ids are not distinct positive integers"
    if any(a < b for a, b in zip(scores, scores[1:])):
        return "scores are not in rank order"
    if body.get("cold_start") is not cold_start:
        return f"cold_start should be {cold_start}, got {body.get('cold_start')!r}"
    if cold_start and "fallback" not in str(body.get("note")):
        return "a new product's answer does not say it is the fallback"
    return None


def check_csv(text: str, product_id: int, n: int) -> str | None:
    lines = text.splitlines()
    if not lines or lines[0] != CSV_HEADER:
        return f"the CSV header is not {CSV_HEADER}"
    rows = [line.split(",") for line in lines[1:]]
    if len(rows) != n:
        return f"asked for {n} rows, got {len(rows)}"
    if any(len(r) != 4 or r[0] != str(product_id) or r[1] != str(i) for i, r in enumerate(rows, 1)):
        return f"rows are not product {product_id} with ranks 1..{n}"
    return None


def check_user(body: object, customer_id: int) -> str | None:
    if not isinstance(body, dict) or body.get("customer_id") != customer_id:
        return f"asked for customer {customer_id}, got another answer"
    rank = body.get("engagement_rank")
    if not isinstance(rank, int) or rank < 1 or not isinstance(body.get("audience_count"), int):
        return "no engagement_rank or audience_count"
    return None


def check_health(body: object) -> str | None:
    if not isinstance(body, dict) or body.get("status") != "healthy" or not isinstance(body.get("run_id"), int):
        return "not healthy with a run_id"
    return None


def check_metrics(body: object) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("run_id"), int):
        return "no run_id"
    if not body.get("counts", {}).get("products"):
        return "no product count"
    return None
