"""The API's settings, read once from the environment."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from store.names import db_path


@dataclass(frozen=True)
class Settings:
    """db: the SQLite file ($AUDIENCE_DB); reload_seconds: how often to look for a newly published run
    ($AUDIENCE_RELOAD_SECONDS); users_wait_seconds: how long /users waits for the user table that
    loads in the background after startup."""

    db: Path
    reload_seconds: float = 2.0
    users_wait_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> "Settings":
        reload_text = os.environ.get("AUDIENCE_RELOAD_SECONDS", "2")
        try:
            reload_seconds = float(reload_text)
        except ValueError:
            raise SystemExit(f"AUDIENCE_RELOAD_SECONDS must be a number of seconds, got {reload_text!r}") from None
        if reload_seconds <= 0:
            raise SystemExit(f"AUDIENCE_RELOAD_SECONDS must be positive, got {reload_text!r}")
        return cls(db=db_path(), reload_seconds=reload_seconds)
