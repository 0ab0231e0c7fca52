"""The API's settings, read once from the environment when the app is created (pydantic-settings)."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.names import DEFAULT_DB

PREFIX = "AUDIENCE_"


class Settings(BaseSettings):
    """db: the SQLite file ($AUDIENCE_DB); reload_seconds: how often to look for a newly published run
    ($AUDIENCE_RELOAD_SECONDS)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    db: Path = Field(default=Path(DEFAULT_DB), description="the SQLite database the pipeline writes")
    reload_seconds: float = Field(default=2.0, gt=0, description="seconds between looks for a new run")

    @classmethod
    def from_env(cls) -> Settings:
        """The settings, or one line naming the variable that is wrong (no traceback)."""
        try:
            return cls()
        except ValidationError as exc:
            error = exc.errors()[0]
            raise SystemExit(f"{PREFIX}{str(error['loc'][0]).upper()}: {error['msg']}, "
                             f"got {str(error.get('input'))[:100]!r}") from None
