"""Repositories and column behaviour, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.storage.db import create_engine, upsert
from bot.storage.models import (
    AlertStatus,
    Draft,
    TelegramUser,
    WorkerLink,
    WriteStatus,
)
from bot.storage.repositories import SeenRecord, Storage, UnknownRecord, UnknownUser
from bot.storage.writes import Begun
from conversations.domain import Role

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def storage(engine: AsyncEngine) -> Storage:
    """Repositories on the test's database (the engine fixture disposes of the engine)."""
    return Storage(engine)


async def test_get_or_create_stores_a_user_once_and_follows_name_changes(
    storage: Storage,
) -> None:
    created = await storage.users.get_or_create(42, language="zh", display_name="Li")
    again = await storage.users.get_or_create(42, language="en", display_name="Li Wei")

    assert created.telegram_id == 42
    assert created.role is Role.RESIDENT
    assert again.language == "zh"  # first contact decides; /language changes it later
    assert again.display_name == "Li Wei"
    assert (await storage.users.get(42)) is not None
    assert await storage.users.get(43) is None


async def test_first_contact_and_a_new_name_take_one_statement(
    storage: Storage, engine: AsyncEngine
) -> None:
    sent: list[str] = []

    def note(_c: object, _cu: object, statement: str, *_rest: object) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        created = await storage.users.get_or_create(42, language="zh", display_name="Li")
        assert len(sent) == 1
        renamed = await storage.users.get_or_create(42, language="en", display_name="Li Wei")
        assert len(sent) == 2
        same = await storage.users.get_or_create(42, language="en", display_name="Li Wei")
        unnamed = await storage.users.get_or_create(42, language="en")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)

    assert (created.language, created.display_name) == ("zh", "Li")
    assert (renamed.language, renamed.display_name) == ("zh", "Li Wei")
    assert renamed.updated_at >= created.updated_at
    # Nothing changed: the row is read, as it was, and not written again.
    assert (same.display_name, same.updated_at) == ("Li Wei", renamed.updated_at)
    assert (unnamed.display_name, unnamed.language) == ("Li Wei", "zh")


async def test_user_settings_are_remembered(storage: Storage) -> None:
    await storage.users.get_or_create(7)

    await storage.users.set_language(7, "zh")
    await storage.users.set_time_zone(7, "Europe/Berlin")
    await storage.users.set_role(7, Role.MANAGER)
    await storage.users.set_blocked(7, T0)
    await storage.users.set_quiet_hours(7, time(22, 0), time(7, 30))

    user = await storage.users.get(7)
    assert user is not None
    assert (user.language, user.time_zone, user.role) == ("zh", "Europe/Berlin", Role.MANAGER)
    assert user.blocked_at == T0
    assert (user.quiet_hours_start, user.quiet_hours_end) == (time(22, 0), time(7, 30))
    assert user.updated_at >= user.created_at


async def test_changing_an_unknown_user_says_so(storage: Storage) -> None:
    with pytest.raises(UnknownUser):
        await storage.users.set_language(999, "zh")


async def test_quiet_hours_need_both_ends(storage: Storage) -> None:
    await storage.users.get_or_create(7)
    with pytest.raises(ValueError, match="both"):
        await storage.users.set_quiet_hours(7, time(22, 0), None)


async def test_roles_are_stored_as_their_plain_value(
    storage: Storage, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await storage.users.get_or_create(7)
    await storage.users.set_role(7, Role.WORKER)

    async with sessions() as session:
        raw = await session.scalar(text("SELECT role FROM telegram_users WHERE telegram_id = 7"))
    assert raw == "worker"


async def test_times_come_back_aware_in_utc(
    storage: Storage, sessions: async_sessionmaker[AsyncSession]
) -> None:
    shanghai = timezone(timedelta(hours=8))
    await storage.users.get_or_create(7)
    await storage.users.set_blocked(7, datetime(2026, 11, 23, 16, 0, tzinfo=shanghai))

    user = await storage.users.get(7)
    assert user is not None
    assert user.blocked_at is not None
    assert user.blocked_at.utcoffset() == timedelta(0)
    assert user.blocked_at == T0
    async with sessions() as session:
        # Comparisons in SQL see the same instant on both databases.
        count = await session.scalar(
            text("SELECT count(*) FROM telegram_users WHERE blocked_at >= :t"),
            {"t": T0.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else T0},
        )
    assert count == 1


async def test_naive_times_are_refused(storage: Storage) -> None:
    await storage.users.get_or_create(7)
    with pytest.raises(StatementError, match="naive"):
        await storage.users.set_blocked(7, datetime(2026, 11, 23, 8, 0))


async def test_foreign_keys_are_enforced(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add(WorkerLink(telegram_id=12345, tuya_worker_id="w-1"))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_deleting_a_user_removes_their_links(
    storage: Storage, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await storage.users.get_or_create(7)
    async with sessions() as session:
        session.add(WorkerLink(telegram_id=7, tuya_worker_id="w-1"))
        await session.commit()
    async with sessions() as session:
        await session.delete(await session.get_one(TelegramUser, 7))
        await session.commit()
    async with sessions() as session:
        assert await session.get(WorkerLink, 7) is None


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
    finally:
        await engine.dispose()


async def test_a_draft_is_saved_overwritten_and_cleared(storage: Storage) -> None:
    assert await storage.drafts.load(7, "repair") is None

    await storage.drafts.save(7, "repair", {"description": "Leaking tap"})
    await storage.drafts.save(7, "repair", {"description": "Leaking tap", "slot": "9-12"})
    await storage.drafts.save(7, "booking", {"amenity": "gym"})

    assert await storage.drafts.load(7, "repair") == {"description": "Leaking tap", "slot": "9-12"}
    await storage.drafts.clear(7, "repair")
    assert await storage.drafts.load(7, "repair") is None
    assert await storage.drafts.load(7, "booking") == {"amenity": "gym"}


async def _begin(storage: Storage, command_id: str, **changes: Any) -> Begun:
    fields: dict[str, Any] = {
        "command_id": command_id,
        "telegram_id": 7,
        "vendor": "akubela",
        "kind": "akubela.booking.cancel",
        "subject": None,
        "write": {"kind": "akubela.booking.cancel", "booking_id": "b-1"},
        "owner": "host:1:a",
        "now": T0,
        "lease_until": T0 + timedelta(minutes=2),
    }
    return await storage.writes.begin(**(fields | changes))


async def test_a_write_is_recorded_once_per_command_and_hands_the_draft_over(
    storage: Storage,
) -> None:
    await storage.drafts.save(7, "book", {"amenity": "gym"})
    first = await _begin(storage, "c-1", draft_job="book")
    assert first.held
    assert (first.row.status, first.row.attempts, first.row.maybe_sent) == (
        WriteStatus.PENDING,
        1,
        False,
    )
    assert await storage.drafts.load(7, "book") is None

    # Another process while the first holds it: left alone.
    busy = await _begin(storage, "c-1", owner="host:2:b", now=T0 + timedelta(minutes=1))
    assert not busy.held
    assert busy.row.id == first.row.id
    # After the lease it may take it up.
    late = await _begin(storage, "c-1", owner="host:2:b", now=T0 + timedelta(minutes=3))
    assert late.held
    assert late.row.attempts == 2
    assert [row.command_id for row in await storage.writes.all()] == ["c-1"]


async def test_two_processes_recording_one_command_at_once_send_it_once(
    engine: AsyncEngine,
) -> None:
    first, second = Storage(engine), Storage(engine)
    for n in range(5):
        command = f"c-race-{n}"
        # Both look before either has recorded it: the loser's insert meets the winner's row.
        one, other = await asyncio.gather(
            _begin(first, command, owner="host:1:a"),
            _begin(second, command, owner="host:2:b"),
        )
        assert sorted([one.held, other.held]) == [False, True]
        assert one.row.id == other.row.id
    assert len(await first.writes.all()) == 5


async def test_one_write_per_record_is_in_flight(storage: Storage) -> None:
    first = await _begin(storage, "c-1", subject="akubela.booking:b-1")
    other = await _begin(storage, "c-2", subject="akubela.booking:b-1")
    assert other.other
    assert other.row.id == first.row.id
    await storage.writes.settle(first.row.id, WriteStatus.DONE, now=T0)
    assert (await _begin(storage, "c-3", subject="akubela.booking:b-1")).held


async def test_claiming_takes_due_writes_once_and_leases_them(storage: Storage) -> None:
    due = await _begin(storage, "c-1")
    await _begin(storage, "c-2", lease_until=T0 + timedelta(hours=1))
    await storage.writes.release(
        due.row.id, "host:1:a", maybe_sent=True, error="Unavailable", next_attempt_at=T0
    )

    claimed = await storage.writes.claim_due(
        now=T0, owner="host:3:c", lease_until=T0 + timedelta(minutes=5)
    )
    assert [(row.command_id, row.attempts, row.maybe_sent) for row in claimed] == [
        ("c-1", 2, True)
    ]
    later = T0 + timedelta(minutes=4)
    assert await storage.writes.claim_due(now=later, owner="x:9:z", lease_until=later) == []
    # A claim that was never finished (the process died) comes due after the lease.
    after = T0 + timedelta(minutes=5)
    reclaimed = await storage.writes.claim_due(now=after, owner="x:9:z", lease_until=after)
    assert [(row.id, row.attempts) for row in reclaimed] == [(due.row.id, 3)]


async def test_a_gone_holder_s_writes_are_taken_over_at_once(storage: Storage) -> None:
    await _begin(storage, "c-1", owner="host:1:gone")
    await _begin(storage, "c-2", owner="host:2:alive")
    taken = await storage.writes.claim_orphans(
        now=T0,
        owner="host:3:me",
        lease_until=T0 + timedelta(minutes=2),
        gone=lambda owner: owner.endswith("gone"),
    )
    assert [(row.command_id, row.owner) for row in taken] == [("c-1", "host:3:me")]


async def test_a_write_ends_once(storage: Storage) -> None:
    begun = await _begin(storage, "c-1")
    assert await storage.writes.settle(begun.row.id, WriteStatus.DONE, now=T0, record_id="r-1")
    assert not await storage.writes.settle(begun.row.id, WriteStatus.FAILED, now=T0)
    row = await storage.writes.get("c-1")
    assert row is not None
    assert (row.status, row.record_id, row.owner) == (WriteStatus.DONE, "r-1", None)
    # Sent again under its command id: it is done, nothing to send.
    again = await _begin(storage, "c-1", now=T0 + timedelta(hours=1))
    assert (again.held, again.row.status) == (False, WriteStatus.DONE)


async def test_a_refused_write_sent_again_is_the_new_version(storage: Storage) -> None:
    begun = await _begin(storage, "c-1")
    await storage.writes.settle(begun.row.id, WriteStatus.FAILED, now=T0, error="Refused")
    again = await _begin(
        storage,
        "c-1",
        write={"kind": "akubela.booking.cancel", "booking_id": "b-2"},
        now=T0 + timedelta(minutes=1),
    )
    assert again.held
    assert (again.row.status, again.row.write["booking_id"]) == (WriteStatus.PENDING, "b-2")


async def test_vendor_states_are_put_and_got_in_bulk(storage: Storage) -> None:
    records = [SeenRecord(f"r-{n}", "pending", {"n": n}) for n in range(1200)]
    await storage.vendor_states.put_many("akubela", "repair", records, T0)
    await storage.vendor_states.put_many(
        "akubela",
        "repair",
        [SeenRecord("r-1", "done", {"n": 1, "closed": True})],
        T0 + timedelta(1),
    )
    await storage.vendor_states.put_many("tuya", "task", [SeenRecord("r-1", "new", {})], T0)

    everything = await storage.vendor_states.get_many("akubela", "repair")
    assert len(everything) == 1200
    some = await storage.vendor_states.get_many("akubela", "repair", ["r-1", "r-2", "nope"])
    assert set(some) == {"r-1", "r-2"}
    assert (some["r-1"].state, some["r-1"].snapshot) == ("done", {"n": 1, "closed": True})
    assert some["r-1"].seen_at == T0 + timedelta(1)
    assert some["r-2"].state == "pending"


async def test_an_alert_is_recorded_once(storage: Storage) -> None:
    assert await storage.alerts.record("repair:r-1:done", recipient=7, kind="repair_state")
    assert not await storage.alerts.record("repair:r-1:done", recipient=7, kind="repair_state")

    await storage.alerts.mark_attempt_failed("repair:r-1:done", "429 retry later", final=False)
    pending = await storage.alerts.get("repair:r-1:done")
    assert pending is not None
    assert (pending.status, pending.attempts) == (AlertStatus.PENDING, 1)

    await storage.alerts.mark_sent("repair:r-1:done", T0)
    sent = await storage.alerts.get("repair:r-1:done")
    assert sent is not None
    assert (sent.status, sent.attempts, sent.sent_at) == (AlertStatus.SENT, 2, T0)
    assert sent.last_error is None
    with pytest.raises(UnknownRecord):
        await storage.alerts.mark_sent("never-recorded", T0)


async def test_an_alert_can_be_given_up(storage: Storage) -> None:
    await storage.alerts.record("k", recipient=7, kind="task")
    await storage.alerts.mark_attempt_failed("k", "user blocked the bot", final=True)

    alert = await storage.alerts.get("k")
    assert alert is not None
    assert (alert.status, alert.last_error) == (AlertStatus.FAILED, "user blocked the bot")


async def test_the_audit_log_keeps_every_write_newest_first(storage: Storage) -> None:
    for minute in range(3):
        await storage.audit.append(
            telegram_id=7,
            vendor="tuya",
            action="reopen_task",
            target=f"task-{minute}",
            request_summary={"reason": "not fixed"},
            result="ok",
            at=T0 + timedelta(minutes=minute),
        )
    await storage.audit.append(
        telegram_id=None,
        vendor="servitly",
        action="record_maintenance",
        target=None,
        request_summary={},
        result="Unavailable",
        at=T0 - timedelta(days=1),
    )

    entries = await storage.audit.recent(limit=3)
    assert [entry.target for entry in entries] == ["task-2", "task-1", "task-0"]
    assert entries[0].request_summary == {"reason": "not fixed"}
    assert entries[0].at == T0 + timedelta(minutes=2)


async def test_a_task_is_acknowledged_once(storage: Storage) -> None:
    await storage.users.get_or_create(7)
    await storage.users.get_or_create(8)

    assert await storage.task_acknowledgements.acknowledge("t-1", 7, T0)
    assert not await storage.task_acknowledgements.acknowledge("t-1", 8, T0 + timedelta(1))

    found = await storage.task_acknowledgements.get_many(["t-1", "t-2"])
    assert list(found) == ["t-1"]
    assert (found["t-1"].worker_telegram_id, found["t-1"].acknowledged_at) == (7, T0)


async def test_storage_opens_and_closes_its_own_engine(database_url: str) -> None:
    storage = Storage.open(database_url)
    try:
        await storage.users.get_or_create(1)
        assert await storage.users.get(1) is not None
    finally:
        await storage.close()


async def test_the_health_check_hears_whether_the_database_answers(
    database_url: str, tmp_path: Path
) -> None:
    storage = Storage.open(database_url)
    gone = Storage.open(f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/concierge.db")
    try:
        assert await storage.reachable()
        assert not await gone.reachable()
    finally:
        await storage.close()
        await gone.close()


def test_upserts_exist_only_for_the_two_supported_databases() -> None:
    with pytest.raises(NotImplementedError, match="mysql"):
        upsert("mysql", Draft, {"telegram_id": 1, "job": "repair", "data": {}}, key=["job"])
