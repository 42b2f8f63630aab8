"""The sandbox core: control API, fault injection as a client sees it, the demo timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from api.base import VendorClient, json_or_unavailable
from api.errors import RateLimited, Unavailable
from bot.settings import Settings
from sandbox.app import create_app
from sandbox.core import Clock
from sandbox.faults import FaultKind, FaultRule, Faults
from tests.support_server import serve


class EchoSandbox:
    """A one-route vendor whose records move through three states."""

    name = "echo"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.states = {"r1": "new"}
        self.expired = 0
        self.ticks = 0

    def routes(self) -> Sequence[BaseRoute]:
        async def ping(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True, "now": self.clock.now().isoformat()})

        return [Route("/ping", ping, methods=["GET", "POST"])]

    def reset(self) -> None:
        self.states = {"r1": "new"}

    def expire_tokens(self) -> None:
        self.expired += 1

    def advance(self, kind: str, record_id: str, decision: str | None = None) -> dict[str, Any]:
        state = self.states[record_id]
        moves = {"new": "doing", "doing": "done"}
        if state not in moves:
            raise ValueError(f"{record_id} is {state} and cannot move")
        self.states[record_id] = moves[state]
        return {"id": record_id, "state": self.states[record_id]}

    def auto_advance(self) -> None:
        self.ticks += 1

    def demo_info(self) -> dict[str, Any]:
        return {"records": sorted(self.states)}


class EchoClient(VendorClient):
    vendor = "echo"

    async def ping(self, *, retry: bool = True) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            response = await self._send(self._http.build_request("GET", "/ping"))
            if response.status_code == 429:
                raise RateLimited("slow down", vendor=self.vendor, retry_after=0.0)
            if response.status_code >= 500:
                raise Unavailable("down", vendor=self.vendor, status=response.status_code)
            body: dict[str, Any] = json_or_unavailable(response, vendor=self.vendor)
            return body

        return await self._retrying(once, retry=retry)


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def echo(clock: Clock) -> EchoSandbox:
    return EchoSandbox(clock)


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def app(sandbox_settings: Settings, clock: Clock, echo: EchoSandbox, faults: Faults) -> Starlette:
    return create_app(sandbox_settings, clock=clock, faults=faults, vendors=[echo])


def _client(app: Starlette, **kwargs: Any) -> EchoClient:
    return EchoClient(
        base_url="http://sandbox/echo",
        transport=httpx.ASGITransport(app=app),
        sleep=_no_sleep,
        **kwargs,
    )


async def test_control_api_reports_demo_info_and_moves_records(app: Starlette) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as http:
        demo = (await http.get("/_sandbox/demo")).json()
        assert demo["echo"] == {"records": ["r1"]}
        assert demo["base_urls"]["echo"] == "http://sandbox/echo"

        moved = await http.post(
            "/_sandbox/advance", json={"vendor": "echo", "kind": "r", "id": "r1"}
        )
        assert moved.json() == {"id": "r1", "state": "doing"}
        await http.post("/_sandbox/advance", json={"vendor": "echo", "kind": "r", "id": "r1"})
        refused = await http.post(
            "/_sandbox/advance", json={"vendor": "echo", "kind": "r", "id": "r1"}
        )
        assert refused.status_code == 409
        assert "cannot move" in refused.json()["message"]
        unknown = await http.post(
            "/_sandbox/advance", json={"vendor": "echo", "kind": "r", "id": "nope"}
        )
        assert unknown.status_code == 404
        garbage = await http.post("/_sandbox/advance", content=b"not json")
        assert garbage.status_code == 400

        await http.post("/_sandbox/reset")
        assert (await http.get("/_sandbox/demo")).json()["echo"] == {"records": ["r1"]}


async def test_clock_and_token_expiry_controls(
    app: Starlette, echo: EchoSandbox, clock: Clock
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as http:
        before = clock.now()
        await http.post("/_sandbox/clock", json={"advance": 3600})
        assert (clock.now() - before).total_seconds() >= 3600
        assert (await http.post("/_sandbox/clock", json={"advance": "x"})).status_code == 400

        assert (await http.post("/_sandbox/expire-tokens", json={})).json() == {
            "expired": ["echo"]
        }
        assert echo.expired == 1
        missing = await http.post("/_sandbox/expire-tokens", json={"vendor": "nobody"})
        assert missing.status_code == 404


async def test_faults_are_managed_through_the_control_api(app: Starlette) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as http:
        created = await http.post(
            "/_sandbox/faults", json={"kind": "error", "path": "/echo", "times": 1, "status": 503}
        )
        assert created.status_code == 201
        assert [rule["kind"] for rule in (await http.get("/_sandbox/faults")).json()] == ["error"]
        assert (await http.get("/echo/ping")).status_code == 503
        # Used up after one request.
        assert (await http.get("/echo/ping")).status_code == 200
        assert (await http.get("/_sandbox/faults")).json() == []

        bad = await http.post("/_sandbox/faults", json={"kind": "meteor"})
        assert bad.status_code == 400
        await http.post("/_sandbox/faults", json={"kind": "error"})
        await http.delete("/_sandbox/faults")
        assert (await http.get("/echo/ping")).status_code == 200


async def test_injected_5xx_burst_is_retried_by_a_read(app: Starlette, faults: Faults) -> None:
    faults.add(FaultRule(FaultKind.ERROR, path="/echo", times=2))
    async with _client(app) as client:
        assert (await client.ping())["ok"] is True
    assert faults.rules() == []


async def test_a_write_is_not_retried_through_a_5xx(app: Starlette, faults: Faults) -> None:
    faults.add(FaultRule(FaultKind.ERROR, path="/echo", times=1))
    async with _client(app) as client:
        with pytest.raises(Unavailable):
            await client.ping(retry=False)
        assert (await client.ping(retry=False))["ok"] is True


async def test_rate_limit_carries_retry_after(app: Starlette) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as http:
        await http.post("/_sandbox/faults", json={"kind": "rate_limit", "retry_after": 7})
        response = await http.get("/echo/ping")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


async def test_malformed_json_is_unavailable_with_unknown_outcome(
    app: Starlette, faults: Faults
) -> None:
    faults.add(FaultRule(FaultKind.MALFORMED, times=1))
    async with _client(app) as client:
        with pytest.raises(Unavailable) as caught:
            await client.ping(retry=False)
    assert caught.value.outcome_unknown is True


async def test_dropped_connection_in_process(app: Starlette, faults: Faults) -> None:
    faults.add(FaultRule(FaultKind.DROP, times=1))
    async with _client(app) as client:
        with pytest.raises(Unavailable) as caught:
            await client.ping(retry=False)
    assert caught.value.outcome_unknown is True


def test_dropped_connection_over_a_real_socket(app: Starlette, faults: Faults) -> None:
    faults.add(FaultRule(FaultKind.DROP, times=1))

    async def call(url: str) -> Unavailable:
        async with EchoClient(base_url=f"{url}/echo", sleep=_no_sleep) as client:
            with pytest.raises(Unavailable) as caught:
                await client.ping(retry=False)
            assert (await client.ping(retry=False))["ok"] is True
            return caught.value

    with serve(app) as url:
        error = asyncio.run(call(url))
    assert error.outcome_unknown is True


async def test_latency_beyond_the_client_timeout_is_a_timeout(
    app: Starlette, faults: Faults
) -> None:
    faults.add(FaultRule(FaultKind.LATENCY, latency=0.3))
    with serve(app) as url:
        async with EchoClient(
            base_url=f"{url}/echo", timeout=httpx.Timeout(0.05), sleep=_no_sleep
        ) as client:
            with pytest.raises(Unavailable) as caught:
                await client.ping(retry=False)
    assert "timed out" in caught.value.message
    assert caught.value.outcome_unknown is True


async def test_control_routes_are_never_faulted(app: Starlette, faults: Faults) -> None:
    faults.add(FaultRule(FaultKind.ERROR))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox"
    ) as http:
        assert (await http.get("/_sandbox/demo")).status_code == 200
        assert (await http.get("/echo/ping")).status_code == 500


def test_probability_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="probability"):
        Faults().add(FaultRule(FaultKind.ERROR, probability=1.5))


def test_demo_timer_ticks_every_vendor(sandbox_settings: Settings, clock: Clock) -> None:
    echo = EchoSandbox(clock)
    app = create_app(sandbox_settings, clock=clock, vendors=[echo], auto_advance_every=0.02)
    with serve(app):
        deadline = time.monotonic() + 5
        while echo.ticks < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert echo.ticks >= 2
