"""The local Bot API for figure 3, in its own process, with Telegram's flood control in front.

`python -m bench.botapi_server --recipients N --first-id ID --rate R` serves
`sandbox.botapi` (one private chat per recipient) on 127.0.0.1, on a port it picks and prints
first. Sending faster than R messages per second (a bucket holding one second's worth, plus
50 ms for network jitter) answers 429 with `retry_after`, as Telegram does. `GET /_bench/stats`
tells what it accepted and refused.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.botapi import Persona, create_botapi_app

TOKEN = "424242:bench-local-bot-api"  # noqa: S105 - the local Bot API's made-up token
STATS_PATH = "/_bench/stats"
JITTER_SECONDS = 0.05


class FloodControl:
    """A token bucket on every send* method: R per second, a burst of one second's worth."""

    def __init__(self, app: ASGIApp, *, rate: float) -> None:
        self.app = app
        self.rate = rate
        self.capacity = rate * (1 + JITTER_SECONDS)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.accepted = 0
        self.refused = 0
        self.first: float | None = None
        self.last: float | None = None

    def _take(self) -> float:
        """0 when a message may go now, else the seconds until it may."""
        moment = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (moment - self.updated) * self.rate)
        self.updated = moment
        if self.tokens >= 1:
            self.tokens -= 1
            self.accepted += 1
            self.first = moment if self.first is None else self.first
            self.last = moment
            return 0.0
        self.refused += 1
        return (1 - self.tokens) / self.rate

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
                retry_after = max(1, math.ceil(wait))
                body = {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry_after}",
                    "parameters": {"retry_after": retry_after},
                }
                await _json(send, 429, body)
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


def build(recipients: int, first_id: int, rate: float) -> ASGIApp:
    """The local Bot API with one private chat per recipient, behind flood control."""
    personas = [
        Persona(user_id=first_id + n, name=f"Resident {n}", role="resident")
        for n in range(recipients)
    ]
    return FloodControl(create_botapi_app(token=TOKEN, personas=personas), rate=rate)


def main() -> None:
    """Serves until terminated; the first line printed is the port."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, required=True)
    parser.add_argument("--first-id", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it each answer's body waits ~40 ms for the
    # client's delayed ACK (Nagle), and asyncio only sets it on sockets made with proto=TCP.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    # The parent reads the port from this first line.
    print(sock.getsockname()[1], flush=True)
    app = build(args.recipients, args.first_id, args.rate)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
