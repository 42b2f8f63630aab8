"""Fixtures: the local Bot API on real uvicorn in the test's loop, and PTB pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.types import ASGIApp
from telegram import Bot
from telegram.ext import Application, ApplicationBuilder

from sandbox.botapi import BotApiState, Persona, create_botapi_app

TOKEN = "123456:TEST-local-bot-api-token"
RESIDENT = Persona(user_id=1001, name="Lin Mei", role="resident", language_code="zh")
MANAGER = Persona(user_id=1002, name="Sam Carter", role="manager")
FRESH = Persona(user_id=1003, name="New Neighbour", role="fresh user")
PERSONAS = (RESIDENT, MANAGER, FRESH)


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns on every int time period (e.g. RetryAfter.retry_after) unless one opts in
    # to timedelta periods; warnings are errors here, and the bot opts in as well.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@contextlib.asynccontextmanager
async def serve_in_loop(app: ASGIApp) -> AsyncIterator[str]:
    """Runs `app` on uvicorn on a free loopback port inside the running event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class LiveBotApi:
    """The running server: its URL, its state, and a plain HTTP client for the JSON API."""

    url: str
    app: Starlette
    state: BotApiState
    http: httpx.AsyncClient

    def bot(self, token: str = TOKEN) -> Bot:
        """A PTB Bot pointed at this server."""
        return Bot(token, base_url=f"{self.url}/bot", base_file_url=f"{self.url}/file/bot")

    def builder(self, token: str = TOKEN) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
        """A PTB ApplicationBuilder pointed at this server, as the bot's own factory is."""
        return (
            Application.builder()
            .token(token)
            .base_url(f"{self.url}/bot")
            .base_file_url(f"{self.url}/file/bot")
        )

    async def say(self, user_id: int, text: str) -> dict[str, Any]:
        """A persona sends text through the web chat API."""
        response = await self.http.post(f"/api/chats/{user_id}/messages", json={"text": text})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def messages(self, user_id: int) -> list[dict[str, Any]]:
        """The chat as the page sees it."""
        response = await self.http.get(f"/api/chats/{user_id}/messages")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    async def wait_for(self, check: Callable[[], Awaitable[Any]], *, within: float = 5.0) -> Any:
        """Polls `check` until it returns something truthy."""
        async with asyncio.timeout(within):
            while True:
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.01)

    async def bot_messages(self, user_id: int, count: int = 1) -> list[dict[str, Any]]:
        """Waits until the bot has sent at least `count` messages in the chat."""

        async def found() -> list[dict[str, Any]]:
            mine = [m for m in await self.messages(user_id) if m["from"] == "bot"]
            return mine if len(mine) >= count else []

        result: list[dict[str, Any]] = await self.wait_for(found)
        return result


@pytest.fixture
async def botapi() -> AsyncIterator[LiveBotApi]:
    """The local Bot API with three personas, live on 127.0.0.1."""
    app = create_botapi_app(token=TOKEN, personas=PERSONAS)
    state: BotApiState = app.state.botapi
    async with serve_in_loop(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        try:
            yield LiveBotApi(url=url, app=app, state=state, http=http)
        finally:
            # Ends open long polls now rather than at their timeouts.
            state.close()


@contextlib.asynccontextmanager
async def polling(application: Application[Any, Any, Any, Any, Any, Any]) -> AsyncIterator[None]:
    """Runs a PTB application with polling for the duration of the block."""
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0, timeout=dt.timedelta(seconds=1))
        try:
            yield
        finally:
            await application.updater.stop()
            await application.stop()


def png_bytes(width: int = 120, height: int = 80, color: str = "teal") -> bytes:
    """A small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()
