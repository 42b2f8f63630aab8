"""Fixtures for running the vendor sandbox in-process and on a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from bot.settings import Settings
from sandbox.app import create_app, default_vendors
from sandbox.core import Clock
from tests.support_server import serve


@pytest.fixture
def sandbox_settings() -> Settings:
    """Demo settings, untouched by any developer's .env."""
    return Settings(_env_file=None)


@pytest.fixture
def clock() -> Clock:
    """A sandbox clock the test can move."""
    return Clock()


@pytest.fixture
def sandbox_app(sandbox_settings: Settings, clock: Clock) -> Starlette:
    """The whole sandbox (every vendor) on the test's clock."""
    return create_app(
        sandbox_settings, clock=clock, vendors=default_vendors(sandbox_settings, clock)
    )


@pytest.fixture
def asgi_transport(sandbox_app: Starlette) -> httpx.ASGITransport:
    """An httpx transport that calls the sandbox in-process."""
    return httpx.ASGITransport(app=sandbox_app)


@pytest.fixture
def live_sandbox(sandbox_app: Starlette) -> Iterator[str]:
    """The sandbox on real uvicorn; yields its base URL."""
    with serve(sandbox_app) as url:
        yield url
