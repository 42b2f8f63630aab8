"""Writes that know their own outcome: kept while the vendor is down, looked for before they
are sent again, reported once however their end became known."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from asyncio import Task
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from telegram.request import RequestData

from api.errors import Unavailable
from bot.jobs import deliver_outbox, recover_writes, report_outcome
from bot.services import UserTargets
from bot.storage.models import WriteRecord, WriteStatus
from bot.storage.writes import WriteRecords
from bot.writes import MAX_ATTEMPTS, WriteJournalService, owner_gone, process_owner
from conversations import callbacks
from conversations.common import new_command_id
from conversations.writes import (
    BookingCancel,
    Found,
    Outcome,
    RepairCreate,
    Result,
    Targets,
    VendorWrite,
    dump_write,
)
from sandbox.faults import FaultKind, FaultRule, FaultWhen
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot
from tests.support_telegram import Chat, FakeTelegram

USER = 4242
ALICE_GYM = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01"


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock_() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def bot(
    database_url: str, sandbox_app: Starlette, clock_: MovableClock
) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app, clock=clock_) as running:
        yield running


def _repair(residence_id: str, description: str, **changes: object) -> RepairCreate:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    fields: dict[str, object] = {
        "residence_id": residence_id,
        "start": start,
        "finish": start + timedelta(hours=3),
        "description": description,
        "contact": "+86 138 0000 0000",
    }
    return RepairCreate.model_validate(fields | changes)


async def keep(
    bot: BotUnderTest,
    write: VendorWrite,
    *,
    maybe_sent: bool,
    command_id: str | None = None,
    user: int = USER,
) -> str:
    """Records a write as one a vendor did not take (its answer lost, when `maybe_sent`)."""
    command_id = command_id or new_command_id()
    now = bot.services.clock()
    writes = bot.services.storage.writes
    begun = await writes.begin(
        command_id=command_id,
        telegram_id=user,
        vendor=write.vendor,
        kind=dump_write(write)["kind"],
        subject=write.subject(),
        write=dump_write(write),
        owner="test",
        now=now,
        lease_until=now,
    )
    await writes.release(
        begun.row.id, "test", maybe_sent=maybe_sent, error="Unavailable", next_attempt_at=now
    )
    return command_id


async def _run_job(bot: BotUnderTest) -> None:
    assert bot.app.job_queue is not None
    [job] = bot.app.job_queue.get_jobs_by_name("outbox")
    await job.run(bot.app)


async def _row(bot: BotUnderTest, command_id: str) -> WriteRecord:
    row = await bot.services.storage.writes.get(command_id)
    assert row is not None
    return row


async def _repairs_described(bot: BotUnderTest, description: str) -> int:
    desk = await bot.services.resident_desk(USER)
    assert desk is not None
    return sum(1 for r in await desk.repairs() if r.description == description)


def _told(bot: BotUnderTest) -> list[str]:
    return [c.text or "" for c in bot.telegram.sent("sendMessage")]


async def test_a_write_waits_out_an_outage_and_goes_through_once(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    description = "Kitchen tap drips all night, outage test"
    command_id = await keep(
        bot, _repair(person["residence_ids"][0], description), maybe_sent=False
    )
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api", status=503))
    await _run_job(bot)
    row = await _row(bot, command_id)
    assert (row.status, row.last_error, row.maybe_sent) == (
        WriteStatus.PENDING,
        "Unavailable",
        True,  # a 503 may come after the vendor acted
    )
    assert _told(bot) == []

    faults.clear()
    await _run_job(bot)  # not due yet: the backoff holds it
    assert (await _row(bot, command_id)).status is WriteStatus.PENDING
    clock_.advance(minutes=2)
    await _run_job(bot)
    row = await _row(bot, command_id)
    assert row.status is WriteStatus.DONE
    assert await _repairs_described(bot, description) == 1
    [told] = _told(bot)
    assert told == f"✅ Your repair report went through: repair #{(row.record_id or '')[-6:]}."

    clock_.advance(minutes=10)
    await _run_job(bot)
    assert await _repairs_described(bot, description) == 1
    assert len(_told(bot)) == 1


async def test_a_repair_keeps_its_photos_however_its_creation_became_known(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    description = "Window latch broken, photos kept"
    write = _repair(person["residence_ids"][0], description, photo_file_ids=["p-1", "p-2"])
    await keep(bot, write, maybe_sent=False)
    await _run_job(bot)
    desk = await bot.services.resident_desk(USER)
    assert desk is not None
    (repair,) = [r for r in await desk.repairs() if r.description == description]
    report = await bot.services.repair_reports.get(repair.id, residence_id=desk.residence_id)
    assert report is not None
    assert report.photo_file_ids == ["p-1", "p-2"]


async def test_a_record_that_landed_without_an_answer_is_found_not_created_again(
    bot: BotUnderTest,
    sandbox_app: Starlette,
    clock_: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    description = "Hallway light flickers, answer lost"
    write = _repair(person["residence_ids"][0], description)
    command_id = await keep(bot, write, maybe_sent=False)
    faults = sandbox_app.state.control.faults
    # Akubela takes it and the answer is lost; the look right after fails as well.
    faults.add(FaultRule(FaultKind.DROP, path="/akubela/api", times=1, when=FaultWhen.AFTER))
    real_find = RepairCreate.find

    async def look_fails(self: RepairCreate, targets: Targets) -> Found | None:
        raise Unavailable("still down", vendor="akubela")

    monkeypatch.setattr(RepairCreate, "find", look_fails)
    await _run_job(bot)
    monkeypatch.setattr(RepairCreate, "find", real_find)
    row = await _row(bot, command_id)
    assert (row.status, row.maybe_sent) == (WriteStatus.PENDING, True)
    assert await _repairs_described(bot, description) == 1
    clock_.advance(minutes=2)
    await _run_job(bot)
    row = await _row(bot, command_id)
    assert row.status is WriteStatus.DONE
    assert await _repairs_described(bot, description) == 1
    [told] = _told(bot)
    assert told.endswith(f"repair #{(row.record_id or '')[-6:]}.")
    [entry] = await bot.services.storage.audit.recent()
    assert (entry.action, entry.result) == ("repair.create", "found after a lost answer")


async def test_a_cancel_whose_answer_was_lost_is_reported_as_done(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER, homes=2)
    residence = person["residence_ids"][0]
    command_id = await keep(
        bot, BookingCancel(residence_id=residence, booking_id=ALICE_GYM), maybe_sent=True
    )
    # It went through: only the answer was lost.
    akubela = sandbox_app.state.control.vendors["akubela"]
    akubela._cancel(akubela._bookings[ALICE_GYM])
    await _run_job(bot)
    assert (await _row(bot, command_id)).status is WriteStatus.DONE
    assert _told(bot) == ["Done: the booking is cancelled."]


async def test_after_the_retry_budget_an_unanswered_write_is_told_as_unknown(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    await bot.services.storage.users.set_language(USER, "zh")
    command_id = await keep(
        bot, _repair(person["residence_ids"][0], "Balcony door will not lock"), maybe_sent=False
    )
    sandbox_app.state.control.faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api"))
    for _ in range(MAX_ATTEMPTS):
        await _run_job(bot)
        clock_.advance(hours=1)
    # It was sent once and a 500 came back: it may have been created, so it is not denied.
    assert (await _row(bot, command_id)).status is WriteStatus.UNKNOWN
    [told] = _told(bot)
    assert told.startswith("⚠️ Akubela没有回应")


async def test_after_the_retry_budget_a_write_never_taken_is_told_as_failed(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    command_id = await keep(
        bot, _repair(person["residence_ids"][0], "Balcony door will not lock"), maybe_sent=False
    )
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.RATE_LIMIT, path="/akubela/api", retry_after=1)
    )
    for _ in range(MAX_ATTEMPTS):
        await _run_job(bot)
        clock_.advance(hours=1)
    assert (await _row(bot, command_id)).status is WriteStatus.FAILED
    assert _told(bot) == [
        "⚠️ Akubela did not take your request (no answer after several tries). Nothing was done."
    ]


async def test_an_unlinked_user_gets_a_clear_failure(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    command_id = await keep(
        bot,
        BookingCancel(residence_id=person["residence_ids"][0], booking_id="b-1"),
        maybe_sent=False,
    )
    await bot.services.accounts.unlink_resident(USER)
    await _run_job(bot)
    assert (await _row(bot, command_id)).status is WriteStatus.FAILED
    assert "no longer linked" in (bot.telegram.last.text or "")


async def test_every_end_runs_the_outcome_hooks_once(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    residence = person["residence_ids"][0]
    seen: list[tuple[str, Result]] = []

    async def hook(outcome: Outcome) -> None:
        seen.append((outcome.command_id, outcome.result))

    bot.services.writes.on_outcome(hook)
    journal = bot.services.writes
    answered = await journal.submit(USER, _repair(residence, "Answered at once"), command_id="a")
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api", status=503))
    kept = await journal.submit(USER, _repair(residence, "Kept for later"), command_id="k")
    faults.clear()
    again = await journal.submit(USER, _repair(residence, "Answered at once"), command_id="a")
    clock_.advance(minutes=5)
    await _run_job(bot)
    await _run_job(bot)
    assert (answered.result, kept.result) == (Result.DONE, Result.KEPT)
    assert (again.result, again.settled_before) == (Result.DONE, True)
    assert again.record_id == answered.record_id
    assert seen == [("a", Result.DONE), ("k", Result.DONE)]


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


async def test_at_start_a_killed_process_s_write_is_settled_at_once(
    bot: BotUnderTest, sandbox_app: Starlette, dead_pid: int
) -> None:
    person = await link_demo_resident(bot, sandbox_app, USER)
    residence = person["residence_ids"][0]
    write = _repair(residence, "Sent by a process killed mid-call")
    # What a killed process leaves: held under its name, lease still running, maybe sent.
    host = bot.services.writes.owner.rsplit(":", 2)[0]
    now = bot.services.clock()
    writes = bot.services.storage.writes
    begun = await writes.begin(
        command_id="killed",
        telegram_id=USER,
        vendor=write.vendor,
        kind=write.kind,
        subject=None,
        write=dump_write(write),
        owner=f"{host}:{dead_pid}:start",
        now=now,
        lease_until=now + timedelta(minutes=5),
    )
    await writes.sending(begun.row.id, f"{host}:{dead_pid}:start")
    desk = await bot.services.resident_desk(USER)
    assert desk is not None
    made = await desk.report_repair(
        start=write.start,
        finish=write.finish,
        description=write.description,
        contact=write.contact,
        command_id="killed",
    )
    # A live process's write in flight is left to it.
    await keep(bot, _repair(residence, "Still being sent elsewhere"), maybe_sent=True)
    async with bot.services.storage.sessions() as session:
        await session.execute(
            update(WriteRecord)
            .where(WriteRecord.command_id != "killed")
            .values(owner="another-host:1:start", next_attempt_at=now + timedelta(minutes=5))
        )
        await session.commit()

    reported: list[Outcome] = []

    async def report(outcome: Outcome) -> None:
        reported.append(outcome)

    assert await bot.services.writes.recover(report) == 1
    [outcome] = reported
    assert (outcome.command_id, outcome.result, outcome.record_id, outcome.found) == (
        "killed",
        Result.DONE,
        made,
        True,
    )
    assert await _repairs_described(bot, "Sent by a process killed mid-call") == 1
    assert await _repairs_described(bot, "Still being sent elsewhere") == 0


async def test_an_unreadable_write_is_ended_not_guessed_at(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    writes = bot.services.storage.writes
    now = bot.services.clock()
    begun = await writes.begin(
        command_id="future",
        telegram_id=USER,
        vendor="akubela",
        kind="akubela.something.new",
        subject=None,
        write={"kind": "akubela.something.new"},
        owner="test",
        now=now,
        lease_until=now,
    )
    await writes.release(
        begun.row.id, "test", maybe_sent=True, error="Unavailable", next_attempt_at=now
    )
    await _run_job(bot)
    assert (await _row(bot, "future")).status is WriteStatus.FAILED
    assert _told(bot) == []


def test_a_process_is_gone_when_its_pid_is_on_this_host_and_dead(dead_pid: int) -> None:
    me = process_owner()
    host = me.rsplit(":", 2)[0]
    assert owner_gone(f"{host}:{dead_pid}:x", me)
    assert owner_gone(f"{host}:{os.getpid()}:an-earlier-start", me)
    assert not owner_gone(me, me)
    assert not owner_gone(f"{host}:1:init", me)  # alive (pid 1 always is)
    assert not owner_gone(f"another-host:{dead_pid}:x", me)  # elsewhere: its lease decides
    assert not owner_gone("garbled", me)


def test_the_job_callback_is_the_delivery() -> None:
    assert deliver_outbox.__name__ == "deliver_outbox"


# ---- a write that ended in a conversation counts as told once its update was processed ------


class _Killed(Exception):
    """The process died here."""


class _DiesBeforeCountingTold(WriteRecords):
    """The journal's table, in a process that dies in the step that would count the writes an
    update's handler told as told (the update was handled; the process never got further)."""

    async def reported(self, row_ids: Sequence[int], *, now: datetime) -> None:
        raise _Killed


def _repair_presses() -> list[str]:
    return [callbacks.build("repair", a, arg) for a, arg in (("skip", ""), ("when", "1m"))]


async def _to_repair_summary(chat: Chat, description: str) -> None:
    await chat.send("/repair")
    await chat.send(description)
    for data in _repair_presses():
        await chat.press(data)
    await chat.press(callbacks.build("repair", "ok"))
    await chat.send("+86 138 0000 0000")


async def test_a_repair_created_just_before_a_kill_is_told_at_the_next_start(
    database_url: str, sandbox_app: Starlette
) -> None:
    description = "水槽下面一直漏水，单进程测试"
    async with running_bot(database_url, sandbox_app) as first:
        # A resident who chose Chinese (as /start stores it from their Telegram).
        await first.services.storage.users.get_or_create(USER, language="zh")
        await link_demo_resident(first, sandbox_app, USER)
        chat = first.chat(USER, language_code="zh")
        await _to_repair_summary(chat, description)
        storage = first.services.storage
        storage.writes = _DiesBeforeCountingTold(storage.sessions)
        with pytest.raises(_Killed):
            await chat.press(callbacks.build("repair", "confirm"))
        assert await _repairs_described(first, description) == 1
        telegram = first.telegram
    told_before = len(_told_in(telegram))

    # The next start tells the resident, in their language, what the dead process may not have.
    async with running_bot(database_url, sandbox_app, telegram=telegram) as second:
        await recover_writes(second.app)  # what the start does before taking updates
        [told] = _told_in(second.telegram)[told_before:]
        assert told.startswith("✅ 您的报修已提交成功：报修单 #")
        await _run_job(second)
        assert len(_told_in(second.telegram)) == told_before + 1
    async with running_bot(database_url, sandbox_app, telegram=telegram) as third:
        assert len(_told_in(third.telegram)) == told_before + 1


async def test_a_write_its_conversation_told_is_never_told_again(
    bot: BotUnderTest, sandbox_app: Starlette, clock_: MovableClock
) -> None:
    description = "Hall light flickers, told by its conversation"
    await link_demo_resident(bot, sandbox_app, USER)
    chat = bot.chat(USER)
    await _to_repair_summary(chat, description)
    await chat.press(callbacks.build("repair", "confirm"))
    told = _told(bot)
    assert "created" in told[-1]
    clock_.advance(hours=1)  # long past the time the conversation had to tell it
    await _run_job(bot)
    assert _told(bot) == told
    [row] = [r for r in await bot.services.storage.writes.all() if r.telegram_id == USER]
    assert row.reported_at is not None


def _told_in(telegram: FakeTelegram) -> list[str]:
    return [c.text or "" for c in telegram.sent("sendMessage") if c.params.get("chat_id") == USER]


# ---- a handler that runs on past the write lease ----------------------------------------------

# Short, so that the handler below outlives it several times within seconds.
SHORT_LEASE = timedelta(seconds=1.5)
CREATED = "created — waiting for confirmation"


class _HoldsTheReport(FakeTelegram):
    """Telegram that holds the handler's "Repair created" message until the test lets it go
    (as a send waiting its turn under Telegram's limits does), or refuses it (`refuse`)."""

    def __init__(self, *, refuse: bool = False) -> None:
        super().__init__()
        self.reached = asyncio.Event()
        self.go = asyncio.Event()
        self.refuse = refuse

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        text = request_data.parameters.get("text") if request_data is not None else None
        if isinstance(text, str) and CREATED in text and not self.reached.is_set():
            self.reached.set()
            if self.refuse:
                return 400, b'{"ok": false, "error_code": 400, "description": "Bad Request"}'
            await self.go.wait()
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )


def _short_journal(bot: BotUnderTest, owner: str | None = None) -> WriteJournalService:
    services = bot.services
    return WriteJournalService(
        services.storage,
        targets_for=lambda telegram_id: UserTargets(services, telegram_id),
        clock=services.clock,
        lease=SHORT_LEASE,
        owner=owner,
    )


async def _confirm_held(bot: BotUnderTest, sandbox_app: Starlette, description: str) -> Task[str]:
    """A resident confirms a repair; returns the press, once its handler sends its report."""
    telegram = bot.telegram
    assert isinstance(telegram, _HoldsTheReport)
    await link_demo_resident(bot, sandbox_app, USER)
    chat = bot.chat(USER)
    await _to_repair_summary(chat, description)
    confirming = asyncio.create_task(chat.press(callbacks.build("repair", "confirm")))
    await asyncio.wait_for(telegram.reached.wait(), 30)
    return confirming


async def _other_process_looks_past(
    bot: BotUnderTest, other: WriteJournalService, row: WriteRecord
) -> None:
    """Another process's journal looks for untold writes, again and again, until a lease
    after the hold `row` had ran out."""

    async def report(outcome: Outcome) -> None:
        await report_outcome(bot.app, bot.services, outcome)

    until = row.next_attempt_at + SHORT_LEASE
    while bot.services.clock() <= until:
        await asyncio.sleep(SHORT_LEASE.total_seconds() / 4)
        await other.tell_unreported(report)


async def test_a_handler_that_outlives_the_write_lease_tells_its_write_once(
    database_url: str, sandbox_app: Starlette
) -> None:
    description = "The boiler knocks, and the handler takes its time"
    telegram = _HoldsTheReport()
    async with running_bot(database_url, sandbox_app, telegram=telegram) as bot:
        bot.services.writes = _short_journal(bot)
        other = _short_journal(bot, owner="another-host:1:other")
        confirming = await _confirm_held(bot, sandbox_app, description)
        # The repair was created and the handler is sending its report: held there past the
        # lease, while the other process's journal looks for untold writes.
        [row] = [r for r in await bot.services.storage.writes.all() if r.telegram_id == USER]
        assert row.status is WriteStatus.DONE
        await _other_process_looks_past(bot, other, row)
        assert not [t for t in _told(bot) if "went through" in t]

        telegram.go.set()
        await confirming
        assert len([t for t in _told(bot) if CREATED in t]) == 1
        row = await _row(bot, row.command_id)
        assert row.reported_at is not None
        await _other_process_looks_past(bot, other, row)
        await _run_job(bot)
        told = _told(bot)
        assert len([t for t in told if CREATED in t or "went through" in t]) == 1


async def test_a_handler_that_fails_after_its_write_leaves_it_to_the_journal(
    database_url: str, sandbox_app: Starlette
) -> None:
    description = "The balcony door will not lock, and the reply fails"
    telegram = _HoldsTheReport(refuse=True)
    async with running_bot(database_url, sandbox_app, telegram=telegram) as bot:
        bot.services.writes = _short_journal(bot)
        other = _short_journal(bot, owner="another-host:1:other")
        confirming = await _confirm_held(bot, sandbox_app, description)
        await confirming  # the handler failed: the user heard it was ours, not of the repair
        assert not [t for t in _told(bot) if CREATED in t]
        [row] = [r for r in await bot.services.storage.writes.all() if r.telegram_id == USER]
        assert row.status is WriteStatus.DONE
        assert row.reported_at is None

        await _other_process_looks_past(bot, other, row)
        [told] = [t for t in _told(bot) if "went through" in t]
        assert told.endswith(f"repair #{(row.record_id or '')[-6:]}.")
        assert (await _row(bot, row.command_id)).reported_at is not None
        await _other_process_looks_past(bot, other, row)
        assert len([t for t in _told(bot) if "went through" in t]) == 1


async def test_writes_live_handlers_still_hold_keep_no_dead_process_s_write_untold(
    bot: BotUnderTest, dead_pid: int
) -> None:
    me = bot.services.writes.owner
    host = me.rsplit(":", 2)[0]
    now = bot.services.clock()
    writes = bot.services.storage.writes
    write = dump_write(_repair("r-1", "Told by a handler still running, or by nobody"))

    async def ended(command_id: str, reporter: str, report_by: datetime) -> None:
        begun = await writes.begin(
            command_id=command_id,
            telegram_id=USER,
            vendor="akubela",
            kind=write["kind"],
            subject=None,
            write=write,
            owner=reporter,
            now=now,
            lease_until=now + timedelta(minutes=1),
        )
        await writes.settle(
            begun.row.id, WriteStatus.DONE, now=now, reporter=reporter, report_by=report_by
        )

    # Handlers of a live process on another machine, still telling theirs, come first...
    for number in range(3):
        await ended(f"live-{number}", "another-host:1:alive", now + timedelta(minutes=1))
    # ... and a write whose handler's process died here, its hold not yet run out.
    await ended("dead", f"{host}:{dead_pid}:start", now + timedelta(minutes=2))

    taken = await writes.claim_unreported(
        now=now,
        owner=me,
        lease_until=now + timedelta(minutes=1),
        gone=lambda owner: owner_gone(owner, me),
        limit=2,
    )
    assert [row.command_id for row in taken] == ["dead"]
    live = [row for row in await writes.all() if row.command_id.startswith("live-")]
    assert {row.owner for row in live} == {"another-host:1:alive"}
