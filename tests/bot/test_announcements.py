"""Alerts that never miss and arrive at once: the bot's own writes are news the moment they go
through, the watcher looks before the first update, and missed transitions still end in one
alert each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from api.errors import Unavailable
from conversations.domain import RedeemOutcome, Role
from sandbox.akubela_seed import MEETING_ROOM
from sandbox.tuya import TOM
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot
from tests.support_telegram import Call

BOB, TOM_TG, BOSS = 7102, 7103, 7105
ZONE = ZoneInfo("Asia/Shanghai")
TASK_TOM_NEW = "1112382396505300007"
TASK_TOM_AWAITING = "1112382396505300003"


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


async def _community(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    """Bob (one home) linked, Tom as a worker, one manager: all before the bot starts."""
    await link_demo_resident(bot, sandbox_app, BOB, homes=1)
    await _join(bot, TOM_TG, Role.WORKER, worker_id=TOM)
    await _join(bot, BOSS, Role.MANAGER, project_id=bot.settings.akubela_project_id)


async def _start(bot: BotUnderTest) -> None:
    """What `concierge run` does between building the bot and taking its first update."""
    assert bot.app.post_init is not None
    await bot.app.post_init(bot.app)


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app) as running:
        await _community(running, sandbox_app)
        await _start(running)
        yield running


async def _poll(bot: BotUnderTest) -> None:
    assert bot.app.job_queue is not None
    (job,) = bot.app.job_queue.get_jobs_by_name("alerts")
    await job.run(bot.app)


def _to(bot: BotUnderTest, telegram_id: int, *, containing: str = "") -> list[str]:
    calls: list[Call] = bot.telegram.sent("sendMessage")
    return [
        c.text or ""
        for c in calls
        if int(c.params["chat_id"]) == telegram_id and containing in (c.text or "")
    ]


def _edits(bot: BotUnderTest, telegram_id: int) -> list[Call]:
    edits = bot.telegram.sent("editMessageReplyMarkup", "editMessageText")
    return [e for e in edits if int(e.params["chat_id"]) == telegram_id]


def _next_monday() -> date:
    today = datetime.now(ZONE).date()
    return today + timedelta(days=(0 - today.weekday() - 1) % 7 + 1)


async def _report_repair(bot: BotUnderTest, description: str) -> None:
    chat = bot.chat(BOB)
    await chat.send("/repair")
    await chat.send(description)
    await chat.press("1:repair:skip")
    await chat.press("1:repair:when:1m")
    await chat.press("1:repair:ok")
    await chat.send("+86 138 0000 0002")
    await chat.press("1:repair:confirm")
    assert _to(bot, BOB)[-1].startswith("✅ Repair #")


async def _book_meeting_room(bot: BotUnderTest) -> str:
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    before = {b.id for b in await desk.bookings()}
    chat = bot.chat(BOB)
    await chat.send(f"/book meeting room {_next_monday().isoformat()} 14:00 for 1 hour")
    await chat.press("1:book:confirm")
    # The confirmed summary becomes the answer, in place.
    shown = [
        c.text or ""
        for c in bot.telegram.sent("sendMessage", "editMessageText")
        if int(c.params["chat_id"]) == BOB
    ]
    assert any(c.startswith("📨 Booking requested.") for c in shown[-2:])
    (booking,) = [b for b in await desk.bookings() if b.id not in before]
    assert booking.amenity_id == MEETING_ROOM
    return booking.id


async def _office(sandbox_app: Starlette, **body: str) -> None:
    """The office acts in the vendor's console, through the sandbox's control API."""
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        answer = await client.post("/_sandbox/advance", json={"vendor": "akubela", **body})
    assert answer.status_code == 200, answer.text


async def test_writes_in_the_first_second_reach_the_manager_at_once_and_the_decision_reaches_the_resident(  # noqa: E501
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await _report_repair(bot, "The bathroom fan rattles all night")
    booking_id = await _book_meeting_room(bot)
    # Before any poll: the manager already knows of both.
    (repair,) = _to(bot, BOSS, containing="New repair")
    assert "The bathroom fan rattles all night" in repair
    assert "+86 138 0000 0002" in repair
    (waiting,) = _to(bot, BOSS, containing="waits for approval")
    assert "Meeting room" in waiting
    assert f"#{booking_id[-6:]}" in waiting

    # The office approves before the next poll ever saw the booking pending.
    await _office(sandbox_app, kind="booking", id=booking_id, decision="approve")
    await _poll(bot)
    await _poll(bot)

    assert len(_to(bot, BOSS)) == 2
    (approved,) = _to(bot, BOB, containing="was approved")
    assert "Meeting room" in approved


async def test_a_record_made_in_the_vendor_is_announced_once_and_one_made_in_the_bot_is_not_twice(
    bot: BotUnderTest,
) -> None:
    await _report_repair(bot, "Made through the bot: the hall light flickers")
    assert len(_to(bot, BOSS, containing="New repair")) == 1
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    start = datetime.now(UTC) + timedelta(days=2)
    await desk.report_repair(
        start=start,
        finish=start + timedelta(hours=2),
        description="Made in the Akubela app: the balcony door sticks",
        contact="+86 138 0000 0002",
        command_id="announcements-app-repair",
    )
    await _poll(bot)
    await _poll(bot)
    news = _to(bot, BOSS, containing="New repair")
    assert len(news) == 2
    assert sum("the hall light flickers" in text for text in news) == 1
    assert sum("the balcony door sticks" in text for text in news) == 1


async def test_a_booking_approved_then_cancelled_between_polls_tells_the_final_state_once(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    booking_id = await _book_meeting_room(bot)
    await _office(sandbox_app, kind="booking", id=booking_id, decision="approve")
    # Cancelled in the Akubela app, not through the bot.
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    await desk.cancel_booking(booking_id, command_id="announcements-app-cancel")
    await _poll(bot)
    await _poll(bot)
    (final,) = _to(bot, BOB, containing="Your booking of")
    assert "was cancelled" in final
    assert not _to(bot, BOB, containing="was approved")
    assert len(_to(bot, BOSS, containing="cancelled their booking")) == 1


async def test_a_booking_decided_before_it_was_first_seen_asks_the_manager_nothing(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    # The rule: "waits for approval" goes out only for a booking seen pending. One booked in
    # the vendor's app and decided before the next poll was never waiting as far as anyone here
    # could tell, and its resident booked it there.
    desk = await bot.services.resident_desk(BOB)
    assert desk is not None
    start = datetime.combine(_next_monday(), time(16), tzinfo=ZONE)
    booking_id = await desk.book(
        amenity_id=MEETING_ROOM, start=start, duration_minutes=60, command_id="app-booking"
    )
    assert booking_id
    await _office(sandbox_app, kind="booking", id=booking_id, decision="approve")
    await _poll(bot)
    assert bot.telegram.sent("sendMessage") == []


async def test_a_restart_announces_nothing_old_and_tells_at_start_what_changed_while_down(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as first:
        await _community(first, sandbox_app)
        await _start(first)
        await _report_repair(first, "Told before the restart: the doorbell is silent")
        booking_id = await _book_meeting_room(first)
        await _poll(first)
        assert len(_to(first, BOSS)) == 2
    await _office(sandbox_app, kind="booking", id=booking_id, decision="reject")

    async with running_bot(database_url, sandbox_app) as second:
        await _start(second)
        # Before the first update and before any poll: only what changed while it was down.
        assert _to(second, BOSS) == []
        (rejected,) = _to(second, BOB)
        assert "was rejected" in rejected
        await _poll(second)
        assert len(second.telegram.sent("sendMessage")) == 1


async def _acknowledge(bot: BotUnderTest) -> None:
    chat = bot.chat(TOM_TG)
    await chat.send("/tasks")
    await chat.press(f"1:tasks:open:{TASK_TOM_NEW}")
    await chat.press(bot.telegram.button("Acknowledge"))
    assert (bot.telegram.last.text or "").startswith("Thanks! The manager knows")


async def test_the_task_boards_notices_wait_out_quiet_hours(bot: BotUnderTest) -> None:
    local = datetime.now(UTC).astimezone(bot.settings.zone)
    start = (local - timedelta(minutes=30)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    await bot.services.storage.users.set_quiet_hours(BOSS, start, end)
    await _acknowledge(bot)
    assert _to(bot, BOSS) == []

    await bot.services.storage.users.set_quiet_hours(BOSS, None, None)
    await _poll(bot)
    (told,) = _to(bot, BOSS)
    assert told == f"👍 Tom acknowledged task #{TASK_TOM_NEW[-6:]} (Block A lobby)."


async def test_a_manager_who_switched_acknowledgements_off_is_not_told(bot: BotUnderTest) -> None:
    await bot.chat(BOSS).send("/alerts")
    await bot.chat(BOSS).press(bot.telegram.button("Tasks acknowledged by workers"))
    await _acknowledge(bot)
    await _poll(bot)
    assert _to(bot, BOSS, containing="acknowledged task") == []


ALICE = 7101
ROOM_A_1201, LOCK_1201 = "145267896505310002", "0012243300b1"


async def test_a_manager_opens_the_new_repair_and_assigns_a_task_from_it_in_two_taps(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    # Alice's first home is Chen Home, Building A 1201: Tuya knows that flat as a room.
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    chat = bot.chat(ALICE)
    await chat.send("/repair")
    await chat.send("The smart door lock beeps and will not open")
    await chat.press("1:repair:skip")
    await chat.press("1:repair:when:1m")
    await chat.press("1:repair:ok")
    await chat.send("+86 138 0000 0001")
    await chat.press("1:repair:confirm")
    [alert] = [
        c
        for c in bot.telegram.sent("sendMessage")
        if int(c.params["chat_id"]) == BOSS and "New repair" in (c.text or "")
    ]
    open_it, assign = (b["callback_data"] for row in alert.buttons for b in row)

    boss = bot.chat(BOSS)
    await boss.press(open_it)
    assert "📝 The smart door lock beeps and will not open" in (bot.telegram.last.text or "")
    await boss.press(assign)
    assert (bot.telegram.last.text or "").startswith("📝 From repair #"), bot.telegram.last.text
    # The alert stays as it was, buttons and all: each view came as a message of its own (the
    # repair's view, put aside for the new task, is the one that loses its buttons).
    [shown_alert] = [m for m in bot.telegram.bot_messages(BOSS) if "New repair" in (m.text or "")]
    assert shown_alert.inline_keyboard
    assert all(e.params["message_id"] != shown_alert.message_id for e in _edits(bot, BOSS))
    await boss.press(f"1:assign:w:{TOM}")
    # The flat is already chosen.
    assert any(b["text"] == "☑ Block A 1201" for row in bot.telegram.last_buttons() for b in row)
    await boss.press("1:assign:rdone")
    await boss.press(f"1:assign:d:{LOCK_1201}")
    await boss.press("1:assign:ddone")
    assert "From repair #" in (bot.telegram.last.text or "")
    await boss.press("1:assign:create")

    (told,) = _to(bot, TOM_TG, containing="New maintenance task")
    assert "🏠 Block A 1201" in told
    assert "📝 The smart door lock beeps and will not open" in told
    assert "📞 +86 138 0000 0001" in told
    assert "🕒 Visit: " in told
    [alert_to_tom] = [
        c for c in bot.telegram.sent("sendMessage") if int(c.params["chat_id"]) == TOM_TG
    ]
    [[open_task]] = alert_to_tom.buttons
    await bot.chat(TOM_TG).press(open_task["callback_data"])
    assert "Block A 1201" in (bot.telegram.last.text or "")
    assert _edits(bot, TOM_TG) == []
    assert "👍 Acknowledge" in [b["text"] for row in bot.telegram.last_buttons() for b in row]


async def test_a_reopen_whose_task_cannot_be_read_back_still_gives_the_worker_the_reason(
    bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = bot.services.task_board
    real_reopen, real_task = board.reopen, board.task
    reopened: list[str] = []

    async def reopen(task_id: str) -> None:
        await real_reopen(task_id)
        reopened.append(task_id)

    async def task(task_id: str) -> Any:
        if reopened:
            raise Unavailable("Tuya is down", vendor="tuya")
        return await real_task(task_id)

    monkeypatch.setattr(board, "reopen", reopen)
    monkeypatch.setattr(board, "task", task)
    boss = bot.chat(BOSS)
    await boss.press(f"1:tasks:reopen:{TASK_TOM_AWAITING}")
    await boss.send("The sensor still reads wet")
    assert reopened == [TASK_TOM_AWAITING]
    assert "Tom is told why" in (bot.telegram.last.text or "")
    (told,) = _to(bot, TOM_TG)
    assert "Reason: The sensor still reads wet" in told
