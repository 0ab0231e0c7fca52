"""The Service page's view of the API: GET /health and /metrics, with a clear answer when it is down."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def size_text(size: int) -> str:
    """Bytes as people read them, in decimal units as `du --si` and the file managers show them."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size:,} B"


def folder_bytes(folder: Path) -> int:
    """Every file below a folder, in bytes (0 when it does not exist)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def disk_usage(db: str) -> list[tuple[str, str]]:
    """(label, size) of the database (with its WAL) and of the data folder around it (exports, uploads,
    logs, demo files): what `python -m pipeline gc` can free."""
    path = Path(db)
    database = sum(p.stat().st_size for p in (path, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.is_file())
    folder = path.resolve().parent
    return [("Database", size_text(database)), (f"Data folder {folder.name}/", size_text(folder_bytes(folder)))]
