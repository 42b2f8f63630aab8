"""Fixtures for the fault tests: the sandbox with a client's read timeout, a movable bot clock,
and the session's figures (faults injected per kind, flows completed, inputs lost, duplicates),
written to test-artifacts/fault-figures.json when the session ends."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.faults import FaultKind, FaultRule, Faults
from tests.sandbox.conftest import clock, sandbox_app, sandbox_settings

__all__ = ["clock", "sandbox_app", "sandbox_settings"]

# The bot's HTTP read timeout in these tests, and a vendor answer late enough to miss it.
READ_TIMEOUT = 0.2
LATE = 0.4


@pytest.fixture(params=["sqlite"])
def database_kind(request: pytest.FixtureRequest) -> str:
    """The fault matrix runs on SQLite; the outbox's storage is tested on both elsewhere."""
    kind: str = request.param
    return kind


class MovableClock:
    """The bot's clock, moved by the test so backoffs pass without waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def bot_clock() -> MovableClock:
    """A bot clock the test moves."""
    return MovableClock()


class ClientTimeout:
    """ASGI wrapper giving in-process requests the bot's read timeout, as a socket would.

    httpx's ASGITransport waits for any answer however late. Behind a real socket the client
    gives up at its read timeout while the vendor carries on and may still act: that is what
    happens here for requests a LATENCY rule delays. `settle()` waits for those late requests.
    """

    def __init__(self, app: ASGIApp, *, faults: Faults, timeout: float) -> None:
        self.app = app
        self.faults = faults
        self.timeout = timeout
        self.late: set[asyncio.Task[None]] = set()

    def _delayed(self, path: str) -> bool:
        return any(
            rule.kind is FaultKind.LATENCY and rule.matches(path) for rule in self.faults.rules()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._delayed(scope["path"]):
            await self.app(scope, receive, send)
            return
        gone = False

        async def unless_gone(message: Any) -> None:
            if not gone:
                await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, unless_gone))
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        if task in done:
            task.result()
            return
        gone = True
        self.late.add(task)
        raise httpx.ReadTimeout("no answer within the read timeout")

    async def settle(self) -> None:
        """Waits until the vendor has finished every request the client gave up on."""
        await asyncio.gather(*self.late, return_exceptions=True)
        self.late.clear()


@pytest.fixture
async def client_timeout(sandbox_app: Starlette) -> AsyncIterator[ClientTimeout]:
    """The sandbox behind a client read timeout of READ_TIMEOUT seconds."""
    # Around the whole built stack, so the injected latency is inside what times out.
    wrapper = ClientTimeout(
        sandbox_app.build_middleware_stack(),
        faults=sandbox_app.state.control.faults,
        timeout=READ_TIMEOUT,
    )
    sandbox_app.middleware_stack = wrapper
    yield wrapper
    await wrapper.settle()


@dataclass
class Figures:
    """What the fault tests did, summed over the session."""

    faults: Counter[str] = field(default_factory=Counter)
    flows_run: int = 0
    flows_completed: int = 0
    inputs_lost: int = 0
    duplicates: int = 0
    cases: Counter[str] = field(default_factory=Counter)

    def injected(self, rules: list[FaultRule]) -> None:
        """Counts the requests each rule actually affected."""
        for rule in rules:
            self.faults[rule.kind.value] += rule.hits

    def outcome(self, name: str, delivered: int) -> None:
        """One flow's end: delivered once (completed), never (lost) or more (duplicates)."""
        self.flows_run += 1
        self.cases[name] += 1
        if delivered == 1:
            self.flows_completed += 1
        elif delivered == 0:
            self.inputs_lost += 1
        else:
            self.duplicates += delivered - 1

    def as_json(self) -> dict[str, Any]:
        """The figures as the closing note quotes them."""
        return {
            "faults_injected": dict(sorted(self.faults.items())),
            "faults_injected_total": sum(self.faults.values()),
            "flows_run": self.flows_run,
            "flows_completed": self.flows_completed,
            "inputs_lost": self.inputs_lost,
            "duplicates": self.duplicates,
            "flows": dict(sorted(self.cases.items())),
        }


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """The session's tally, written to test-artifacts/fault-figures.json at the end."""
    tally = Figures()
    yield tally
    out = Path(request.config.rootpath) / "test-artifacts" / "fault-figures.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(tally.as_json(), indent=2, ensure_ascii=False) + "\n")
