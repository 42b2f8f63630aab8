"""Alerts: the pure rules (diff, routing, keys, quiet hours) and the watcher on the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.akubela_models import Booking, ManagerMaintenance
from api.tuya_models import TaskSummary
from bot.alert_kinds import (
    GONE,
    SINCE,
    Alert,
    AlertKind,
    Change,
    ChangeKind,
    Directory,
    booking_alerts,
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
from bot.storage.repositories import SeenRecord
from conversations import callbacks

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


def test_a_new_repair_alert_has_one_tap_buttons() -> None:
    (alert, _) = repair_alerts([_change(ChangeKind.NEW, "m1", None, "x", **REPAIR)], DIRECTORY)
    datas = [data for _, data in alert.buttons]
    assert datas == [callbacks.build("menu", "repairs_all"), callbacks.build("menu", "assign")]


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
            [],
            id="cancelled by the resident: nobody",
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
    assert _who(booking_alerts([change], DIRECTORY, ZONE)) == expected


def test_booking_decisions_say_which_and_when_in_the_community_zone() -> None:
    approved = _change(ChangeKind.STATE, "b1", "pending", "success", **BOOKING)
    rejected = _change(ChangeKind.STATE, "b1", "pending", "rejected", **BOOKING)
    (yes,) = booking_alerts([approved], DIRECTORY, ZONE)
    (no,) = booking_alerts([rejected], DIRECTORY, ZONE)
    assert "approved" in yes.message
    assert "rejected" in no.message
    assert yes.values["when"] == "2026-03-02 09:00"
    assert yes.key != no.key


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


# ---- reminders and escalations -------------------------------------------------------------


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
    alerts = booking_reminders([record], DIRECTORY, now=T0, lead=timedelta(minutes=30), zone=ZONE)
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
