"""Cluster bots inside the test process: each is one cluster process's Application with its
dispatcher, on a shared PostgreSQL database, answering Telegram through a recording Bot API."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from telegram.request import BaseRequest

from bench.harness import RecordingRequest, bench_settings
from bot.app import build_application
from bot.app_type import ConciergeApp
from bot.cluster import ClusterDispatcher, ClusterPersistence
from bot.services import Services, utc_now
from bot.storage.inbound import AdvisoryLocks, InboundUpdates


@dataclass
class TranscriptRequest(RecordingRequest):
    """The recording Bot API, also keeping every text each chat was sent, in order."""

    texts: defaultdict[int, list[str]] = field(default_factory=lambda: defaultdict(list))

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        text = extra.get("text") or extra.get("caption")
        if text:
            self.texts[int(params["chat_id"])].append(str(text))
        return super()._message(params, **extra)


class MortalInbound(InboundUpdates):
    """The cluster's update store, whose process can be made to die in the step that would
    store one given update as handled: nothing of that step reaches the database, and the
    process takes no further update."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dies_at: int | None = None
        self.dispatcher: ClusterDispatcher | None = None

    async def finish(self, update_id: int | None, *args: Any, **kwargs: Any) -> None:
        """Stores the update as handled, or dies instead."""
        if update_id is not None and update_id == self.dies_at:
            if self.dispatcher is not None:
                # Stopping first: the chat the failed step gives back is not taken again.
                asyncio.get_running_loop().create_task(self.dispatcher.stop())
            raise Killed(f"killed before update {update_id} was stored")
        await super().finish(update_id, *args, **kwargs)


async def until(found: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    """Waits until `found()` holds (checked every 20 ms), or fails naming `what`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not found():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {what} within {seconds} s")
        await asyncio.sleep(0.02)


class Killed(Exception):
    """The process died here."""


@dataclass
class Bot:
    """One cluster process's bot."""

    app: ConciergeApp
    services: Services
    dispatcher: ClusterDispatcher
    request: BaseRequest  # what the bot's Bot API calls go to
    inbound: MortalInbound
    locks: AdvisoryLocks

    @property
    def telegram(self) -> TranscriptRequest:
        """The recording Bot API (when no other was given)."""
        assert isinstance(self.request, TranscriptRequest)
        return self.request

    def told(self) -> int:
        return self.telegram.methods["sendMessage"] + self.telegram.methods["editMessageText"]

    async def handle(self, payload: dict[str, Any]) -> None:
        """Takes one update from the webhook and waits until it was handled."""
        await self.dispatcher.receive(payload)
        async with asyncio.timeout(15):
            while True:
                waiting, _ = await self.inbound.counts()
                if not waiting:
                    return
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def cluster_bot(
    database_url: str,
    sandbox: Starlette,
    *,
    request: BaseRequest | None = None,
    clock: Callable[[], datetime] = utc_now,
    max_running: int = 8,
    **settings_overrides: Any,
) -> AsyncIterator[Bot]:
    """One cluster process's bot, started (its dispatcher is started by the test), talking to
    `request` (else a recording Bot API)."""
    settings = bench_settings(database_url, **settings_overrides)
    services = Services.open(
        settings, vendor_transport=httpx.ASGITransport(app=sandbox), clock=clock
    )
    telegram = request or TranscriptRequest()
    app = build_application(
        settings,
        services,
        persistence=ClusterPersistence(services.storage.sessions),
        request=telegram,
        rate_limiter=False,
    )
    locks = AdvisoryLocks(services.storage.engine)
    inbound = MortalInbound(services.storage.engine)
    dispatcher = ClusterDispatcher(
        app,
        inbound,
        locks,
        clock=services.clock,
        max_running=max_running,
        metrics=services.metrics,
    )
    inbound.dispatcher = dispatcher
    try:
        async with app:
            await app.start()
            try:
                yield Bot(app, services, dispatcher, telegram, inbound, locks)
            finally:
                await dispatcher.stop()
                await app.stop()
    finally:
        await locks.close()
        await services.aclose()
