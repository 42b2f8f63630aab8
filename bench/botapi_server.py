"""The local Bot API for figure 3, in its own process, with Telegram's flood control.

`python -m bench.botapi_server --recipients N --first-id ID (--rate R | --strict)` serves
`sandbox.botapi` (one private chat per recipient) on 127.0.0.1, on a port it picks and prints
first. With `--rate R`, sending faster than R messages per second (a bucket holding one
second's worth, plus 50 ms for network jitter) answers 429 with `retry_after`, as Telegram
does. With `--strict` the local Bot API applies its own rulebook's flood control, Telegram's
limits: 30 messages a second overall and, per private chat, a burst of 5 then one a second.
`GET /_bench/stats` tells what it accepted and refused, whoever refused it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.child_server import loopback_socket
from sandbox.botapi import Persona, create_botapi_app
from sandbox.botapi.rules import Rules

TOKEN = "424242:bench-local-bot-api"  # noqa: S105 - the local Bot API's made-up token
STATS_PATH = "/_bench/stats"
JITTER_SECONDS = 0.05


class FloodControl:
    """A token bucket on every send* method: R per second, a burst of one second's worth (no
    bucket when R is None); every 429, its own or the app's, counted."""

    def __init__(self, app: ASGIApp, *, rate: float | None) -> None:
        self.app = app
        self.rate = rate
        self.capacity = (rate or 0.0) * (1 + JITTER_SECONDS)
        self.tokens = self.capacity if rate is not None else 0.0
        self.updated = time.monotonic()
        self.accepted = 0
        self.refused = 0
        self.first: float | None = None
        self.last: float | None = None

    def _take(self) -> float:
        """0 when a message may go now, else the seconds until it may."""
        if self.rate is None:
            return 0.0
        moment = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (moment - self.updated) * self.rate)
        self.updated = moment
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def _answered(self, status: int) -> None:
        if status == 429:
            self.refused += 1
        elif status == 200:
            moment = time.monotonic()
            self.accepted += 1
            self.first = moment if self.first is None else self.first
            self.last = moment

    def stats(self) -> dict[str, Any]:
        """What was accepted and refused, and the accepted messages' rate."""
        span = (self.last - self.first) if self.first is not None and self.last else 0.0
        return {
            "accepted": self.accepted,
            "refused_429": self.refused,
            "span_seconds": span,
            "rate": (self.accepted - 1) / span if span > 0 else None,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            await _json(send, 200, self.stats())
            return
        method = str(scope.get("path", "")).rsplit("/", 1)[-1].lower()
        if scope["type"] == "http" and method.startswith("send"):
            wait = self._take()
            if wait > 0:
                self._answered(429)
                retry_after = max(1, math.ceil(wait))
                body = {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                }
                await _json(send, 429, body)
                return

            async def noting(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self._answered(int(message["status"]))
                await send(message)

            await self.app(scope, receive, noting)
            return
        await self.app(scope, receive, send)


async def _json(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def build(recipients: int, first_id: int, rate: float | None) -> ASGIApp:
    """The local Bot API with one private chat per recipient, behind flood control: a bucket
    of `rate`, or (None) the local Bot API's own rulebook, Telegram's limits."""
    personas = [
        Persona(user_id=first_id + n, name=f"Resident {n}", role="resident")
        for n in range(recipients)
    ]
    rules = Rules(flood_control=rate is None)
    return FloodControl(create_botapi_app(token=TOKEN, personas=personas, rules=rules), rate=rate)


def main() -> None:
    """Serves until terminated; the first line printed is the port."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, required=True)
    parser.add_argument("--first-id", type=int, required=True)
    limits = parser.add_mutually_exclusive_group(required=True)
    limits.add_argument("--rate", type=float)
    limits.add_argument("--strict", action="store_true", help="Telegram's own limits")
    args = parser.parse_args()
    sock = loopback_socket()
    # The parent reads the port from this first line.
    print(sock.getsockname()[1], flush=True)
    app = build(args.recipients, args.first_id, args.rate)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
