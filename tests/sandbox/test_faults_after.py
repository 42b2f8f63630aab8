"""`"when": "after"`: the sandbox carries a write out, then answers late or never.

Every write of every vendor, through the production clients: with `drop` after, the client
sees a dropped connection whose outcome is unknown, and the record was changed all the same;
with `latency` after, over a real socket, the client times out and the record was changed
before it gave up. With the default `"when": "before"` the same faults change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from api.akubela import AkubelaClient, AkubelaTokens
from api.base import RetryPolicy
from api.errors import Unavailable
from api.servitly import ServitlyClient
from api.servitly_models import HistoricalEventWrite
from api.tuya import TuyaClient
from api.tuya_models import RoomDeviceRelation
from bot.settings import Settings
from sandbox.akubela_seed import GYM
from sandbox.core import Clock
from sandbox.faults import FaultKind, FaultRule, Faults, FaultWhen
from sandbox.servitly import MAINTENANCE_DEFINITION_ID
from sandbox.tuya import LI_WEI, ROOM_A_1201
from tests.support_server import serve

ALICE_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b601"
BOB_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b603"
ALICE_WAITING_REPAIR = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c01"
ALICE_GYM_BOOKING = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01"
PENDING_ACCEPTANCE_TOM = "1112382396505300003"
ACCEPTANCE_COMPLETE_TOM = "1112382396505300001"
PENDING_MAINTENANCE_TOM = "1112382396505300007"
COMMANDS = "/akubela/api/v1.0/invoke/open-ability/method/user-commands"
TASKS = "/tuya/v1.0/osaas/projects/{project}/maintenance/tasks"
EVENTS = "/servitly/inventory/historicalEvents"
NOTES = "Door sensor replaced, recorded under a lost answer"


async def _no_sleep(_seconds: float) -> None:
    return None


@dataclass
class Clients:
    akubela: AkubelaClient
    tuya: TuyaClient
    servitly: ServitlyClient
    alice: AkubelaTokens
    bob: AkubelaTokens


@asynccontextmanager
async def clients(
    settings: Settings,
    clock: Clock,
    base: str,
    transport: httpx.AsyncBaseTransport | None,
    read_timeout: float | None = None,
) -> AsyncIterator[Clients]:
    """The three production clients against the sandbox, residents logged in."""
    common: dict[str, Any] = {"transport": transport, "sleep": _no_sleep}
    if read_timeout is not None:
        common["timeout"] = httpx.Timeout(5.0, read=read_timeout)
    akubela = AkubelaClient(
        base_url=f"{base}/akubela",
        client_id=settings.akubela_client_id,
        client_secret=settings.akubela_client_secret,
        clock=clock.now,
        **common,
    )
    tuya = TuyaClient(
        base_url=f"{base}/tuya",
        client_id=settings.tuya_client_id,
        client_secret=settings.tuya_client_secret,
        project_id=settings.tuya_project_id,
        clock=lambda: clock.now().timestamp(),
        **common,
    )
    servitly = ServitlyClient(
        base_url=f"{base}/servitly",
        api_key=settings.servitly_api_key,
        pat=settings.servitly_pat,
        tenant=settings.servitly_tenant,
        tenant_header=settings.servitly_tenant_header,
        clock=clock.now,
        retry=RetryPolicy(retries=2, base_delay=0.0, max_delay=1.0),
        **common,
    )
    async with akubela, tuya, servitly:
        alice = await akubela.password_login(
            "alice@demo.community", SecretStr("alice-demo-pass"), scope="user"
        )
        bob = await akubela.password_login(
            "bob@demo.community", SecretStr("bob-demo-pass"), scope="user"
        )
        # Logged in before the fault is set, so only the write itself meets it.
        await tuya.list_tasks(page_size=1)
        await servitly.login()
        yield Clients(
            akubela, tuya, servitly, akubela.user_tokens(alice), akubela.user_tokens(bob)
        )


def _tomorrow(settings: Settings, clock: Clock, hour: int) -> datetime:
    day = clock.now().astimezone(settings.zone).date() + timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=settings.zone).astimezone(UTC)


@dataclass
class World:
    """The sandbox as the test found it, before the fault."""

    app: Starlette
    settings: Settings
    clock: Clock
    seeded_tasks: frozenset[str]
    gym_code: str

    @property
    def akubela(self) -> Any:
        return self.app.state.control.vendors["akubela"]

    @property
    def tuya(self) -> Any:
        return self.app.state.control.vendors["tuya"]

    def tomorrow(self, hour: int) -> datetime:
        return _tomorrow(self.settings, self.clock, hour)


@dataclass(frozen=True)
class Case:
    """One vendor write: its path, how to make it, and whether the vendor did it."""

    name: str
    path: Callable[[Settings], str]
    write: Callable[[Clients, World], Awaitable[object]]
    happened: Callable[[World], bool]


def _tasks(settings: Settings) -> str:
    return TASKS.format(project=settings.tuya_project_id)


async def _create_repair(c: Clients, w: World) -> object:
    start = w.tomorrow(9)
    return await c.akubela.create_maintenance_info(
        c.alice,
        ALICE_HOME,
        start_time=start,
        finish_time=start + timedelta(hours=3),
        description=DESCRIPTION,
        contact="+86 138 0000 0007",
        command_id="cmd-repair-after",
    )


def _gym_cancelled(w: World) -> bool:
    booking = w.akubela._bookings.get(ALICE_GYM_BOOKING)
    return booking is None or booking.state == "canceled"


def _status(task_id: str, status: str) -> Callable[[World], bool]:
    return lambda w: str(w.tuya._tasks[task_id].status) == status


def _event(c: Clients, w: World) -> Awaitable[object]:
    return c.servitly.create_historical_event(
        HistoricalEventWrite(
            alert_definition_id=MAINTENANCE_DEFINITION_ID,
            start_timestamp=w.clock.now() - timedelta(hours=2),
            end_timestamp=w.clock.now() - timedelta(hours=1),
            thing_id="thing-elevator-a",
            notes=NOTES,
        )
    )


DESCRIPTION = "Balcony door sticks, made under a lost answer"
CASES = [
    Case(
        "akubela repair create",
        lambda s: COMMANDS,
        _create_repair,
        lambda w: any(r.description == DESCRIPTION for r in w.akubela._repairs.values()),
    ),
    Case(
        "akubela repair delete",
        lambda s: COMMANDS,
        lambda c, w: c.akubela.delete_maintenance_info(
            c.alice, ALICE_HOME, ALICE_WAITING_REPAIR, command_id="cmd-del-after"
        ),
        lambda w: ALICE_WAITING_REPAIR not in w.akubela._repairs,
    ),
    Case(
        "akubela repair batch delete",
        lambda s: COMMANDS,
        lambda c, w: c.akubela.batch_delete_maintenance_info(
            c.alice, ALICE_HOME, [ALICE_WAITING_REPAIR], command_id="cmd-batch-after"
        ),
        lambda w: ALICE_WAITING_REPAIR not in w.akubela._repairs,
    ),
    Case(
        "akubela booking create",
        lambda s: COMMANDS,
        lambda c, w: c.akubela.create_booking_info(
            c.alice,
            ALICE_HOME,
            amenity_id=GYM,
            start_time=w.tomorrow(19),
            duration=60,
            command_id="cmd-book-after",
        ),
        lambda w: any(
            b.amenity_id == GYM and b.start_time == w.tomorrow(19) and b.state != "canceled"
            for b in w.akubela._bookings.values()
        ),
    ),
    Case(
        "akubela booking by code",
        lambda s: COMMANDS,
        lambda c, w: c.akubela.create_code_booking_info(
            c.bob, BOB_HOME, w.gym_code, command_id="cmd-code-after"
        ),
        lambda w: any(
            b.residence_id == BOB_HOME and b.amenity_id == GYM
            for b in w.akubela._bookings.values()
        ),
    ),
    Case(
        "akubela booking cancel",
        lambda s: COMMANDS,
        lambda c, w: c.akubela.delete_booking_info(
            c.alice, ALICE_HOME, ALICE_GYM_BOOKING, command_id="cmd-cancel-after"
        ),
        _gym_cancelled,
    ),
    Case(
        "akubela booking batch cancel",
        lambda s: COMMANDS,
        lambda c, w: c.akubela.batch_delete_booking_info(
            c.alice, ALICE_HOME, [ALICE_GYM_BOOKING], command_id="cmd-cancels-after"
        ),
        _gym_cancelled,
    ),
    Case(
        "tuya task create",
        lambda s: _tasks(s).removesuffix("s"),
        lambda c, w: c.tuya.create_task(
            LI_WEI, [RoomDeviceRelation(room_id=ROOM_A_1201, device_ids=["0012243300b2"])]
        ),
        lambda w: any(
            t.worker_id == LI_WEI and t.task_id not in w.seeded_tasks
            for t in w.tuya._tasks.values()
        ),
    ),
    Case(
        "tuya task acceptance",
        lambda s: f"{_tasks(s)}/{PENDING_ACCEPTANCE_TOM}/acceptance",
        lambda c, w: c.tuya.accept_task(PENDING_ACCEPTANCE_TOM),
        _status(PENDING_ACCEPTANCE_TOM, "ACCEPTANCE_COMPLETE"),
    ),
    Case(
        "tuya task reopen",
        lambda s: f"{_tasks(s)}/{ACCEPTANCE_COMPLETE_TOM}/reopen",
        lambda c, w: c.tuya.reopen_task(ACCEPTANCE_COMPLETE_TOM),
        _status(ACCEPTANCE_COMPLETE_TOM, "PENDING_MAINTENANCE"),
    ),
    Case(
        "tuya task delete",
        lambda s: f"{_tasks(s)}/{PENDING_MAINTENANCE_TOM}",
        lambda c, w: c.tuya.delete_task(PENDING_MAINTENANCE_TOM),
        lambda w: PENDING_MAINTENANCE_TOM not in w.tuya._tasks,
    ),
    Case(
        "servitly historical event",
        lambda s: EVENTS,
        _event,
        lambda w: any(
            e.get("notes") == NOTES
            for e in w.app.state.control.vendors["servitly"]._store.events.values()
        ),
    ),
]
BY_NAME = {case.name: case for case in CASES}


def _world(app: Starlette, settings: Settings, clock: Clock) -> World:
    akubela = app.state.control.vendors["akubela"]
    return World(
        app,
        settings,
        clock,
        frozenset(app.state.control.vendors["tuya"]._tasks),
        akubela.booking_code(ALICE_GYM_BOOKING),
    )


def _faults(app: Starlette) -> Faults:
    faults: Faults = app.state.control.faults
    return faults


@pytest.mark.parametrize("name", list(BY_NAME))
async def test_a_drop_after_carries_the_write_out_and_loses_the_answer(
    name: str,
    sandbox_app: Starlette,
    sandbox_settings: Settings,
    clock: Clock,
    asgi_transport: httpx.ASGITransport,
) -> None:
    case, world = BY_NAME[name], _world(sandbox_app, sandbox_settings, clock)
    async with clients(sandbox_settings, clock, "http://sandbox", asgi_transport) as c:
        assert not case.happened(world)
        rule = _faults(sandbox_app).add(
            FaultRule(
                FaultKind.DROP, path=case.path(sandbox_settings), times=1, when=FaultWhen.AFTER
            )
        )
        with pytest.raises(Unavailable) as caught:
            await case.write(c, world)
    assert caught.value.outcome_unknown is True
    assert rule.hits == 1
    assert case.happened(world)


@pytest.mark.parametrize("name", list(BY_NAME))
async def test_a_drop_before_changes_nothing(
    name: str,
    sandbox_app: Starlette,
    sandbox_settings: Settings,
    clock: Clock,
    asgi_transport: httpx.ASGITransport,
) -> None:
    case, world = BY_NAME[name], _world(sandbox_app, sandbox_settings, clock)
    async with clients(sandbox_settings, clock, "http://sandbox", asgi_transport) as c:
        _faults(sandbox_app).add(
            FaultRule(FaultKind.DROP, path=case.path(sandbox_settings), times=1)
        )
        with pytest.raises(Unavailable):
            await case.write(c, world)
    assert not case.happened(world)


@pytest.mark.parametrize("name", list(BY_NAME))
async def test_a_latency_after_acts_at_once_and_the_client_times_out(
    name: str, sandbox_app: Starlette, sandbox_settings: Settings, clock: Clock
) -> None:
    case, world = BY_NAME[name], _world(sandbox_app, sandbox_settings, clock)
    # The answer is held for a minute; the server stops waiting when the client hangs up.
    rule = FaultRule(
        FaultKind.LATENCY,
        path=case.path(sandbox_settings),
        times=1,
        latency=60,
        when=FaultWhen.AFTER,
    )
    with serve(sandbox_app) as url:
        async with clients(sandbox_settings, clock, url, None, read_timeout=0.5) as c:
            _faults(sandbox_app).add(rule)
            with pytest.raises(Unavailable) as caught:
                await case.write(c, world)
            # Done before the client gave up, not some time after.
            assert case.happened(world)
    assert "timed out" in caught.value.message
    assert caught.value.outcome_unknown is True
    assert rule.hits == 1


async def test_when_is_set_and_listed_through_the_control_api(
    sandbox_app: Starlette, asgi_transport: httpx.ASGITransport
) -> None:
    async with httpx.AsyncClient(transport=asgi_transport, base_url="http://sandbox") as http:
        added = await http.post(
            "/_sandbox/faults", json={"kind": "latency", "latency": 3, "when": "after"}
        )
        default = await http.post("/_sandbox/faults", json={"kind": "drop"})
        refused = await http.post("/_sandbox/faults", json={"kind": "error", "when": "after"})
        unknown = await http.post("/_sandbox/faults", json={"kind": "drop", "when": "during"})
        listed = (await http.get("/_sandbox/faults")).json()
    assert added.status_code == 201
    assert added.json()["when"] == "after"
    assert default.json()["when"] == "before"
    assert refused.status_code == 400
    assert unknown.status_code == 400
    assert [rule["when"] for rule in listed] == ["after", "before"]
