"""Booking an amenity, step by step and in one message, against the Akubela sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from bot.persistence import DatabasePersistence
from bot.settings import Settings
from conversations import callbacks
from conversations.booking import (
    at_arg,
    bookable_day,
    duration_words,
    from_at_arg,
    same_moment,
    typed_start,
)
from conversations.community import AmenityRules
from sandbox.akubela_seed import BBQ, GYM, MEETING_ROOM
from sandbox.app import create_app, default_vendors
from sandbox.core import Clock
from sandbox.faults import FaultKind, FaultRule
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot, vendor_writes

BOB = 801  # one home: Wang Home
ALICE = 802  # two homes; she holds the gym tomorrow 07:00-08:00
BOB_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b603"
BOBS = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02"
ZONE = ZoneInfo("Asia/Shanghai")


@asynccontextmanager
async def started(
    database_url: str,
    sandbox_app: Starlette,
    sessions: async_sessionmaker[AsyncSession],
    **kw: Any,
) -> AsyncIterator[BotUnderTest]:
    """The bot as in production: persistent conversations, a running job queue (time-outs)."""
    kw.setdefault("persistence", DatabasePersistence(sessions))
    async with running_bot(database_url, sandbox_app, **kw) as bot:
        assert bot.app.job_queue is not None
        await bot.app.job_queue.start()
        try:
            yield bot
        finally:
            await bot.app.job_queue.stop(wait=False)


@pytest.fixture
async def bot(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[BotUnderTest]:
    async with started(database_url, sandbox_app, sessions) as running:
        await link_demo_resident(running, sandbox_app, BOB)
        yield running


def _last(bot: BotUnderTest) -> str:
    return bot.telegram.last.text or ""


def _labels(bot: BotUnderTest) -> list[str]:
    return [b["text"] for row in bot.telegram.last_buttons() for b in row]


def _alerts(bot: BotUnderTest) -> list[str]:
    return bot.telegram.notices()


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("book", action, arg)


def _tomorrow() -> date:
    return datetime.now(ZONE).date() + timedelta(days=1)


def _at(day: date, hour: int, minute: int = 0) -> str:
    return _press("at", at_arg(datetime.combine(day, time(hour, minute), tzinfo=ZONE)))


def _bob_bookings(sandbox_app: Starlette) -> list[Any]:
    """The bookings made for Bob's home in the test (the seed gave him one already)."""
    vendor = sandbox_app.state.control.vendors["akubela"]
    return [
        b for b in vendor._bookings.values() if b.residence_id == BOB_HOME and b.booking_id != BOBS
    ]


def _next(weekday: int, after: date) -> date:
    """The first date after `after` that falls on `weekday` (0 = Monday)."""
    return after + timedelta(days=(weekday - after.weekday() - 1) % 7 + 1)


# ---- pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "en", "zh"),
    [(30, "30 min", "30 分钟"), (60, "1 h", "1 小时"), (90, "1 h 30 min", "1 小时 30 分钟")],
)
def test_durations_in_words(minutes: int, en: str, zh: str) -> None:
    assert duration_words(minutes, "en") == en
    assert duration_words(minutes, "zh") == zh


def test_a_start_survives_its_button_as_the_same_instant() -> None:
    # 01:30 happens twice in New York that night; the second one must come back, not the first.
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    back = from_at_arg(at_arg(second))
    assert back is not None
    assert same_moment(back, second)
    assert not same_moment(back, first)
    assert from_at_arg("yesterday") is None


def test_typed_starts() -> None:
    day = date(2026, 5, 12)
    assert typed_start("7pm", day, ZONE) == datetime(2026, 5, 12, 19, 0, tzinfo=ZONE)
    assert typed_start("晚上7点半", day, ZONE) == datetime(2026, 5, 12, 19, 30, tzinfo=ZONE)
    assert typed_start("19:00", day, ZONE) == datetime(2026, 5, 12, 19, 0, tzinfo=ZONE)
    assert typed_start("7", day, ZONE) == "unsure"
    assert typed_start("soon", day, ZONE) is None


def test_bookable_days() -> None:
    today = date(2026, 5, 11)
    assert bookable_day(today, today, AmenityRules())
    assert not bookable_day(today - timedelta(days=1), today, AmenityRules())
    assert not bookable_day(today + timedelta(days=91), today, AmenityRules())
    assert not bookable_day(today + timedelta(days=15), today, AmenityRules(horizon_days=14))


# ---- step by step ----------------------------------------------------------------------------


@pytest.mark.parametrize("reading", ["local", "utc"])
async def test_the_right_starts_whichever_date_akubela_keys_its_time_lists_by(
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    reading: str,
) -> None:
    # Sandbox and bot follow one AKUBELA_TIME_LIST_DATE; the resident sees the same day.
    settings = Settings(_env_file=None, akubela_time_list_date=reading)
    app = create_app(settings, clock=clock, vendors=default_vendors(settings, clock))
    async with started(database_url, app, sessions, akubela_time_list_date=reading) as bot:
        await link_demo_resident(bot, app, BOB)
        chat = bot.chat(BOB)
        await chat.send("/book")
        await chat.press(_press("am", GYM))
        tomorrow = _tomorrow()
        await chat.press(_press("day", tomorrow.isoformat()))
        starts = _labels(bot)
        # 06:00-23:00 local, Alice's 07:00-08:00, the lunch closure 12:00-13:00.
        assert starts[:4] == ["06:00", "06:30", "08:00", "08:30"]
        assert {"07:00", "07:30", "12:00", "12:30", "23:00"}.isdisjoint(starts)
        assert {"11:30", "13:00", "22:30"} <= set(starts)
        await chat.press(_at(tomorrow, 22, 30))
        assert _labels(bot)[:1] == ["30 min"]  # 23:00 closes
        await chat.press(_press("dur", "30"))
        await chat.press(_press("confirm"))
        assert (bot.telegram.last.text or "").startswith("✅ Booked!\nGym\nTomorrow (")
    [made] = _bob_bookings(app)
    assert made.start_time == datetime.combine(tomorrow, time(22, 30), tzinfo=ZONE)


async def test_book_step_by_step_in_english(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book")
    assert "Which amenity would you like to book?" in _last(bot)
    assert "• Gym: Treadmills, weights and a yoga corner." in _last(bot)
    assert _labels(bot)[:2] == ["Gym", "🖼 Picture"]
    await chat.press(_press("am", GYM))
    assert _last(bot).startswith("Gym: which day?")
    labels = _labels(bot)
    assert labels[0].startswith("Today (")
    assert labels[1].startswith("Tomorrow (")
    assert len(labels) == 8  # seven days and Cancel
    tomorrow = _tomorrow()
    await chat.press(_press("day", tomorrow.isoformat()))
    assert _last(bot).startswith("Gym, Tomorrow (")
    rows = bot.telegram.last_buttons()
    assert [b["text"] for b in rows[0]] == ["06:00", "06:30", "08:00", "08:30"]
    starts = [b["text"] for row in rows for b in row]
    assert "07:00" not in starts
    assert "12:00" not in starts
    assert "21:30" in starts
    await chat.press(_at(tomorrow, 11))
    assert _last(bot) == "For how long?"
    assert _labels(bot)[:2] == ["30 min", "1 h"]
    await chat.press(_press("times"))
    await chat.press(_at(tomorrow, 9))
    assert _labels(bot)[:4] == ["30 min", "1 h", "1 h 30 min", "2 h"]
    await chat.press(_press("dur", "60"))
    assert _last(bot).startswith("Please check your booking:\nGym\nTomorrow (")
    assert _last(bot).endswith(", 09:00–10:00 (1 h)")
    assert _bob_bookings(sandbox_app) == []
    await chat.press(_press("confirm"))
    [made] = _bob_bookings(sandbox_app)
    assert made.start_time == datetime.combine(tomorrow, time(9), tzinfo=ZONE)
    assert made.finish_time - made.start_time == timedelta(hours=1)
    photo = bot.telegram.last
    assert photo.method == "sendPhoto"
    assert (photo.text or "").startswith("✅ Booked!\nGym\nTomorrow (")
    assert f"PIN code: {made.pin_code}" in (photo.text or "")
    assert await bot.services.storage.drafts.load(BOB, "book") is None


async def test_in_chinese_in_one_message(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(database_url, sandbox_app, sessions) as bot:
        await link_demo_resident(bot, sandbox_app, BOB)
        chat = bot.chat(BOB, language_code="zh")
        await chat.send("预约健身房 明天晚上7点 1小时")
        assert _last(bot).startswith("请核对您的预约：\n健身房\n明天（")
        assert _last(bot).endswith("19:00–20:00（1 小时）")
        await chat.press(_press("confirm"))
        assert (bot.telegram.last.text or "").startswith("✅ 预约成功！\n健身房")
        assert "PIN 码" in (bot.telegram.last.text or "")
        [made] = _bob_bookings(sandbox_app)
        assert made.start_time == datetime.combine(_tomorrow(), time(19), tzinfo=ZONE)


async def test_chinese_step_by_step(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(database_url, sandbox_app, sessions) as bot:
        await link_demo_resident(bot, sandbox_app, BOB)
        chat = bot.chat(BOB, language_code="zh")
        await chat.send("/book")
        assert "您想预约哪个设施？" in _last(bot)
        await chat.press(_press("am", BBQ))
        await chat.send("下周五")
        assert _last(bot).startswith("烧烤露台，")
        await chat.send("晚上6点")
        assert _last(bot) == "要预约多长时间？"
        await chat.send("一个小时")
        assert _last(bot).startswith("请核对您的预约：\n烧烤露台\n")


async def test_the_menu_button_starts_booking(bot: BotUnderTest) -> None:
    await bot.chat(BOB).press(callbacks.build("menu", "book"))
    assert "Which amenity would you like to book?" in _last(bot)


async def test_an_amenity_picture_on_request(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book")
    await chat.press(_press("pic", GYM))
    photo = bot.telegram.last
    assert photo.method == "sendPhoto"
    assert (photo.text or "").startswith("Gym\nTreadmills")
    await chat.press(bot.telegram.button("Book Gym"))
    assert _last(bot).startswith("Gym: which day?")


# ---- one message -----------------------------------------------------------------------------


async def test_one_message_goes_straight_to_the_summary(bot: BotUnderTest) -> None:
    await bot.chat(BOB).send("/book gym tomorrow 7pm for 1 hour")
    assert _last(bot).startswith("Please check your booking:\nGym\nTomorrow (")
    assert _last(bot).endswith("19:00–20:00 (1 h)")


async def test_a_missing_amenity_is_asked_and_the_rest_kept(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book tomorrow 7pm for 1 hour")
    assert "Which amenity would you like to book?" in _last(bot)
    await chat.press(_press("am", GYM))
    assert _last(bot).endswith("19:00–20:00 (1 h)")


async def test_a_time_without_a_date_waits_for_the_date(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book gym 9am")
    assert _last(bot).startswith("Gym: which day?")
    await chat.press(_press("day", _tomorrow().isoformat()))
    assert _last(bot) == "For how long?"


async def test_an_unclear_time_is_asked_again(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book gym tomorrow at 7 for 1 hour")
    assert _last(bot).startswith("I was not sure which time you meant")
    assert "06:00" in _labels(bot)


async def test_a_taken_time_offers_the_nearest_free_ones(bot: BotUnderTest) -> None:
    await bot.chat(BOB).send("/book gym tomorrow 7am for 1 hour")
    assert _last(bot).startswith("07:00 is taken. The nearest free times:")
    assert [b["text"] for b in bot.telegram.last_buttons()[0]] == [
        "06:00",
        "06:30",
        "08:00",
        "08:30",
    ]
    assert "🕒 All free times" in _labels(bot)


async def test_a_duration_that_does_not_fit_is_asked_again(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book gym tomorrow 11am for 2 hours")
    assert _last(bot) == "2 h does not fit at that time.\nFor how long?"
    assert _labels(bot)[:2] == ["30 min", "1 h"]
    await chat.send("3 hours")
    assert _last(bot) == "3 h does not fit at that time.\nFor how long?"
    await chat.send("half an hour")
    assert _last(bot).endswith("11:00–11:30 (30 min)")


async def test_plain_text_starting_with_yuyue_starts_a_booking(bot: BotUnderTest) -> None:
    await bot.chat(BOB).send("预约 gym tomorrow 8am 30 minutes")
    assert _last(bot).endswith("08:00–08:30 (30 min)")


# ---- validation ------------------------------------------------------------------------------


async def test_bad_input_at_every_step_keeps_the_step(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book")
    await chat.send_sticker()
    assert _last(bot) == "Please use the buttons above, or send /cancel to stop."
    await chat.send("sauna")
    assert _last(bot).startswith("I did not recognise an amenity in that; please tap one.")
    await chat.send("the gym")
    assert _last(bot).startswith("Gym: which day?")
    await chat.send("someday")
    assert _last(bot).startswith("I could not read a date from that")
    past = (datetime.now(ZONE).date() - timedelta(days=3)).isoformat()
    await chat.send(past)
    assert _last(bot) == "That date has already passed. Please choose today or a later date."
    far = (datetime.now(ZONE).date() + timedelta(days=200)).isoformat()
    await chat.send(far)
    assert _last(bot) == "Please choose a date within the next 90 days."
    await chat.send("tomorrow")
    await chat.send("7")
    assert _last(bot) == 'Please add am or pm (e.g. "7pm"), or tap a time.'
    await chat.send("whenever")
    assert _last(bot) == 'I could not read a time from that; try e.g. "7pm" or "19:30".'
    await chat.send("11pm")
    assert _last(bot).startswith(
        "Gym is closed at 23:00 (open 06:00–23:00). The nearest free times:"
    )
    await chat.send("9am")
    await chat.send("a while")
    assert _last(bot) == 'Please tap a duration, or write one such as "1 hour" or "90 min".'
    await chat.send_sticker()
    assert _last(bot) == "Please use the buttons above, or send /cancel to stop."
    await chat.send("90 min")
    assert _last(bot).endswith("09:00–10:30 (1 h 30 min)")
    await chat.send("ok")
    assert _last(bot) == "Please use the buttons above, or send /cancel to stop."


async def test_a_full_day_offers_the_next_days_with_free_time(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    sunday = _next(6, datetime.now(ZONE).date())
    await chat.send(f"/book meeting room {sunday.isoformat()}")
    assert _last(bot).startswith("Meeting room has no free time on ")
    labels = _labels(bot)
    assert len(labels) == 4  # Monday, Tuesday, Wednesday and Cancel
    assert all(label.endswith(")") or " " in label for label in labels[:3])
    await chat.press(_press("day", (sunday + timedelta(days=1)).isoformat()))
    assert "09:00" in _labels(bot)


async def test_stale_and_forged_presses(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book")
    await chat.press(_press("am", "a-forged-amenity"))
    assert _alerts(bot)[-1] == "That amenity is not offered to you (any more)."
    await chat.press(_press("confirm"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.press(_press("am", GYM))
    await chat.press(_press("day", "2020-01-01"))
    assert _alerts(bot)[-1] == "That day can no longer be booked; please pick another."
    await chat.press(_press("day", "not-a-date"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.press(_press("day", _tomorrow().isoformat()))
    await chat.press(_press("at", "garbage"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.press(_press("dur", "60"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.press(_press("cancel"))
    assert _last(bot) == "Cancelled. Nothing was sent."
    await chat.press(_press("confirm"))
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."
    assert _bob_bookings(sandbox_app) == []


async def test_cancel_forgets_the_draft(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book gym tomorrow 7pm for 1 hour")
    await chat.send("/cancel")
    assert _last(bot) == "Cancelled. Nothing was sent."
    assert await bot.services.storage.drafts.load(BOB, "book") is None
    await chat.send("/book")
    assert _last(bot).startswith("Which amenity would you like to book?")


async def test_silence_keeps_the_draft_for_book(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, sessions, conversation_timeout_minutes=0.002
    ) as bot:
        await link_demo_resident(bot, sandbox_app, BOB)
        chat = bot.chat(BOB)
        await chat.send("/book gym tomorrow 7pm")
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "I stopped waiting" in _last(bot):
                break
        assert "send /book to pick up where you left off" in _last(bot)
        await chat.send("/book")
        assert _last(bot) == "Picking up your unfinished booking.\nFor how long?"


# ---- Akubela answering badly -----------------------------------------------------------------


async def test_taken_meanwhile_is_explained_and_the_nearest_starts_offered(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book gym tomorrow 3pm for 1 hour")
    assert _last(bot).startswith("Please check your booking:")
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    neighbour = await bot.services.resident_desk(ALICE)
    assert neighbour is not None
    start = datetime.combine(_tomorrow(), time(15), tzinfo=ZONE)
    await neighbour.book(amenity_id=GYM, start=start, duration_minutes=60, command_id="n" * 32)
    await chat.press(_press("confirm"))
    assert _last(bot).startswith(
        "Akubela refused that: that time is already booked or closed\nGym, Tomorrow ("
    )
    # Gym closes 12:00-13:00; a tie in distance goes to the earlier time.
    assert [b["text"] for b in bot.telegram.last_buttons()[0]] == [
        "13:30",
        "14:00",
        "14:30",
        "16:00",
    ]
    await chat.press(_at(_tomorrow(), 16))
    await chat.press(_press("dur", "60"))
    await chat.press(_press("confirm"))
    assert (bot.telegram.last.text or "").startswith("✅ Booked!")
    assert len(_bob_bookings(sandbox_app)) == 1


async def test_a_meeting_room_booking_waits_for_approval(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    monday = _next(0, datetime.now(ZONE).date())
    await bot.chat(BOB).send(f"/book meeting room {monday.isoformat()} 14:00 for 1 hour")
    await bot.chat(BOB).press(_press("confirm"))
    last = bot.telegram.last
    # The summary that was confirmed becomes the answer (no QR yet, so no photo).
    assert last.method == "editMessageText"
    assert (last.text or "").startswith("📨 Booking requested.\nMeeting room")
    assert "you will hear back here" in (last.text or "")
    [made] = _bob_bookings(sandbox_app)
    assert made.amenity_id == MEETING_ROOM
    assert made.state == "pending"


async def test_akubela_down_at_confirm_keeps_the_request(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    chat = bot.chat(BOB)
    await chat.send("/book gym tomorrow 7pm for 1 hour")
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.ERROR, path="/akubela/api", status=503)
    )
    await chat.press(_press("confirm"))
    assert "Your booking request is kept" in _last(bot)
    [item] = await vendor_writes(bot)
    assert item.kind == "akubela.booking.create"
    start = datetime.combine(_tomorrow(), time(19), tzinfo=ZONE)
    assert {k: v for k, v in item.write.items() if k != "start"} == {
        "kind": "akubela.booking.create",
        "residence_id": BOB_HOME,
        "amenity_id": GYM,
        "duration_minutes": 60,
    }
    assert datetime.fromisoformat(item.write["start"]).astimezone(UTC) == start
    assert _bob_bookings(sandbox_app) == []
    assert await bot.services.storage.drafts.load(BOB, "book") is None


async def test_akubela_busy_while_reading_offers_a_retry(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    faults = sandbox_app.state.control.faults
    # A pause longer than the client will wait: it gives up at once instead of retrying.
    faults.add(FaultRule(FaultKind.RATE_LIMIT, path="/akubela/api", retry_after=120))
    chat = bot.chat(BOB)
    await chat.send("/book")
    assert _last(bot) == "Akubela is busy right now. Please try again in a minute."
    faults.clear()
    await chat.press(bot.telegram.button("Retry"))
    assert "Which amenity would you like to book?" in _last(bot)


async def test_a_restart_in_the_middle_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tomorrow = _tomorrow()
    async with started(database_url, sandbox_app, sessions) as first:
        await link_demo_resident(first, sandbox_app, BOB)
        chat = first.chat(BOB)
        await chat.send("/book")
        await chat.press(_press("am", GYM))
        await chat.press(_press("day", tomorrow.isoformat()))
        await first.app.update_persistence()
    async with started(database_url, sandbox_app, sessions, telegram=first.telegram) as second:
        chat = second.chat(BOB)
        await chat.press(_at(tomorrow, 10))
        await chat.press(_press("dur", "30"))
        assert _last(second).endswith("10:00–10:30 (30 min)")
        await chat.press(_press("confirm"))
        assert (second.telegram.last.text or "").startswith("✅ Booked!")
    [made] = _bob_bookings(sandbox_app)
    assert made.start_time == datetime.combine(tomorrow, time(10), tzinfo=ZONE)
