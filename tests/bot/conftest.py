"""The vendor sandbox fixtures, shared with the bot's tests, and a healthy deployment's
settings on the sandbox and the local Bot API (both on real sockets)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from sandbox.botapi import Persona, create_botapi_app
from tests.sandbox.conftest import clock, sandbox_app, sandbox_settings
from tests.support_server import serve

__all__ = ["clock", "sandbox_app", "sandbox_settings"]

TOKEN = "123456:CHECK-local-bot-api-token"
ANN = Persona(user_id=7101, name="Ann", role="resident")


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def botapi() -> Iterator[tuple[str, Any]]:
    app = create_botapi_app(token=TOKEN, personas=[ANN])
    with serve(app) as url:
        yield url, app.state.botapi
    app.state.botapi.close()


@pytest.fixture
def vendors(sandbox_app: Starlette) -> Iterator[str]:
    with serve(sandbox_app) as url:
        yield url


@pytest.fixture
def env(botapi: tuple[str, Any], vendors: str, database_url: str) -> dict[str, Any]:
    """The settings of a healthy deployment on the sandbox and the local Bot API."""
    return {
        "database_url": database_url,
        "telegram_bot_token": TOKEN,
        "telegram_base_url": f"{botapi[0]}/bot",
        "akubela_base_url": f"{vendors}/akubela",
        "tuya_base_url": f"{vendors}/tuya",
        "servitly_base_url": f"{vendors}/servitly",
    }
