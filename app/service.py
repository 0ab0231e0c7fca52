"""The Service page's view of the API: GET /health and /metrics, with a clear answer when it is down."""
from __future__ import annotations

from dataclasses import dataclass

import httpx

TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer at all
    body: dict | None
    problem: str | None


def get(api_url: str, path: str) -> Answer:
    url = f"{api_url.rstrip('/')}{path}"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        return Answer(None, None, f"no answer from {url} ({type(exc).__name__})")
    try:
        body = response.json()
    except ValueError:
        return Answer(response.status_code, None, f"{url} answered {response.status_code} but not with JSON")
    if response.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else None
        return Answer(response.status_code, body, f"{url} answered {response.status_code}"
                      + (f": {detail}" if detail else ""))
    return Answer(response.status_code, body, None)
