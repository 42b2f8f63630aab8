"""Settings: every field documented in .env.example, unsafe combinations refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _documented() -> dict[str, str]:
    """Each `NAME=` line of .env.example (commented out or not) with the comment above it."""
    found: dict[str, str] = {}
    comment = ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line)
        if match:
            found[match.group(1)] = comment
        elif line.startswith("#"):
            comment = line
    return found


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    documented = _documented()
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - set(documented) == set()
    assert set(documented) - fields == set()
    assert all(documented[name] for name in fields)


def test_demo_defaults_need_no_env_file() -> None:
    settings = Settings(_env_file=None)
    assert settings.akubela_base_url.startswith("http://127.0.0.1")
    assert not settings.uses_real_telegram


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"telegram_base_url": "https://api.telegram.org/bot"}, "SECRET_KEY"),
        ({"secret_key": "short"}, "32 characters"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"servitly_tenant_header": "X-Other"}, "SERVITLY_TENANT_HEADER"),
        ({"run_mode": "webhook"}, "WEBHOOK_SECRET"),
    ],
)
def test_unsafe_or_wrong_settings_are_refused(overrides: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(_env_file=None, **overrides)  # type: ignore[arg-type]
