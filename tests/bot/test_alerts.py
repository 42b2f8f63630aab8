"""Alerts: the pure rules (diff, routing, keys, quiet hours) and the watcher on the sandbox."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette

from api.akubela_models import Booking, ManagerMaintenance
from api.tuya_models import TaskSummary
from bot.alert_delivery import render
from bot.alert_kinds import (
    GONE,
    MSG_REPAIR_NEW,
    MSG_REPAIR_STATE,
    SINCE,
    Alert,
    AlertKind,
    Change,
    ChangeKind,
    Directory,
    booking_alerts,
    booking_lapses,
    booking_record,
    booking_reminders,
    diff,
    in_quiet_hours,
    periods_overdue,
    repair_alerts,
    repair_escalations,
    repair_record,
    stamp,
    task_alerts,
    task_escalations,
    task_record,
    wanted,
)
from bot.alert_watcher import AlertWatcher, watch_vendors, watcher_of
from bot.storage.models import AlertStatus, SentAlert
from bot.storage.repositories import Alerts, SeenRecord, VendorStates, storable_key
from conversations.alert_settings import MSG_QUIET_BAD, SWITCHED_OFF_KEY, parse_quiet_hours
from conversations.domain import RedeemOutcome, Role
from conversations.i18n import tr
from conversations.ports import OwnWrite
from sandbox.faults import FaultKind, FaultRule
from sandbox.tuya import LI_WEI, TOM
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot
from tests.support_telegram import Call

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
RESIDENT, OTHER_RESIDENT, WORKER, OTHER_WORKER, MANAGER, MANAGER_2 = 11, 12, 21, 22, 31, 32
DIRECTORY = Directory(
    residents={"home-1": (RESIDENT,), "home-2": (OTHER_RESIDENT,)},
    workers={"tom@demo": (WORKER,), "li@demo": (OTHER_WORKER,)},
    managers=(MANAGER, MANAGER_2),
)


def _seen(record_id: str, state: str, since: datetime | None = None, **snap: Any) -> SeenRecord:
    snapshot = dict(snap)
    if since is not None:
        snapshot[SINCE] = since.isoformat()
    return SeenRecord(record_id, state, snapshot)


def _state(change: Change) -> tuple[ChangeKind, str, str | None, str | None]:
    return change.kind, change.record_id, change.before, change.after


# ---- diff and stamp ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        pytest.param([], [], [], id="nothing"),
        pytest.param([], [("a", "x")], [(ChangeKind.NEW, "a", None, "x")], id="new"),
        pytest.param([("a", "x")], [("a", "x")], [], id="unchanged"),
        pytest.param(
            [("a", "x")], [("a", "y")], [(ChangeKind.STATE, "a", "x", "y")], id="state changed"
        ),
        pytest.param([("a", "x")], [], [(ChangeKind.GONE, "a", "x", None)], id="gone"),
        pytest.param([("a", GONE)], [], [], id="gone is reported once"),
        pytest.param([("a", GONE)], [("a", "x")], [(ChangeKind.NEW, "a", None, "x")], id="back"),
        pytest.param(
            [("a", "x"), ("b", "y")],
            [("b", "z"), ("c", "x")],
            [
                (ChangeKind.STATE, "b", "y", "z"),
                (ChangeKind.NEW, "c", None, "x"),
                (ChangeKind.GONE, "a", "x", None),
            ],
            id="mixed",
        ),
    ],
)
def test_diff(
    previous: list[tuple[str, str]],
    current: list[tuple[str, str]],
    expected: list[tuple[ChangeKind, str, str | None, str | None]],
) -> None:
    before = {rid: _seen(rid, state, T0) for rid, state in previous}
    now = [_seen(rid, state) for rid, state in current]
    assert [_state(c) for c in diff(before, now)] == expected


def test_a_state_change_carries_when_the_previous_state_began() -> None:
    before = {"a": _seen("a", "x", T0)}
    (change,) = diff(before, [_seen("a", "y")])
    assert change.before_since == T0.isoformat()


def test_stamp_keeps_since_while_the_state_holds_and_restarts_it_on_a_change() -> None:
    later = T0 + timedelta(hours=1)
    before = {
        "same": _seen("same", "x", T0),
        "moved": _seen("moved", "x", T0),
        "gone": _seen("gone", "x", T0),
    }
    stored = {
        r.record_id: r
        for r in stamp(before, [_seen("same", "x"), _seen("moved", "y"), _seen("new", "x")], later)
    }
    assert stored["same"].snapshot[SINCE] == T0.isoformat()
    assert stored["moved"].snapshot[SINCE] == later.isoformat()
    assert stored["new"].snapshot[SINCE] == later.isoformat()
    assert stored["gone"].state == GONE
    # Already gone stays as stored: nothing to write again.
    assert [r.record_id for r in stamp({"g": _seen("g", GONE, T0)}, [], later)] == []


def test_records_from_vendor_models() -> None:
    repair = repair_record(
        ManagerMaintenance(
            maintenance_id="m1",
            residence_id="home-1",
            state="in progress",
            description="Tap drips",
            feedback="",
            family_name="Chen Home",
            building_name="Building A",
        )
    )
    assert (repair.record_id, repair.state) == ("m1", "in progress")
    assert repair.snapshot["residence_id"] == "home-1"
    assert repair.snapshot["home"] == "Building A Chen Home"
    booking = booking_record(
        Booking(booking_id="b1", amenity_name="Gym", state="pending", start_time=T0), "home-1"
    )
    assert booking.snapshot == {
        "residence_id": "home-1",
        "amenity": "Gym",
        "home": "",
        "start": T0.isoformat(),
    }
    task = task_record(
        TaskSummary(task_id="t1", status="PENDING_MAINTENANCE", worker_username="tom@demo")
    )
    assert task.snapshot == {"worker_username": "tom@demo", "worker": "tom@demo"}


# ---- routing -------------------------------------------------------------------------------


def _change(
    kind: ChangeKind, rid: str, before: str | None, after: str | None, **snap: Any
) -> Change:
    return Change(kind, rid, before, after, snap, before_since=T0.isoformat() if before else None)


def _who(alerts: list[Alert]) -> list[tuple[AlertKind, int]]:
    return [(a.kind, a.recipient) for a in alerts]


REPAIR = {"residence_id": "home-1", "description": "Tap drips", "home": "A 1201", "feedback": ""}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _change(ChangeKind.NEW, "m1", None, "wait for confirmation", **REPAIR),
            [(AlertKind.REPAIR_NEW, MANAGER), (AlertKind.REPAIR_NEW, MANAGER_2)],
            id="new repair: managers",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "m1", "wait for confirmation", "in progress", **REPAIR),
            [(AlertKind.REPAIR_STATE, RESIDENT)],
            id="state change: its resident only",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "m1", "x", "y", **{**REPAIR, "residence_id": "nobody"}),
            [],
            id="repair of an unlinked residence",
        ),
        pytest.param(_change(ChangeKind.GONE, "m1", "closed", None, **REPAIR), [], id="gone"),
    ],
)
def test_repair_routing(change: Change, expected: list[tuple[AlertKind, int]]) -> None:
    assert _who(repair_alerts([change], DIRECTORY)) == expected


def test_a_repair_state_alert_names_the_state_and_the_feedback() -> None:
    change = _change(
        ChangeKind.STATE, "m1", "in progress", "completed", **{**REPAIR, "feedback": "Fixed"}
    )
    (alert,) = repair_alerts([change], DIRECTORY)
    assert alert.values["state"] == "completed by the technician"
    assert alert.translated == ("state",)
    assert "{feedback}" in alert.message
    assert alert.values["feedback"] == "Fixed"
    assert not alert.urgent
    unknown = _change(ChangeKind.STATE, "m1", "completed", "archived", **REPAIR)
    (alert,) = repair_alerts([unknown], DIRECTORY)
    assert alert.values["state"] == "archived"
    assert alert.translated == ()
    assert "{feedback}" not in alert.message


def test_a_new_repair_alert_has_one_tap_buttons_and_the_facts_a_manager_needs() -> None:
    repair = {
        **REPAIR,
        "start": T0.isoformat(),
        "finish": (T0 + timedelta(hours=3)).isoformat(),
        "contact": "+86 138 0000 0001",
    }
    directory = Directory(
        residents=DIRECTORY.residents,
        managers=DIRECTORY.managers,
        flats={"home-1": "Building A 1201"},
    )
    (alert, _) = repair_alerts(
        [_change(ChangeKind.NEW, "m12345678", None, "x", **repair)], directory
    )
    datas = [data for _, data in alert.buttons]
    assert datas == ["1:repairs_all:show:m12345678", "1:assign:repair:m12345678"]
    text, _ = render(alert, "en", ZONE)
    assert text == (
        "🆕 New repair #345678 from Building A 1201:\n📝 Tap drips\n"
        "🕒 Visit: 2026-03-02 09:00 – 2026-03-02 12:00\n📞 +86 138 0000 0001"
    )
    zh, _ = render(alert, "zh", ZONE)
    assert "上门时间：2026-03-02 09:00 – 2026-03-02 12:00" in zh
    assert "Building A 1201" in zh


BOOKING = {"residence_id": "home-1", "amenity": "Gym", "home": "A 1201", "start": T0.isoformat()}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _change(ChangeKind.STATE, "b1", "pending", "success", **BOOKING),
            [(AlertKind.BOOKING_DECIDED, RESIDENT)],
            id="approved",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "b1", "pending", "rejected", **BOOKING),
            [(AlertKind.BOOKING_DECIDED, RESIDENT)],
            id="rejected",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "b1", "success", "canceled", **BOOKING),
            [(AlertKind.CANCELLED, MANAGER), (AlertKind.CANCELLED, MANAGER_2)],
            id="an approved booking cancelled: the office",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "b1", "pending", "canceled", **BOOKING),
            [
                (AlertKind.BOOKING_DECIDED, RESIDENT),
                (AlertKind.CANCELLED, MANAGER),
                (AlertKind.CANCELLED, MANAGER_2),
            ],
            id="a waiting booking found cancelled: its resident and the office",
        ),
        pytest.param(
            _change(ChangeKind.GONE, "b1", "pending", None, **BOOKING),
            [(AlertKind.BOOKING_DECIDED, RESIDENT)],
            id="a waiting booking gone: its resident hears what is known",
        ),
        pytest.param(
            _change(ChangeKind.NEW, "b1", None, "rejected", **BOOKING),
            [],
            id="decided before it was ever seen: nobody",
        ),
        pytest.param(
            _change(ChangeKind.NEW, "b1", None, "pending", **BOOKING),
            [(AlertKind.BOOKING_PENDING, MANAGER), (AlertKind.BOOKING_PENDING, MANAGER_2)],
            id="waiting for approval: managers",
        ),
        pytest.param(
            _change(ChangeKind.NEW, "b1", None, "success", **BOOKING), [], id="auto-approved"
        ),
    ],
)
def test_booking_routing(change: Change, expected: list[tuple[AlertKind, int]]) -> None:
    assert _who(booking_alerts([change], DIRECTORY)) == expected


def test_booking_decisions_say_which_and_when_in_the_readers_zone() -> None:
    approved = _change(ChangeKind.STATE, "b1", "pending", "success", **BOOKING)
    rejected = _change(ChangeKind.STATE, "b1", "pending", "rejected", **BOOKING)
    (yes,) = booking_alerts([approved], DIRECTORY)
    (no,) = booking_alerts([rejected], DIRECTORY)
    assert "approved" in yes.message
    assert "rejected" in no.message
    # A booking leaves `pending` once: whatever it is found in, one outcome, one key.
    assert yes.key == no.key
    assert yes.moments == ("when",)
    assert render(yes, "en", ZONE)[0].endswith("on 2026-03-02 09:00 was approved.")
    assert "2026-03-02 02:00" in render(yes, "en", ZoneInfo("Europe/Paris"))[0]
    assert "2026-03-02 09:00" in render(yes, "zh", ZONE)[0]


TASK = {"worker_username": "tom@demo", "worker": "Tom"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _change(ChangeKind.NEW, "t1", None, "PENDING_MAINTENANCE", **TASK),
            [(AlertKind.TASK_ASSIGNED, WORKER)],
            id="assigned: its worker only",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "t1", "PENDING_MAINTENANCE", "IN_MAINTENANCE", **TASK),
            [],
            id="started: nobody",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "t1", "IN_MAINTENANCE", "PENDING_ACCEPTANCE", **TASK),
            [
                (AlertKind.TASK_AWAITING_ACCEPTANCE, MANAGER),
                (AlertKind.TASK_AWAITING_ACCEPTANCE, MANAGER_2),
            ],
            id="finished: managers",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "t1", "PENDING_ACCEPTANCE", "PENDING_MAINTENANCE", **TASK),
            [(AlertKind.TASK_REOPENED, WORKER)],
            id="reopened after acceptance was asked",
        ),
        pytest.param(
            _change(ChangeKind.STATE, "t1", "ACCEPTANCE_COMPLETE", "PENDING_MAINTENANCE", **TASK),
            [(AlertKind.TASK_REOPENED, WORKER)],
            id="reopened after acceptance",
        ),
        pytest.param(
            _change(
                ChangeKind.NEW,
                "t1",
                None,
                "PENDING_MAINTENANCE",
                **{**TASK, "worker_username": "x"},
            ),
            [],
            id="a worker nobody linked",
        ),
    ],
)
def test_task_routing(change: Change, expected: list[tuple[AlertKind, int]]) -> None:
    assert _who(task_alerts([change], DIRECTORY)) == expected


def test_a_task_awaiting_acceptance_carries_accept_and_reopen_buttons() -> None:
    change = _change(
        ChangeKind.STATE, "t123456789", "IN_MAINTENANCE", "PENDING_ACCEPTANCE", **TASK
    )
    alert = task_alerts([change], DIRECTORY)[0]
    assert [data for _, data in alert.buttons] == [
        "1:tasks:accept:t123456789",
        "1:tasks:reopen:t123456789",
    ]
    assert alert.values == {"short_id": "456789", "worker": "Tom"}


def test_keys_differ_per_recipient_and_per_visit_to_a_state() -> None:
    first = _change(ChangeKind.STATE, "t1", "IN_MAINTENANCE", "PENDING_ACCEPTANCE", **TASK)
    again = Change(
        ChangeKind.STATE,
        "t1",
        "IN_MAINTENANCE",
        "PENDING_ACCEPTANCE",
        TASK,
        before_since=(T0 + timedelta(days=1)).isoformat(),
    )
    keys_first = [a.key for a in task_alerts([first], DIRECTORY)]
    keys_again = [a.key for a in task_alerts([again], DIRECTORY)]
    assert len(set(keys_first)) == 2
    assert not set(keys_first) & set(keys_again)
    # The same change derived twice (e.g. after a crash) gives the same keys.
    assert keys_first == [a.key for a in task_alerts([first], DIRECTORY)]


def test_a_new_repair_alert_carries_the_residents_photos() -> None:
    change = _change(ChangeKind.NEW, "m1", None, "wait for confirmation", **REPAIR)
    alerts = repair_alerts([change], DIRECTORY, {"m1": ["photo-a", "photo-b"]})
    assert {a.photos for a in alerts} == {("photo-a", "photo-b")}
    assert repair_alerts([change], DIRECTORY)[0].photos == ()


# ---- reminders and escalations -------------------------------------------------------------


def test_a_booking_still_pending_when_it_began_tells_its_resident_once() -> None:
    tomorrow = {**BOOKING, "start": (T0 + timedelta(days=1)).isoformat()}
    started = SeenRecord("b1", "pending", dict(BOOKING))
    upcoming = SeenRecord("b2", "pending", tomorrow)
    approved = SeenRecord("b3", "success", dict(BOOKING))
    (lapsed,) = booking_lapses([started, upcoming, approved], DIRECTORY, now=T0)
    assert (lapsed.kind, lapsed.recipient) == (AlertKind.BOOKING_DECIDED, RESIDENT)
    assert "still waiting for approval when it began" in render(lapsed, "en", ZONE)[0]
    # The same key as any other outcome: a late decision seen afterwards is not told again.
    (decided,) = booking_alerts(
        [_change(ChangeKind.STATE, "b1", "pending", "success", **BOOKING)], DIRECTORY
    )
    assert decided.key == lapsed.key


def test_the_known_task_facts_survive_the_next_poll() -> None:
    known = {"t1": _seen("t1", "PENDING_MAINTENANCE", T0, note="Tap drips", rooms="A 1201")}
    (stored,) = stamp(known, [_seen("t1", "IN_MAINTENANCE", worker="Tom")], T0)
    assert stored.snapshot["note"] == "Tap drips"
    assert stored.snapshot["rooms"] == "A 1201"
    assert stored.snapshot["worker"] == "Tom"


async def test_a_poll_never_overwrites_a_state_the_bot_stored_while_it_was_looking(
    bot: BotUnderTest,
) -> None:
    states = bot.services.storage.vendor_states
    await states.put_many("akubela", "booking", [_seen("b1", "pending")], T0)
    # The poll read "pending" and saw it approved; meanwhile the bot stored a cancellation.
    await states.put_many("akubela", "booking", [_seen("b1", "canceled")], T0)
    await states.put_many(
        "akubela", "booking", [_seen("b1", "success")], T0, expected={"b1": "pending"}
    )
    # And a record the poll took for new was stored by the bot first.
    await states.put_many("akubela", "booking", [_seen("b2", "pending")], T0)
    await states.put_many(
        "akubela", "booking", [_seen("b2", "success")], T0, expected={"b2": None}
    )
    rows = await states.get_many("akubela", "booking")
    assert {rid: row.state for rid, row in rows.items()} == {"b1": "canceled", "b2": "pending"}
    await states.put_many(
        "akubela", "booking", [_seen("b1", "~gone")], T0, expected={"b1": "canceled"}
    )
    assert (await states.get_many("akubela", "booking"))["b1"].state == "~gone"


@pytest.mark.parametrize(
    ("state", "starts_in", "reminded"),
    [
        ("success", timedelta(minutes=20), True),
        ("success", timedelta(minutes=30), True),
        ("success", timedelta(minutes=31), False),
        ("success", timedelta(minutes=-1), False),
        ("pending", timedelta(minutes=20), False),
        ("canceled", timedelta(minutes=20), False),
    ],
)
def test_booking_reminders(state: str, starts_in: timedelta, reminded: bool) -> None:
    record = _seen("b1", state, T0, **{**BOOKING, "start": (T0 + starts_in).isoformat()})
    alerts = booking_reminders([record], DIRECTORY, now=T0, lead=timedelta(minutes=30))
    assert _who(alerts) == ([(AlertKind.BOOKING_REMINDER, RESIDENT)] if reminded else [])
    assert all(a.urgent for a in alerts)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (timedelta(0), 0),
        (timedelta(hours=3, minutes=59), 0),
        (timedelta(hours=4), 1),
        (timedelta(hours=7), 1),
        (timedelta(hours=8, seconds=1), 2),
        (timedelta(hours=-1), 0),
    ],
)
def test_periods_overdue(elapsed: timedelta, expected: int) -> None:
    assert periods_overdue(T0, T0 + elapsed, timedelta(hours=4)) == expected


def test_repair_escalation_repeats_at_most_once_per_threshold() -> None:
    record = _seen("m1", "wait for confirmation", T0, **REPAIR)
    threshold = timedelta(hours=4)

    def keys(after: timedelta) -> set[str]:
        found = repair_escalations([record], DIRECTORY, now=T0 + after, threshold=threshold)
        assert all(a.urgent and a.kind is AlertKind.REPAIR_ESCALATION for a in found)
        return {a.key for a in found}

    assert keys(timedelta(hours=3)) == set()
    first = keys(timedelta(hours=4, minutes=1))
    assert len(first) == 2  # one per manager
    assert keys(timedelta(hours=7)) == first
    second = keys(timedelta(hours=8, minutes=1))
    assert len(second) == 2
    assert not first & second
    moved = _seen("m1", "in progress", T0, **REPAIR)
    assert (
        repair_escalations([moved], DIRECTORY, now=T0 + timedelta(days=1), threshold=threshold)
        == []
    )


def test_task_escalation_only_for_unacknowledged_new_tasks() -> None:
    waiting = _seen("t1", "PENDING_MAINTENANCE", T0, **TASK)
    started = _seen("t2", "IN_MAINTENANCE", T0, **TASK)
    seen = _seen("t3", "PENDING_MAINTENANCE", T0, **TASK)
    later = T0 + timedelta(hours=5)
    alerts = task_escalations(
        [waiting, started, seen], {"t3"}, DIRECTORY, now=later, threshold=timedelta(hours=4)
    )
    assert {(a.recipient, a.key.split(":")[1]) for a in alerts} == {
        (MANAGER, "t1"),
        (MANAGER_2, "t1"),
    }
    assert alerts[0].values["hours"] == "4"


# ---- quiet hours, switches, payload --------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "start", "end", "quiet"),
    [
        (time(23, 0), time(22, 0), time(7, 0), True),
        (time(3, 0), time(22, 0), time(7, 0), True),
        (time(7, 0), time(22, 0), time(7, 0), False),
        (time(12, 0), time(22, 0), time(7, 0), False),
        (time(13, 0), time(12, 0), time(14, 0), True),
        (time(14, 0), time(12, 0), time(14, 0), False),
        (time(13, 0), None, None, False),
        (time(13, 0), time(9, 0), time(9, 0), False),
    ],
)
def test_quiet_hours(moment: time, start: time | None, end: time | None, quiet: bool) -> None:
    assert in_quiet_hours(moment, start, end) is quiet


def test_only_managers_kinds_can_be_switched_off() -> None:
    new_repair = Alert("k", AlertKind.REPAIR_NEW, MANAGER, "m")
    state = Alert("k", AlertKind.REPAIR_STATE, RESIDENT, "m")
    assert not wanted(new_repair, {"repair_new"})
    assert wanted(new_repair, set())
    assert wanted(state, {"repair_state"})


def test_an_alert_survives_its_payload() -> None:
    change = _change(ChangeKind.STATE, "t1", "IN_MAINTENANCE", "PENDING_ACCEPTANCE", **TASK)
    alert = task_alerts([change], DIRECTORY)[0]
    restored = Alert.from_payload(alert.key, alert.kind.value, alert.recipient, alert.payload())
    assert restored == alert


# ---- the watcher against the sandbox ---------------------------------------------------------

ALICE, BOB, TOM_TG, LI_TG, BOSS = 7001, 7002, 7003, 7004, 7005
REPAIR_WAITING = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c01"  # Alice's first home, wait for confirmation
REPAIR_DAVE = "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c05"  # nobody linked, wait for confirmation
BOOKING_BOB_PENDING = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02"
BOOKING_ALICE_GYM = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01"  # approved, tomorrow 07:00
TASK_TOM_IN_WORK = "1112382396505300005"
TASK_TOM_NEW = "1112382396505300007"
TASK_LI_NEW = "1112382396505300008"
TASK_TOM_AWAITING = "1112382396505300003"


class MovableClock:
    """The bot's clock, moved by the test (the sandbox keeps real time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def bot_clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def bot(
    database_url: str, sandbox_app: Starlette, bot_clock: MovableClock
) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app, clock=bot_clock) as running:
        yield running


def _akubela(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["akubela"]


def _tuya(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["tuya"]


async def _join(
    bot: BotUnderTest,
    telegram_id: int,
    role: Role,
    *,
    worker_id: str | None = None,
    project_id: str | None = None,
) -> None:
    invites = bot.services.invites
    code = await invites.create(
        role,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        worker_id=worker_id,
        project_id=project_id,
        community_ids=[1],
    )
    redeemed = await invites.redeem(code, telegram_id, now=datetime.now(UTC))
    assert redeemed.outcome is RedeemOutcome.BOUND


async def _community(bot: BotUnderTest, sandbox_app: Starlette, *, residents: bool = True) -> None:
    """Alice (two homes) and Bob linked, Tom and Li Wei as workers, one manager."""
    if residents:
        await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
        await link_demo_resident(bot, sandbox_app, BOB, homes=1)
    await _join(bot, TOM_TG, Role.WORKER, worker_id=TOM)
    await _join(bot, LI_TG, Role.WORKER, worker_id=LI_WEI)
    await _join(bot, BOSS, Role.MANAGER, project_id=bot.settings.akubela_project_id)


async def _poll(bot: BotUnderTest) -> None:
    assert bot.app.job_queue is not None
    (job,) = bot.app.job_queue.get_jobs_by_name("alerts")
    await job.run(bot.app)


def _to(bot: BotUnderTest, telegram_id: int) -> list[Call]:
    return [c for c in bot.telegram.sent("sendMessage") if int(c.params["chat_id"]) == telegram_id]


def _recipients(bot: BotUnderTest) -> list[int]:
    return sorted(int(c.params["chat_id"]) for c in bot.telegram.sent("sendMessage"))


@pytest.mark.parametrize("shape", ["page", "array"])
async def test_the_first_poll_only_looks_then_each_change_reaches_the_right_people_once(
    bot: BotUnderTest, sandbox_app: Starlette, shape: str
) -> None:
    # The manager list as a page object, or as the bare array Akubela's V4 pages show.
    _akubela(sandbox_app).manager_list_bare = shape == "array"
    await _community(bot, sandbox_app)
    await _poll(bot)
    assert bot.telegram.sent("sendMessage") == []

    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
    _akubela(sandbox_app).advance("booking", BOOKING_BOB_PENDING, "approve")
    _tuya(sandbox_app).advance("task", TASK_TOM_IN_WORK)  # now waits for acceptance
    _tuya(sandbox_app).advance("task", TASK_LI_NEW)  # started: nobody needs to hear
    await _poll(bot)

    assert _recipients(bot) == [ALICE, BOB, BOSS]
    (repair,) = _to(bot, ALICE)
    assert "Kitchen tap drips" in (repair.text or "")
    assert "confirmed and being worked on" in (repair.text or "")
    (booking,) = _to(bot, BOB)
    assert "was approved" in (booking.text or "")
    (awaiting,) = _to(bot, BOSS)
    assert "waits for your acceptance" in (awaiting.text or "")
    assert [b["callback_data"] for row in awaiting.buttons for b in row] == [
        f"1:tasks:accept:{TASK_TOM_IN_WORK}",
        f"1:tasks:reopen:{TASK_TOM_IN_WORK}",
    ]

    await _poll(bot)
    assert len(bot.telegram.sent("sendMessage")) == 3


@pytest.mark.parametrize("shape", ["page", "array"])
async def test_workers_hear_of_new_and_reopened_tasks_and_managers_of_new_repairs_in_chinese(
    bot: BotUnderTest, sandbox_app: Starlette, shape: str
) -> None:
    _akubela(sandbox_app).manager_list_bare = shape == "array"
    await _community(bot, sandbox_app)
    await bot.services.storage.users.set_language(BOSS, "zh")
    await _poll(bot)

    _tuya(sandbox_app).advance("task", TASK_TOM_AWAITING, "reopen")
    created = await bot.services.tuya.create_task(
        worker_id=LI_WEI, room_device_relations=[_relation()]
    )
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    start = datetime.now(UTC) + timedelta(days=2)
    await desk.report_repair(
        start=start,
        finish=start + timedelta(hours=3),
        description="Hallway light is out",
        contact="+86 138 0000 0002",
        command_id="alerts-test-repair-1",
    )
    await _poll(bot)

    assert _recipients(bot) == [TOM_TG, LI_TG, BOSS]
    (reopened,) = _to(bot, TOM_TG)
    assert f"#{TASK_TOM_AWAITING[-6:]} was reopened" in (reopened.text or "")
    (assigned,) = _to(bot, LI_TG)
    # Made in the Tuya console: the list does not say where, so its rooms were looked up.
    assert (assigned.text or "") == (
        f"🧰 New maintenance task #{created[-6:]} for you.\n🏠 Block A lobby"
    )
    (new_repair,) = _to(bot, BOSS)
    assert "提交了新报修" in (new_repair.text or "")
    assert "Hallway light is out" in (new_repair.text or "")
    assert "+86 138 0000 0002" in (new_repair.text or "")
    labels = [b["text"] for row in new_repair.buttons for b in row]
    assert labels == [tr("zh", "🔎 Open the repair"), tr("zh", "➕ Assign a task")]
    assert labels != ["🔎 Open the repair", "➕ Assign a task"]
    assert [b["callback_data"].split(":")[:3] for row in new_repair.buttons for b in row] == [
        ["1", "repairs_all", "show"],
        ["1", "assign", "repair"],
    ]


def _relation() -> Any:
    from api.tuya_models import RoomDeviceRelation

    return RoomDeviceRelation(room_id="145267896505310001", device_ids=["0012243300a1"])


async def test_no_alert_is_sent_twice_across_a_restart_and_a_change_seen_by_the_next_bot_is_sent(
    database_url: str, sandbox_app: Starlette, bot_clock: MovableClock
) -> None:
    async with running_bot(database_url, sandbox_app, clock=bot_clock) as first:
        await _community(first, sandbox_app)
        await _poll(first)
        _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
        await _poll(first)
        assert _recipients(first) == [ALICE]
        _akubela(sandbox_app).advance("repair", REPAIR_WAITING)  # completed, not yet polled

    async with running_bot(database_url, sandbox_app, clock=bot_clock) as second:
        await _poll(second)
        (done,) = _to(second, ALICE)
        assert "completed by the technician" in (done.text or "")
        assert "Feedback: Repaired by the technician" in (done.text or "")
        await _poll(second)
        assert _recipients(second) == [ALICE]


class Killed(BaseException):
    """The process died here (no handler of the bot's catches it, as none survives a kill)."""


async def test_an_alert_sent_just_before_a_kill_is_sent_again_only_as_a_marked_repeat(
    database_url: str,
    sandbox_app: Starlette,
    bot_clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed("killed after Telegram took the alert, before it was marked sent")

    async with running_bot(database_url, sandbox_app, clock=bot_clock) as first:
        await _community(first, sandbox_app)
        await _poll(first)
        _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
        with monkeypatch.context() as patched:
            patched.setattr(Alerts, "mark_sent", killed)
            with pytest.raises(Killed):
                await _poll(first)
        (told,) = _to(first, ALICE)
    async with running_bot(database_url, sandbox_app, clock=bot_clock) as second:
        await _poll(second)  # the process taking over finds the alert of unknown outcome
        (again,) = _to(second, ALICE)
        await _poll(second)
        assert len(_to(second, ALICE)) == 1
        rows = await _ledger_rows(second)
        unknown = [
            (sample.labels["kind"], sample.value)
            for metric in second.services.metrics.alerts_maybe_sent.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        ]

    assert told.text is not None
    assert again.text is not None
    assert not told.text.startswith("🔁")
    # Alice reads the same alert once more, headed as what it may be, and no third time.
    marker = "🔁 Possibly a repeat: the bot could not confirm this alert reached you."
    assert again.text == f"{marker}\n{told.text}"
    assert [(row.status, row.maybe_sent) for row in rows] == [(AlertStatus.SENT, False)]
    assert unknown == [(rows[0].kind, 1.0)]  # counted by kind, no one named


async def test_an_outage_gives_no_false_alerts_and_recovery_gives_the_real_ones(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    before = await bot.services.storage.vendor_states.get_many("akubela", "repair")

    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/akubela", status=503))
    faults.add(FaultRule(FaultKind.RATE_LIMIT, path="/tuya", retry_after=30))
    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
    _tuya(sandbox_app).advance("task", TASK_TOM_IN_WORK)
    await _poll(bot)
    assert bot.telegram.sent("sendMessage") == []
    after = await bot.services.storage.vendor_states.get_many("akubela", "repair")
    assert {k: v.state for k, v in after.items()} == {k: v.state for k, v in before.items()}
    bookings = await bot.services.storage.vendor_states.get_many("akubela", "booking")
    assert GONE not in {row.state for row in bookings.values()}

    faults.clear()
    await _poll(bot)
    assert _recipients(bot) == [ALICE, BOSS]


async def test_a_user_who_blocked_the_bot_is_marked_and_skipped(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    bot.telegram.blocked_chats.add(ALICE)
    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
    await _poll(bot)
    user = await bot.services.storage.users.get(ALICE)
    assert user is not None
    assert user.blocked_at is not None
    assert len(_to(bot, ALICE)) == 1  # the one attempt Telegram refused

    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
    await _poll(bot)
    assert len(_to(bot, ALICE)) == 1
    rows = [row for row in await _ledger_rows(bot) if row.recipient == ALICE]
    assert [row.status for row in rows] == [AlertStatus.FAILED, AlertStatus.FAILED]


async def test_a_failed_delivery_is_retried_on_the_next_poll(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
    real = bot.telegram.do_request
    failures = {"left": 1}

    async def flaky(url: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if url.endswith("/sendMessage") and failures["left"]:
            failures["left"] -= 1
            return 500, b'{"ok": false, "error_code": 500, "description": "Internal"}'
        return await real(url, *args, **kwargs)

    monkeypatch.setattr(bot.telegram, "do_request", flaky)
    await _poll(bot)
    (row,) = await _ledger_rows(bot)
    assert (row.status, row.attempts) == (AlertStatus.PENDING, 1)
    await _poll(bot)
    (row,) = await _ledger_rows(bot)
    assert (row.status, row.attempts) == (AlertStatus.SENT, 2)
    assert len(_to(bot, ALICE)) == 1  # the refused attempt never reached the recorder


async def _ledger_rows(bot: BotUnderTest) -> list[SentAlert]:
    from sqlalchemy import select

    async with bot.services.storage.sessions() as session:
        return list(await session.scalars(select(SentAlert).order_by(SentAlert.id)))


async def test_quiet_hours_hold_ordinary_alerts_but_not_urgent_ones(
    bot: BotUnderTest, sandbox_app: Starlette, bot_clock: MovableClock
) -> None:
    await _community(bot, sandbox_app, residents=False)
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    local = bot_clock.now.astimezone(bot.settings.zone)

    def at(delta: timedelta) -> time:
        return (local + delta).time().replace(second=0, microsecond=0)

    users = bot.services.storage.users
    await users.set_quiet_hours(ALICE, at(timedelta(minutes=-30)), at(timedelta(hours=1)))
    await users.set_quiet_hours(BOSS, at(timedelta(minutes=-30)), at(timedelta(hours=5)))
    await _poll(bot)

    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
    _tuya(sandbox_app).advance("task", TASK_TOM_IN_WORK)
    await _poll(bot)
    assert bot.telegram.sent("sendMessage") == []  # both wait

    # Alice's quiet hours are over; the manager's are not, but escalations are urgent.
    bot_clock.advance(hours=4, minutes=1)
    await _poll(bot)
    (held,) = _to(bot, ALICE)
    assert "confirmed and being worked on" in (held.text or "")
    to_boss = [c.text or "" for c in _to(bot, BOSS)]
    assert to_boss
    assert all("over 4 h" in text for text in to_boss)

    bot_clock.advance(hours=1)
    await _poll(bot)
    assert sum("waits for your acceptance" in (c.text or "") for c in _to(bot, BOSS)) == 1


async def test_escalations_repeat_at_most_once_per_threshold(
    bot: BotUnderTest, sandbox_app: Starlette, bot_clock: MovableClock
) -> None:
    await _community(bot, sandbox_app, residents=False)
    await bot.services.storage.task_acknowledgements.acknowledge(TASK_LI_NEW, LI_TG)
    await _poll(bot)

    def late() -> list[str]:
        return sorted((c.text or "")[:20] for c in _to(bot, BOSS) if "over 4 h" in (c.text or ""))

    bot_clock.advance(hours=3)
    await _poll(bot)
    assert late() == []
    bot_clock.advance(hours=1, minutes=1)
    await _poll(bot)
    # Two repairs wait for confirmation; one new task is unacknowledged (Li Wei's was seen).
    first = [c.text or "" for c in _to(bot, BOSS)]
    assert len(first) == 3
    assert sum("Task #" + TASK_TOM_NEW[-6:] in text for text in first) == 1
    assert not any(TASK_LI_NEW[-6:] in text for text in first)
    bot_clock.advance(hours=3)
    await _poll(bot)
    assert len(_to(bot, BOSS)) == 3
    bot_clock.advance(hours=1)
    await _poll(bot)
    assert len(_to(bot, BOSS)) == 6
    assert sum("over 8 h" in (c.text or "") for c in _to(bot, BOSS)) == 3


async def test_a_booking_reminder_goes_out_once_before_it_starts(
    bot: BotUnderTest, sandbox_app: Starlette, bot_clock: MovableClock
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    await _poll(bot)
    assert bot.telegram.sent("sendMessage") == []
    desk = await bot.services.resident_desk(ALICE)
    assert desk is not None
    gym = next(b for b in await desk.bookings() if b.id == BOOKING_ALICE_GYM)
    assert gym.start is not None
    bot_clock.now = gym.start - timedelta(minutes=20)
    await _poll(bot)
    await _poll(bot)
    (reminder,) = _to(bot, ALICE)
    assert "Reminder" in (reminder.text or "")
    assert gym.start.astimezone(bot.settings.zone).strftime("%H:%M") in (reminder.text or "")


# ---- /alerts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00-07:00", (time(22, 0), time(7, 0))),
        (" 7:30 – 9:00 ", (time(7, 30), time(9, 0))),
        ("22.00~06.30", (time(22, 0), time(6, 30))),
        ("22:00至07:00", (time(22, 0), time(7, 0))),
        ("24:00-07:00", None),
        ("22:60-07:00", None),
        ("08:00-08:00", None),
        ("late", None),
        ("", None),
    ],
)
def test_parse_quiet_hours(text: str, expected: tuple[time, time] | None) -> None:
    assert parse_quiet_hours(text) == expected


async def test_a_manager_switches_one_kind_off_and_still_gets_the_others(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    boss = bot.chat(BOSS)
    await boss.send("/alerts")
    assert "Tap an alert" in (bot.telegram.last.text or "")
    assert "Quiet hours: off" in (bot.telegram.last.text or "")
    toggle = bot.telegram.button("New repairs")
    assert toggle == "1:alerts:toggle:repair_new"
    await boss.press(toggle)
    redrawn = bot.telegram.sent("editMessageReplyMarkup")[-1].buttons
    assert redrawn[0][0]["text"].startswith("🔕")
    assert all(row[0]["text"].startswith("✅") for row in redrawn[1:])
    assert bot.app.user_data[BOSS][SWITCHED_OFF_KEY] == ["repair_new"]

    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    start = datetime.now(UTC) + timedelta(days=2)
    await desk.report_repair(
        start=start,
        finish=start + timedelta(hours=2),
        description="Doorbell is silent",
        contact="+86 138 0000 0002",
        command_id="alerts-test-repair-2",
    )
    _tuya(sandbox_app).advance("task", TASK_TOM_IN_WORK)
    bot.telegram.clear()
    await _poll(bot)
    (only,) = _to(bot, BOSS)
    assert "waits for your acceptance" in (only.text or "")

    await boss.press(toggle)
    assert bot.app.user_data[BOSS][SWITCHED_OFF_KEY] == []


async def test_a_kind_switched_off_stays_off_after_a_restart_before_the_manager_writes(
    database_url: str, sandbox_app: Starlette, bot_clock: MovableClock
) -> None:
    async with running_bot(database_url, sandbox_app, clock=bot_clock) as first:
        await _community(first, sandbox_app)
        await _poll(first)
        boss = first.chat(BOSS)
        await boss.send("/alerts")
        await boss.press("1:alerts:toggle:repair_new")

    # The restarted bot holds nobody's data until they write; the manager has not.
    async with running_bot(database_url, sandbox_app, clock=bot_clock) as second:
        await _poll(second)
        desk = await second.services.resident_desk(BOB)
        assert desk is not None
        start = datetime.now(UTC) + timedelta(days=2)
        await desk.report_repair(
            start=start,
            finish=start + timedelta(hours=2),
            description="Doorbell is silent",
            contact="+86 138 0000 0002",
            command_id="alerts-test-restart-repair",
        )
        second.telegram.clear()
        await _poll(second)
        assert not any("Doorbell is silent" in (c.text or "") for c in _to(second, BOSS))
        assert second.app.user_data[BOSS][SWITCHED_OFF_KEY] == ["repair_new"]


async def test_alerts_buttons_are_checked_and_residents_only_get_quiet_hours(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    alice = bot.chat(ALICE)
    await alice.send("/alerts")
    assert "Quiet hours: off" in (bot.telegram.last.text or "")
    assert bot.telegram.last.buttons == []
    await alice.press("1:alerts:toggle:repair_new")
    refusal = bot.telegram.sent("answerCallbackQuery")[-1].params["text"]
    assert refusal == tr("en", "Sorry, that is not available to you.")
    assert SWITCHED_OFF_KEY not in bot.app.user_data.get(ALICE, {})

    await bot.chat(BOSS).press("1:alerts:toggle:not_a_kind")
    notice = bot.telegram.sent("answerCallbackQuery")[-1].params["text"]
    assert "no longer active" in notice
    assert SWITCHED_OFF_KEY not in bot.app.user_data.get(BOSS, {})


async def test_quiet_hours_are_set_and_cleared_with_alerts_quiet(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    users = bot.services.storage.users
    alice = bot.chat(ALICE, language_code="zh")
    await alice.send("/alerts quiet 22:00-07:00")
    user = await users.get(ALICE)
    assert user is not None
    assert (user.quiet_hours_start, user.quiet_hours_end) == (time(22, 0), time(7, 0))
    assert "22:00–07:00" in (bot.telegram.last.text or "")
    assert "免打扰" in (bot.telegram.last.text or "")

    await alice.send("/alerts quiet whenever")
    assert (bot.telegram.last.text or "") == tr("zh", MSG_QUIET_BAD)
    user = await users.get(ALICE)
    assert user is not None
    assert user.quiet_hours_start == time(22, 0)

    await alice.send("/alerts quiet off")
    user = await users.get(ALICE)
    assert user is not None
    assert (user.quiet_hours_start, user.quiet_hours_end) == (None, None)


# ---- what the conversations already said, photos, buttons ------------------------------------


async def test_a_new_repair_reaches_managers_with_the_residents_photos(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    start = datetime.now(UTC) + timedelta(days=2)
    repair_id = await desk.report_repair(
        start=start,
        finish=start + timedelta(hours=3),
        description="Water under the sink",
        contact="+86 138 0000 0002",
        command_id="alerts-test-repair-3",
    )
    assert repair_id
    link = await bot.services.accounts.resident(BOB)
    assert link is not None
    assert link.residence_id is not None
    for file_id in ["photo-sink-1", "photo-sink-2"]:  # photos the resident sent through Telegram
        bot.telegram.photo(file_id)
    await bot.services.repair_reports.add(
        maintenance_id=repair_id,
        telegram_id=BOB,
        residence_id=link.residence_id,
        photo_file_ids=["photo-sink-1", "photo-sink-2"],
        description="Water under the sink",
    )
    await _poll(bot)
    (text,) = _to(bot, BOSS)
    assert "Water under the sink" in (text.text or "")
    (album,) = bot.telegram.sent("sendMediaGroup")
    assert int(album.params["chat_id"]) == BOSS
    assert [m["media"] for m in album.params["media"]] == ["photo-sink-1", "photo-sink-2"]


async def test_workers_are_not_told_twice_of_what_the_bot_itself_announced(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    watcher = watcher_of(bot.app)
    created = await bot.services.tuya.create_task(
        worker_id=LI_WEI, room_device_relations=[_relation()]
    )
    told = await watcher.announce(
        bot.app, OwnWrite("tuya.task.create", BOSS, (created,), {"rooms": "Block A lobby"})
    )
    assert told == 1
    _tuya(sandbox_app).advance("task", TASK_TOM_AWAITING, "reopen")
    await watcher.announce(
        bot.app,
        OwnWrite("tuya.task.reopen", BOSS, (TASK_TOM_AWAITING,), {"reason": "Still leaking"}),
    )
    # Told at once, before any poll.
    (assigned,) = _to(bot, LI_TG)
    assert f"#{created[-6:]}" in (assigned.text or "")
    (reopened,) = _to(bot, TOM_TG)
    assert "Reason: Still leaking" in (reopened.text or "")

    await _poll(bot)
    await _poll(bot)
    assert _recipients(bot) == [TOM_TG, LI_TG]


async def test_the_accept_button_in_an_alert_accepts_for_a_manager_only(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    _tuya(sandbox_app).advance("task", TASK_TOM_IN_WORK)
    await _poll(bot)
    (alert,) = _to(bot, BOSS)
    accept = next(
        b["callback_data"] for row in alert.buttons for b in row if "accept" in b["callback_data"]
    )

    await bot.chat(TOM_TG).press(accept)
    assert (await bot.services.tuya.get_task(TASK_TOM_IN_WORK)).status == "PENDING_ACCEPTANCE"

    await bot.chat(BOSS).press(accept)
    assert (await bot.services.tuya.get_task(TASK_TOM_IN_WORK)).status == "ACCEPTANCE_COMPLETE"
    await _poll(bot)
    assert sum("waits for your acceptance" in (c.text or "") for c in _to(bot, BOSS)) == 1


def test_an_overlong_key_is_hashed_to_fit_and_stays_distinct() -> None:
    short = "repair:m1:closed:0:7"
    assert storable_key(short) == short
    long_a = "task:" + "x" * 300 + ":a"
    long_b = "task:" + "x" * 300 + ":b"
    assert len(storable_key(long_a)) == 255
    assert storable_key(long_a) != storable_key(long_b)
    assert storable_key(long_a) == storable_key(long_a)


async def test_alerts_held_by_quiet_hours_do_not_hide_the_ones_behind_them(
    bot: BotUnderTest, sandbox_app: Starlette, bot_clock: MovableClock
) -> None:
    await _community(bot, sandbox_app)
    local = bot_clock.now.astimezone(bot.settings.zone)
    start = (local - timedelta(minutes=30)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    await bot.services.storage.users.set_quiet_hours(BOSS, start, end)
    watcher = AlertWatcher(bot.services, page_size=2)
    values = {
        "home": "A 1201",
        "description": "Tap drips",
        "short_id": "1",
        "start": "",
        "finish": "",
        "contact": "",
    }
    for n in range(5):
        await watcher.ledger.record(
            Alert(f"held-{n}", AlertKind.REPAIR_NEW, BOSS, MSG_REPAIR_NEW, values), bot_clock.now
        )
    state = {"description": "Tap drips", "state": "closed", "feedback": ""}
    await watcher.ledger.record(
        Alert("for-alice", AlertKind.REPAIR_STATE, ALICE, MSG_REPAIR_STATE, state), bot_clock.now
    )
    await watcher.deliver(bot.app, bot_clock.now)
    assert _recipients(bot) == [ALICE]
    bot_clock.advance(hours=1, minutes=1)
    await watcher.deliver(bot.app, bot_clock.now)
    assert _recipients(bot) == [ALICE] + [BOSS] * 5


async def test_a_poll_that_dies_before_storing_its_snapshot_sends_the_alert_once_later(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _community(bot, sandbox_app)
    await _poll(bot)
    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patch:
        # The repository has slots, so the method is replaced on its class, for this block only.
        patch.setattr(VendorStates, "put_many", dies)
        with pytest.raises(RuntimeError):
            # Straight to the watcher: the job would hand the error to the error handler.
            await AlertWatcher(bot.services).poll(bot.app)
    assert bot.telegram.sent("sendMessage") == []
    (kept,) = await _ledger_rows(bot)
    assert kept.status is AlertStatus.PENDING

    await _poll(bot)  # sees the same change again: the same key, so still one alert
    await _poll(bot)
    assert _recipients(bot) == [ALICE]
    assert [row.status for row in await _ledger_rows(bot)] == [AlertStatus.SENT]


async def test_the_watcher_runs_every_alert_poll_seconds(
    database_url: str, sandbox_app: Starlette
) -> None:
    from apscheduler.triggers.interval import IntervalTrigger

    async with running_bot(database_url, sandbox_app, alert_poll_seconds=42) as running:
        assert running.app.job_queue is not None
        (job,) = running.app.job_queue.get_jobs_by_name("alerts")
        # Wrapped so that in cluster mode one process polls for all (bot/cluster.py).
        assert inspect.unwrap(job.callback) is watch_vendors
        trigger = job.job.trigger
        assert isinstance(trigger, IntervalTrigger)
        assert trigger.interval == timedelta(seconds=42)


async def test_a_quiet_poll_rewrites_nothing_and_a_change_rewrites_only_its_record(
    bot: BotUnderTest, sandbox_app: Starlette, bot_clock: MovableClock
) -> None:
    await _community(bot, sandbox_app, residents=False)
    await _poll(bot)
    first = bot_clock.now
    bot_clock.advance(minutes=1)
    _akubela(sandbox_app).advance("repair", REPAIR_WAITING)
    await _poll(bot)
    rows = await bot.services.storage.vendor_states.get_many("akubela", "repair")
    rewritten = {rid for rid, row in rows.items() if row.seen_at != first}
    assert rewritten == {REPAIR_WAITING}
    assert rows[REPAIR_WAITING].snapshot[SINCE] == bot_clock.now.isoformat()
    assert rows[REPAIR_DAVE].snapshot[SINCE] == first.isoformat()


async def test_times_in_an_alert_are_shown_in_the_recipients_own_zone(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _community(bot, sandbox_app)
    await bot.services.storage.users.set_time_zone(BOB, "Europe/London")
    await _poll(bot)
    _akubela(sandbox_app).advance("booking", BOOKING_BOB_PENDING, "approve")
    await _poll(bot)
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    booking = next(b for b in await desk.bookings() if b.id == BOOKING_BOB_PENDING)
    assert booking.start is not None
    london = booking.start.astimezone(ZoneInfo("Europe/London"))
    (approved,) = _to(bot, BOB)
    assert london.strftime("%Y-%m-%d %H:%M") in (approved.text or "")
