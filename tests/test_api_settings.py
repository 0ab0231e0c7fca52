"""The API's settings (pydantic-settings): read from AUDIENCE_* once, and a bad value is one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUDIENCE_DB", "/srv/a.db")
    monkeypatch.setenv("AUDIENCE_RELOAD_SECONDS", "0.5")
    assert Settings.from_env() == Settings(db=Path("/srv/a.db"), reload_seconds=0.5)


def test_defaults(monkeypatch):
    monkeypatch.delenv("AUDIENCE_DB", raising=False)
    monkeypatch.delenv("AUDIENCE_RELOAD_SECONDS", raising=False)
    assert Settings.from_env() == Settings(db=Path("data/audiences.db"), reload_seconds=2.0)


@pytest.mark.parametrize("value, message", [
    ("soon", "AUDIENCE_RELOAD_SECONDS: Input should be a valid number, unable to parse string as a number, got 'soon'"),
    ("0", "AUDIENCE_RELOAD_SECONDS: Input should be greater than 0, got '0'"),
])
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, value, message):
    monkeypatch.setenv("AUDIENCE_RELOAD_SECONDS", value)
    with pytest.raises(SystemExit) as stop:
        Settings.from_env()
    assert str(stop.value) == message
