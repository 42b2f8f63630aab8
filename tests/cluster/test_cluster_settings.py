"""Cluster mode is refused where it cannot keep its promises, with a message that says why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import Settings

POSTGRES = "postgresql+asyncpg://concierge@db.example.org/concierge"


def test_sqlite_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match=r"CLUSTER=true needs PostgreSQL.*SQLite"):
        Settings(_env_file=None, cluster=True, run_mode="webhook", webhook_secret="s3cret")


def test_polling_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match=r"CLUSTER=true needs RUN_MODE=webhook"):
        Settings(_env_file=None, cluster=True, database_url=POSTGRES)


def test_webhook_on_postgresql_is_accepted() -> None:
    settings = Settings(
        _env_file=None,
        cluster=True,
        run_mode="webhook",
        webhook_secret="s3cret",
        database_url=POSTGRES,
    )
    assert settings.cluster
