"""Fixtures of the hostile tests: the sandbox, and the figures the issue's closing note quotes."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.hostile.community import Community, community
from tests.sandbox.conftest import clock, sandbox_app, sandbox_settings

__all__ = ["clock", "figures", "sandbox_app", "sandbox_settings", "sqlite_url", "town"]

FIGURES_FILE = Path(__file__).resolve().parents[2] / "test-artifacts" / "hostile-figures.json"


@pytest.fixture(scope="session")
def figures() -> Iterator[Counter[str]]:
    """Counts kept across the session (fuzz cases, forbidden actions tried and refused, ...),
    written to test-artifacts/hostile-figures.json at the end."""
    counts: Counter[str] = Counter()
    yield counts
    FIGURES_FILE.parent.mkdir(exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(dict(sorted(counts.items())), indent=2) + "\n")


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite database: these tests are about input and roles, and the
    database suites already run every query on PostgreSQL too."""
    path = tmp_path / "hostile.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def town(sqlite_url: str, sandbox_app: Starlette) -> AsyncIterator[Community]:
    """The community's bot with everyone in it."""
    async with community(sqlite_url, sandbox_app) as running:
        yield running
