"""`concierge run` as a real process: the Bot API it polls, its web server, a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sandbox.botapi import Persona, create_botapi_app
from tests.support_server import serve

TOKEN = "123456:DEMO-sandbox-token"
ANN = Persona(user_id=7001, name="Ann", role="resident")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def botapi() -> Iterator[str]:
    app = create_botapi_app(token=TOKEN, personas=[ANN])
    with serve(app) as url:
        yield url
    app.state.botapi.close()


@pytest.fixture
def vendors(sandbox_app: Starlette) -> Iterator[str]:
    with serve(sandbox_app) as url:
        yield url


def _wait_for(check: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    return None


def test_the_bot_process_answers_through_the_local_bot_api(
    botapi: str, vendors: str, tmp_path: Path
) -> None:
    web_port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AKUBELA", "TUYA", "SERVITLY"))
    }
    env |= {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": f"{botapi}/bot",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "AKUBELA_BASE_URL": f"{vendors}/akubela",
        "TUYA_BASE_URL": f"{vendors}/tuya",
        "SERVITLY_BASE_URL": f"{vendors}/servitly",
        "WEB_PORT": str(web_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
    }
    log = (tmp_path / "bot.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        healthy = _wait_for(lambda: _get(f"http://127.0.0.1:{web_port}/healthz") == {"ok": True})
        assert healthy, (tmp_path / "bot.log").read_text()
        httpx.post(f"{botapi}/api/chats/{ANN.user_id}/messages", json={"text": "/start"})

        def replied() -> list[dict[str, Any]]:
            messages = httpx.get(f"{botapi}/api/chats/{ANN.user_id}/messages").json()
            return [m for m in messages if m["from"] == "bot"]

        bot_messages = _wait_for(lambda: len(replied()) >= 2 and replied())
        assert bot_messages, (tmp_path / "bot.log").read_text()
        assert "Concierge" in bot_messages[0]["text"]
        login = bot_messages[1]["buttons"][0][0]["url"]
        assert login.startswith(f"{vendors}/akubela/")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()
    output = (tmp_path / "bot.log").read_text()
    assert code == 0, output
    assert "Concierge stopped" in output
    assert TOKEN.split(":")[1] not in output


def _get(url: str) -> Any:
    try:
        return httpx.get(url, timeout=1).json()
    except (httpx.TransportError, ValueError):
        return None
