"""The watcher's pure rules that decide what a poll stores and what a write announces: no
database, no vendor, no Telegram."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.alert_delivery import reading_zone, render
from bot.alert_kinds import (
    GONE,
    MSG_REPAIR_NEW,
    SINCE,
    Alert,
    AlertKind,
    ChangeKind,
    Observed,
    labelled,
    live,
    observe,
    own_write,
)
from bot.storage.models import TelegramUser
from bot.storage.repositories import SeenRecord
from conversations.community import Community
from conversations.writes import BookingCancelMany, Outcome, Result, TaskCreate

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MARKER = "akubela.repair"


def _seen(record_id: str, state: str, since: datetime | None = None, **snap: Any) -> SeenRecord:
    snapshot = dict(snap)
    if since is not None:
        snapshot[SINCE] = since.isoformat()
    return SeenRecord(record_id, state, snapshot)


def _kinds(observed: Observed) -> list[tuple[ChangeKind, str]]:
    return [(change.kind, change.record_id) for change in observed.changes]


def test_a_source_seen_for_the_first_time_is_the_baseline_not_news() -> None:
    current = [_seen("r1", "wait"), _seen("r2", "done")]
    observed = observe({}, current, MARKER, {}, T0)
    assert observed.changes == []  # nobody hears of what was already there
    assert [r.record_id for r in observed.writes] == ["r1", "r2"]  # but all of it is kept
    assert observed.expected == {"r1": None, "r2": None}  # stored only where nothing was
    assert observed.marker == MARKER


def test_a_record_the_bot_announced_is_compared_even_on_a_first_look() -> None:
    previous = {"r1": _seen("r1", "wait", T0 - timedelta(hours=1))}
    current = [_seen("r1", "done"), _seen("r2", "wait")]
    observed = observe(previous, current, MARKER, {}, T0)
    assert _kinds(observed) == [(ChangeKind.STATE, "r1")]


def test_a_known_source_reports_new_moved_and_gone_records_and_rewrites_only_those() -> None:
    hour_ago = T0 - timedelta(hours=1)
    previous = {
        "same": _seen("same", "wait", hour_ago),
        "moved": _seen("moved", "wait", hour_ago),
        "vanished": _seen("vanished", "wait", hour_ago),
    }
    current = [_seen("same", "wait"), _seen("moved", "done"), _seen("new", "wait")]
    observed = observe(previous, current, MARKER, {MARKER: object()}, T0)

    assert sorted(_kinds(observed)) == [
        (ChangeKind.GONE, "vanished"),
        (ChangeKind.NEW, "new"),
        (ChangeKind.STATE, "moved"),
    ]
    # The quiet record keeps its row; the others are written only where the row still holds
    # the state this poll compared with (a write announced meanwhile is newer and stays).
    assert {r.record_id: r.state for r in observed.writes} == {
        "moved": "done",
        "new": "wait",
        "vanished": GONE,
    }
    assert observed.expected == {"moved": "wait", "new": None, "vanished": "wait"}
    # Every record as it stands, the quiet one still dated from when it entered its state.
    stored = {r.record_id: r for r in observed.stored}
    assert stored["same"].snapshot[SINCE] == hour_ago.isoformat()
    assert stored["moved"].snapshot[SINCE] == T0.isoformat()


def test_records_stored_as_gone_are_not_live() -> None:
    records = [_seen("a", "wait"), _seen("b", GONE), _seen("c", "done")]
    assert [r.record_id for r in live(records)] == ["a", "c"]


def _outcome(write: Any, result: Result = Result.DONE, **kwargs: Any) -> Outcome:
    return Outcome(telegram_id=7, command_id="c-1", write=write, result=result, **kwargs)


def _task() -> TaskCreate:
    return TaskCreate(
        worker_id="w-1",
        rooms={"room-1": ["dev-1"]},
        room_names=["Lobby", "Gym"],
        facts={"worker_username": "tom@demo"},
    )


def test_a_new_task_is_announced_with_its_rooms_and_facts() -> None:
    write = own_write(_outcome(_task(), record_id="t-9"))
    assert write is not None
    assert (write.operation, write.telegram_id, write.record_ids) == (
        "tuya.task.create",
        7,
        ("t-9",),
    )
    assert write.payload["rooms"] == "Lobby, Gym"
    assert write.payload["worker_username"] == "tom@demo"


def test_a_write_without_a_record_id_is_announced_by_the_ids_it_names() -> None:
    cancel = BookingCancelMany(residence_id="home-1", booking_ids=["b1", "b2"])
    write = own_write(_outcome(cancel))
    assert write is not None
    assert write.record_ids == ("b1", "b2")
    assert write.payload["residence_id"] == "home-1"


def test_nothing_is_announced_of_a_write_not_at_the_vendor_or_told_before() -> None:
    assert own_write(_outcome(_task(), Result.REFUSED)) is None
    assert own_write(_outcome(_task(), Result.KEPT)) is None
    assert own_write(_outcome(_task(), record_id="t-9", settled_before=True)) is None
    # A task made but whose id was never learned names nothing to announce.
    assert own_write(_outcome(_task())) is None


def test_alerts_to_someone_of_several_communities_name_the_community() -> None:
    singapore = Community(id=2, name_en="Marina Court", name_zh="滨海苑")
    values = {"short_id": "42", "home": "B2 0301", "description": "Tap", "contact": "—"}
    values |= {"start": "2026-12-04T02:00:00+00:00", "finish": "2026-12-04T03:00:00+00:00"}
    alerts = [
        Alert(f"repair:42:new:{reader}", AlertKind.REPAIR_NEW, reader, MSG_REPAIR_NEW, values)
        for reader in (3001, 3003)
    ]

    # 3001 manages both communities, 3003 only this one.
    both, one = labelled(alerts, singapore, {3001})
    zone = ZoneInfo("Asia/Singapore")

    assert render(both, "en", zone)[0].startswith("🏘 Marina Court\n🆕 New repair #42 from B2 0301")
    assert render(both, "zh", zone)[0].startswith("🏘 滨海苑\n🆕 B2 0301 提交了新报修 #42")
    assert render(one, "en", zone)[0].startswith("🆕 New repair #42")
    # The label is kept with the alert until it is delivered.
    stored = Alert.from_payload(both.key, both.kind, both.recipient, both.payload())
    assert stored == both


def test_an_alert_reads_in_its_communitys_zone_unless_the_reader_chose_one() -> None:
    london = Community(id=3, name_en="Thames Yard", name_zh="泰晤士苑", time_zone="Europe/London")
    values = {"short_id": "42", "home": "B2 0301", "description": "Tap", "contact": "—"}
    values |= {"start": "2026-12-04T10:00:00+00:00", "finish": "2026-12-04T12:00:00+00:00"}
    alert = Alert("repair:42:new:3001", AlertKind.REPAIR_NEW, 3001, MSG_REPAIR_NEW, values)
    alert = replace(alert, moments=("start", "finish"))
    [local] = labelled([alert], london, set())
    stored = Alert.from_payload(local.key, local.kind, local.recipient, local.payload())
    deployment_zone = ZoneInfo("Asia/Shanghai")

    manager = TelegramUser(telegram_id=3001, time_zone=None)
    zone = reading_zone(manager, stored, deployment_zone)
    assert "10:00" in render(stored, "en", zone)[0]  # London's own clock, not Shanghai's 18:00
    traveller = TelegramUser(telegram_id=3001, time_zone="Asia/Tokyo")
    assert "19:00" in render(stored, "en", reading_zone(traveller, stored, deployment_zone))[0]
    # An alert kept from before alerts carried a zone reads in the deployment's first zone.
    assert reading_zone(manager, alert, deployment_zone) == deployment_zone
