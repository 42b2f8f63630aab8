"""Fault injection for the vendor sandbox: what a flaky vendor does to a client, on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class FaultKind(StrEnum):
    """The ways a vendor misbehaves."""

    LATENCY = "latency"  # the answer comes late (beyond the client timeout if asked)
    ERROR = "error"  # an HTTP 5xx
    RATE_LIMIT = "rate_limit"  # HTTP 429 with Retry-After
    MALFORMED = "malformed"  # HTTP 200 whose body is not JSON
    DROP = "drop"  # the connection closes half way through the answer


class FaultWhen(StrEnum):
    """Whether a fault strikes before the vendor acts, or after it acted (its answer is lost)."""

    BEFORE = "before"  # nothing was done: the request never reached the vendor's logic
    AFTER = "after"  # the vendor did it, and then the answer comes late or never


# Only a late or lost answer can follow a request the vendor carried out.
AFTER_KINDS = frozenset({FaultKind.LATENCY, FaultKind.DROP})


@dataclass(slots=True)
class FaultRule:
    """Affects requests whose path starts with `path` ("" for all), with a probability."""

    kind: FaultKind
    path: str = ""
    probability: float = 1.0
    times: int | None = None  # how many more requests to affect; None: until cleared
    latency: float = 0.0
    status: int = 500
    retry_after: float = 1.0
    when: FaultWhen = FaultWhen.BEFORE
    hits: int = field(default=0)

    def matches(self, path: str) -> bool:
        """Whether this rule is for `path` and still has uses left."""
        return path.startswith(self.path) and (self.times is None or self.times > 0)

    def public(self) -> dict[str, Any]:
        """The rule as JSON for the control API."""
        data = asdict(self)
        data["kind"] = self.kind.value
        data["when"] = self.when.value
        return data


class Faults:
    """The active fault rules; thread-safe because the demo's timer and requests share it."""

    def __init__(self, *, seed: int = 7) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - reproducible faults, not crypto

    def add(self, rule: FaultRule) -> FaultRule:
        """Adds a rule and returns it."""
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability is between 0 and 1")
        if rule.when is FaultWhen.AFTER and rule.kind not in AFTER_KINDS:
            raise ValueError('"when": "after" applies to latency and drop only')
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Removes every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """A snapshot of the active rules."""
        with self._lock:
            return list(self._rules)

    def pick(self, path: str) -> list[FaultRule]:
        """The rules that fire for this request (and uses them up)."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if rule.matches(path) and self._random.random() < rule.probability:
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                    fired.append(rule)
            self._rules = [r for r in self._rules if r.times is None or r.times > 0]
        return fired


def _error_body(status: int, message: str) -> bytes:
    # Every vendor client classifies by HTTP status first; the body carries each vendor's
    # message keys so whichever client reads it finds a message.
    body = {"success": False, "code": status, "msg": message, "message": message}
    return json.dumps(body).encode()


class FaultMiddleware:
    """ASGI middleware that applies the active rules to vendor routes."""

    def __init__(self, app: ASGIApp, *, faults: Faults, exempt_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.faults = faults
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        fired = self.faults.pick(scope["path"])
        before = [rule for rule in fired if rule.when is FaultWhen.BEFORE]
        after = [rule for rule in fired if rule.when is FaultWhen.AFTER]
        for rule in before:
            if rule.kind is FaultKind.LATENCY:
                await asyncio.sleep(rule.latency)
        for rule in before:
            if rule.kind is FaultKind.ERROR:
                await _respond(send, rule.status, _error_body(rule.status, "injected failure"))
                return
            if rule.kind is FaultKind.RATE_LIMIT:
                headers = [(b"retry-after", str(int(rule.retry_after)).encode())]
                await _respond(send, 429, _error_body(429, "too many requests"), headers)
                return
            if rule.kind is FaultKind.MALFORMED:
                await _respond(send, 200, b'{"success": tru')
                return
            if rule.kind is FaultKind.DROP:
                await _drop(send)
                return
        if after:
            await self._act_then_fail(scope, receive, send, after)
            return
        await self.app(scope, receive, send)

    async def _act_then_fail(
        self, scope: Scope, receive: Receive, send: Send, rules: list[FaultRule]
    ) -> None:
        """Carries the request out in full, then answers late, or drops the answer."""
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        delay = sum(rule.latency for rule in rules if rule.kind is FaultKind.LATENCY)
        if delay > 0:
            await _wait_unless_gone(receive, delay)
        if any(rule.kind is FaultKind.DROP for rule in rules):
            await _drop(send)
            return
        for message in answer:
            await send(message)


async def _wait_unless_gone(receive: Receive, seconds: float) -> None:
    """Waits `seconds`, or less when the client hangs up first (as a real server notices)."""

    async def until_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until_disconnect(), timeout=seconds)


async def _respond(
    send: Send, status: int, body: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    """Starts an answer and abandons it, which a real server shows as a dropped connection."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"success"', "more_body": True})
    # Over uvicorn this aborts the connection mid-body; over httpx's ASGITransport the same
    # exception reaches the client, which is exactly what a dropped connection looks like there.
    raise httpx.RemoteProtocolError("sandbox dropped the connection")
