"""The task board's adapters: Tuya names cached briefly, accepted work recorded in Servitly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from api.errors import InvalidRequest, NotFound, Unavailable
from api.servitly import ServitlyClient
from api.tuya import TuyaClient
from bot.settings import Settings
from bot.taskboard import ServitlyMaintenanceLog, TimedCache, TuyaTaskBoard

A_LOBBY, A_1201, B_PLANT = "145267896505310001", "145267896505310002", "145267896505310006"
TARGETS = {
    A_LOBBY: {"locationId": "loc-block-a"},
    A_1201: {"locationId": "loc-block-a"},
    B_PLANT: {"thingId": "thing-hvac-b"},
}


class Now:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.value = datetime(2026, 5, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value


class Counting(httpx.AsyncBaseTransport):
    """The sandbox, counting the requests per path."""

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self._inner.handle_async_request(request)

    def count(self, part: str) -> int:
        return sum(path.endswith(part) for path in self.paths)


async def _no_wait(seconds: float) -> None:
    return None


@pytest.fixture
def transport(sandbox_app: Starlette) -> Counting:
    return Counting(sandbox_app)


@pytest.fixture
async def tuya(sandbox_settings: Settings, transport: Counting) -> AsyncIterator[TuyaClient]:
    client = TuyaClient(
        base_url=sandbox_settings.tuya_base_url,
        client_id=sandbox_settings.tuya_client_id,
        client_secret=sandbox_settings.tuya_client_secret,
        project_id=sandbox_settings.tuya_project_id,
        transport=transport,
        sleep=_no_wait,
    )
    yield client
    await client.aclose()


@pytest.fixture
async def servitly(
    sandbox_settings: Settings, transport: Counting
) -> AsyncIterator[ServitlyClient]:
    client = ServitlyClient(
        base_url=sandbox_settings.servitly_base_url,
        api_key=sandbox_settings.servitly_api_key,
        pat=sandbox_settings.servitly_pat,
        tenant=sandbox_settings.servitly_tenant,
        transport=transport,
        sleep=_no_wait,
    )
    yield client
    await client.aclose()


def _events(sandbox_app: Starlette) -> list[dict[str, Any]]:
    events = sandbox_app.state.control.vendors["servitly"]._store.events.values()
    return [e for e in events if "tuyaTaskId" in (e.get("properties") or {})]


async def test_the_cache_keeps_a_value_for_its_time_and_never_keeps_a_failure() -> None:
    now = Now()
    cache: TimedCache[int] = TimedCache(now, timedelta(minutes=5))
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    async def fail() -> int:
        raise Unavailable("down", vendor="tuya")

    assert await cache.get("k", load) == 1
    now.value += timedelta(minutes=4)
    assert await cache.get("k", load) == 1
    now.value += timedelta(minutes=1)
    assert await cache.get("k", load) == 2
    with pytest.raises(Unavailable):
        await cache.get("other", fail)
    assert await cache.get("other", load) == 3


async def test_room_device_and_worker_names_are_fetched_once_per_five_minutes(
    tuya: TuyaClient, transport: Counting
) -> None:
    now = Now()
    board = TuyaTaskBoard(tuya, clock=now)
    for _ in range(3):
        assert len(await board.rooms()) == 6
        assert next(d.name for d in await board.devices(A_1201)) == "Smart door lock"
        assert {w.nickname for w in await board.workers()} == {"Tom", "Li Wei"}
    counts = [transport.count(part) for part in ("/rooms", "/devices", "/workers")]
    assert counts == [1, 1, 1]
    now.value += timedelta(minutes=5)
    await board.rooms()
    await board.devices(A_1201)
    assert (transport.count("/rooms"), transport.count("/devices")) == (2, 2)


async def test_tasks_are_never_cached_and_moves_go_to_tuya(
    tuya: TuyaClient, sandbox_app: Starlette
) -> None:
    board = TuyaTaskBoard(tuya, clock=Now())
    assert board.project_id == tuya.project_id
    assert len(await board.tasks()) == 8
    new = await board.create("1306411812723001", {A_1201: ["0012243300b2"]})
    assert len(await board.tasks()) == 9
    detail = await board.task(new)
    assert [(r.room_id, r.device_ids) for r in detail.rooms] == [(A_1201, ("0012243300b2",))]
    with pytest.raises(InvalidRequest):
        await board.accept(new)  # not awaiting acceptance
    await board.delete(new)
    with pytest.raises(NotFound):
        await board.task(new)


def test_a_false_answer_from_tuya_is_a_refusal() -> None:
    with pytest.raises(InvalidRequest, match="acceptance was not carried out"):
        TuyaTaskBoard._done(False, "acceptance")
    TuyaTaskBoard._done(True, "acceptance")


def test_rooms_map_to_distinct_places_in_room_order(servitly: ServitlyClient) -> None:
    log = ServitlyMaintenanceLog(servitly, targets=TARGETS)
    assert log.places([B_PLANT, A_LOBBY, A_1201, "unmapped"]) == [
        {"thingId": "thing-hvac-b"},
        {"locationId": "loc-block-a"},
    ]
    assert log.covers(["unmapped", A_1201])
    assert not log.covers(["unmapped"])


async def test_accepted_work_is_a_maintenance_event_on_each_place(
    servitly: ServitlyClient, sandbox_app: Starlette
) -> None:
    log = ServitlyMaintenanceLog(
        servitly, targets=TARGETS, thing_definition_id="td-community-equipment"
    )
    start = datetime.now(UTC) - timedelta(hours=5)
    end = datetime.now(UTC)
    ids = await log.record(
        reference="t-1", room_ids=[A_1201, B_PLANT, A_LOBBY], start=start, end=end, notes="n"
    )
    events = _events(sandbox_app)
    assert sorted(e["id"] for e in events) == sorted(ids)
    assert {(e.get("thingId"), e["locationId"]) for e in events} == {
        (None, "loc-block-a"),
        ("thing-hvac-b", "loc-block-b"),
    }
    assert all(e["alertDefinitionId"] == "ad-maintenance" for e in events)
    assert all(e["eventSeverity"] == 5 for e in events)
    assert all(e["properties"] == {"tuyaTaskId": "t-1"} for e in events)
    nothing = await log.record(
        reference="t-2", room_ids=["unmapped"], start=start, end=end, notes=""
    )
    assert nothing == []


async def test_the_deprecated_works_are_written_too_when_asked(
    servitly: ServitlyClient, sandbox_app: Starlette
) -> None:
    log = ServitlyMaintenanceLog(
        servitly, targets=TARGETS, alert_definition_id="ad-maintenance", deprecated_works=True
    )
    now = datetime.now(UTC)
    ids = await log.record(
        reference="t-1", room_ids=[B_PLANT], start=now, end=now, notes="x" * 5000
    )
    assert len(ids) == 2
    [work] = sandbox_app.state.control.vendors["servitly"]._store.works.values()
    assert work["thingId"] == "thing-hvac-b"
    assert len(work["description"]) == 4000


async def test_a_thing_definition_without_maintenance_is_reported(
    servitly: ServitlyClient,
) -> None:
    log = ServitlyMaintenanceLog(servitly, targets=TARGETS, thing_definition_id="td-unknown")
    now = datetime.now(UTC)
    with pytest.raises(NotFound):
        await log.record(reference="t", room_ids=[A_1201], start=now, end=now, notes="")
