"""Bookings waiting for approval, as a manager lives it, against the Akubela sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.akubela_models import Booking as AkubelaBooking
from api.errors import AuthError, Unavailable
from bot.desks import booking_of
from bot.persistence import DatabasePersistence
from bot.storage.accounts import StoredTokens
from conversations import callbacks
from conversations.domain import Role
from conversations.pending_bookings import (
    Found,
    detail_text,
    gather,
    list_text,
    residences_of,
    unreadable_note,
    waiting,
)
from conversations.ports import BookingDesk
from conversations.records import Booking
from sandbox.faults import FaultKind, FaultRule
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

PROJECT = "p-demo-garden-court"
TUYA_PROJECT = "1233823965050001"
MANAGER, ALICE, BOB, STRANGER, TUYA_MANAGER = 1201, 1202, 1203, 1204, 1205
BOBS = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02"  # the seed's meeting room booking, waiting
MEETING_ROOM = "a7c1e0f2b9d84c3e8f61d2a4b5c6e7f02"
USER_PATH = "/akubela/api/v1.0/invoke/open-ability/method/user-commands"
ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


@asynccontextmanager
async def started(
    database_url: str, sandbox_app: Starlette, **kw: Any
) -> AsyncIterator[BotUnderTest]:
    """The bot with its job queue running, as in production (conversation time-outs need it)."""
    async with running_bot(database_url, sandbox_app, **kw) as bot:
        assert bot.app.job_queue is not None
        await bot.app.job_queue.start()
        try:
            yield bot
        finally:
            await bot.app.job_queue.stop(wait=False)


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with started(database_url, sandbox_app) as running:
        yield running


async def join(
    bot: BotUnderTest, telegram_id: int, project_id: str = PROJECT, *, lang: str = "en"
) -> None:
    """A manager joins the way staff do: an invite and /start <code>."""
    code = await bot.services.invites.create(
        Role.MANAGER,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        project_id=project_id,
        community_ids=[1],
    )
    await bot.chat(telegram_id, language_code=lang).send(f"/start {code}")
    bot.telegram.clear()


async def residents(bot: BotUnderTest, sandbox_app: Starlette) -> str:
    """Bob (his meeting room booking waits) and Alice, who asks for the meeting room too."""
    await link_demo_resident(bot, sandbox_app, BOB)
    await link_demo_resident(bot, sandbox_app, ALICE, homes=2)
    desk = await bot.services.resident_desk(ALICE)
    assert desk is not None
    # Four days on (never a Sunday, when the room is closed), after Bob's.
    day = datetime.now(ZONE).date() + timedelta(days=4)
    while day.weekday() == 6:
        day += timedelta(days=1)
    start = datetime.combine(day, time(15, 0), tzinfo=ZONE)
    booking_id = await desk.book(
        amenity_id=MEETING_ROOM, start=start, duration_minutes=60, command_id="alice-meeting"
    )
    assert booking_id is not None
    return booking_id


def _last(bot: BotUnderTest) -> str:
    return bot.telegram.last.text or ""


def _alerts(bot: BotUnderTest) -> list[str]:
    return bot.telegram.notices()


def _listed(bot: BotUnderTest) -> list[str]:
    return [
        press.arg
        for row in bot.telegram.last_buttons()
        for b in row
        if (press := callbacks.parse(b.get("callback_data"))) and press.action == "open"
    ]


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("bookings_pending", action, arg)


def _vendor(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["akubela"]


# ---- pure rules ------------------------------------------------------------------------------


def _booking(booking_id: str, hours: float, state: str = "pending", **kw: Any) -> Booking:
    start = NOW + timedelta(hours=hours)
    return booking_of(
        AkubelaBooking(
            booking_id=booking_id,
            state=state,
            start_time=start,
            finish_time=start + timedelta(hours=1),
            **kw,
        )
    )


def _found(*bookings: Booking) -> list[Found]:
    return [Found(b, 1, "r1") for b in bookings]


def test_each_residence_is_listed_once_with_its_residents() -> None:
    homes = residences_of([(1, ["r1", "r2"]), (2, ["r1"]), (1, ["r1"])])
    assert homes == {"r1": [1, 2], "r2": [1]}


def test_only_pending_bookings_not_yet_over_wait_soonest_first_each_once() -> None:
    found = _found(
        _booking("late", 30),
        _booking("soon", 2),
        _booking("soon", 2),  # the same booking read through a second resident
        _booking("done", 5, "success"),
        _booking("over", -3),
        _booking("stale", 4, is_expired=True),
        _booking("", 6),
    )
    assert [f.booking.id for f in waiting(found, NOW)] == ["soon", "late"]


class FakeDesk:
    """A booking desk that answers from a list, or fails."""

    residence_id = "r"

    def __init__(self, bookings: Sequence[Booking] = (), error: Exception | None = None) -> None:
        self._bookings = list(bookings)
        self._error = error

    async def bookings(self) -> list[Booking]:
        if self._error is not None:
            raise self._error
        return self._bookings


async def test_gathering_skips_a_resident_whose_login_fails_and_counts_them() -> None:
    desks = {
        (1, "r1"): FakeDesk(error=AuthError("refused", vendor="akubela")),
        (2, "r1"): FakeDesk([_booking("a", 1)]),
        (3, "r2"): FakeDesk(error=AuthError("refused", vendor="akubela")),
        (4, "r3"): FakeDesk([_booking("b", 2)]),
    }

    async def desk_for(telegram_id: int, residence_id: str) -> BookingDesk | None:
        return cast(BookingDesk, desks.get((telegram_id, residence_id)))

    sweep = await gather(
        [(1, ["r1"]), (2, ["r1"]), (3, ["r2"]), (4, ["r3"]), (5, ["r4"])], desk_for
    )
    assert sorted(f.booking.id for f in sweep.found) == ["a", "b"]
    assert sweep.read == 2
    assert sweep.unreadable == 3  # 1 and 3 were refused; 5 has no usable link
    assert not sweep.vendor_down


async def test_gathering_knows_when_akubela_is_down() -> None:
    async def desk_for(telegram_id: int, residence_id: str) -> BookingDesk | None:
        return cast(BookingDesk, FakeDesk(error=Unavailable("down", vendor="akubela")))

    sweep = await gather([(1, ["r1"]), (2, ["r2"])], desk_for)
    assert (sweep.found, sweep.read, sweep.unreadable, sweep.vendor_down) == ([], 0, 2, True)


def test_texts_say_where_approval_happens_in_both_languages() -> None:
    booking = _booking(
        "b1",
        24,
        amenity_name="Meeting room / 会议室",
        family_name="Wang Home",
        building_name="Building A",
        created_time=datetime(2026, 5, 1, 23, 0, tzinfo=UTC),
    )
    detail = detail_text(booking, "en", ZONE, NOW)
    assert detail.startswith("Meeting room — waiting for approval\n")
    for part in ("Wang Home · Building A", "Requested: 2026-05-02 07:00", "Booking id: b1"):
        assert part in detail
    assert detail.endswith("Akubela documents no approve command for the bot.")
    chinese = detail_text(booking, "zh", ZONE, NOW)
    assert chinese.startswith("会议室 — ")
    assert "Akubela 控制台" in chinese
    page = list_text(_found(booking), 0, 1, 2, "en", ZONE, NOW)
    assert page.startswith("⏳ Bookings waiting for approval, soonest first (page 1 of 1):")
    assert "• Meeting room: " in page
    assert "could not be read" in page
    assert list_text([], 0, 1, 0, "en", ZONE, NOW).startswith(
        "⏳ No bookings are waiting for approval."
    )
    assert unreadable_note(0, "en") == ""
    assert "2" in unreadable_note(2, "zh")


# ---- the conversation ------------------------------------------------------------------------


async def test_a_manager_sees_the_waiting_bookings_soonest_first(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    alices = await residents(bot, sandbox_app)
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.press("1:menu:bookings_pending")
    text = _last(bot)
    assert text.startswith("⏳ Bookings waiting for approval, soonest first (page 1 of 1):")
    assert "Wang Home / 王家" in text
    assert "Chen Home / 陈家" in text
    assert "Akubela console" in text
    assert "could not be read" not in text
    assert _listed(bot) == [BOBS, alices]
    await chat.press(_press("open", alices))
    detail = _last(bot)
    assert detail.startswith("Meeting room — waiting for approval")
    assert f"Booking id: {alices}" in detail
    assert "Chen Home / 陈家" in detail
    # The office approves Bob's in the console; a refresh no longer lists it.
    _vendor(sandbox_app).advance("booking", BOBS, "approve")
    await chat.press(bot.telegram.button("Back to the list"))
    assert _listed(bot) == [alices]
    _vendor(sandbox_app).advance("booking", alices, "reject")
    await chat.press(bot.telegram.button("Refresh"))
    assert _last(bot).startswith("⏳ No bookings are waiting for approval.")


async def test_the_views_in_chinese(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    await join(bot, MANAGER, lang="zh")
    chat = bot.chat(MANAGER, language_code="zh")
    await chat.send("/bookings_pending")
    assert _last(bot).startswith("⏳ 等待审批的预约，最早的在前（第 1 / 1 页）：")
    await chat.press(_press("open", BOBS))
    assert _last(bot).startswith("会议室 — 等待审批")


async def test_a_resident_whose_login_fails_is_skipped_and_counted(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    alices = await residents(bot, sandbox_app)
    cipher = bot.services.cipher
    await bot.services.accounts.store_tokens(
        ALICE,
        StoredTokens(
            access_token_encrypted=cipher.encrypt("revoked"),
            refresh_token_encrypted=None,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    )
    # As a bot process that has not used her login yet: its holder reads the row above.
    bot.services.tokens.forget(ALICE)
    await join(bot, MANAGER)
    await bot.chat(MANAGER).send("/bookings_pending")
    assert _listed(bot) == [BOBS]
    assert alices not in str(bot.telegram.last_buttons())
    assert "⚠ The bookings of 1 linked resident(s) could not be read just now" in _last(bot)


async def test_with_nobody_linked_there_is_nothing_to_gather(bot: BotUnderTest) -> None:
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.send("/bookings_pending")
    assert _last(bot).startswith("No resident has linked their Akubela account in the bot yet")
    await chat.send("anything")
    assert not _last(bot).startswith("Please use the buttons")


async def test_only_managers_of_this_community_see_it(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    await join(bot, TUYA_MANAGER, TUYA_PROJECT)
    await bot.chat(BOB).send("/bookings_pending")
    assert _last(bot) == "Sorry, that is not available to you."
    await bot.chat(STRANGER).press("1:menu:bookings_pending")
    assert _last(bot) == "Sorry, that is not available to you."
    await bot.chat(TUYA_MANAGER).send("/bookings_pending")
    assert _last(bot) == "Sorry, that record is not yours."
    await bot.chat(BOB).press(_press("open", BOBS))
    assert not any("Booking id" in (c.text or "") for c in bot.telegram.replies())


async def test_stale_forged_and_typed_input_change_nothing(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.send("/bookings_pending")
    # A booking that exists but was never listed (Dave's, declined) is not opened.
    await chat.press(_press("open", "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e05"))
    texts = [c.text or "" for c in bot.telegram.replies()[-2:]]
    assert texts[0] == "Sorry, that booking is not in the list (any more)."
    assert texts[1].startswith("⏳ Bookings waiting for approval")
    await chat.press(_press("zap"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.send("approve it please")
    # A list takes no typed text: it is read as with no list open (issue 15).
    assert _last(bot).startswith("I did not understand that.")
    await chat.send("/cancel")
    assert _last(bot) == "Closed."
    await chat.press(_press("open", BOBS))
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."


async def test_a_booking_gone_meanwhile_is_explained(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    await join(bot, MANAGER)
    chat = bot.chat(MANAGER)
    await chat.send("/bookings_pending")
    del _vendor(sandbox_app)._bookings[BOBS]
    await chat.press(_press("open", BOBS))
    texts = [c.text or "" for c in bot.telegram.replies()[-2:]]
    assert texts[0] == "That record no longer exists; it may have been removed meanwhile."
    assert texts[1].startswith("⏳ No bookings are waiting for approval.")


async def test_akubela_down_offers_a_retry(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, BOB)
    await join(bot, MANAGER)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path=USER_PATH, status=503))
    chat = bot.chat(MANAGER)
    await chat.send("/bookings_pending")
    assert _last(bot) == "Akubela is not answering right now. Please try again in a moment."
    faults.clear()
    await chat.press(bot.telegram.button("Try again"))
    assert _listed(bot) == [BOBS]
    faults.add(FaultRule(FaultKind.ERROR, path=USER_PATH, status=503))
    await chat.press(_press("open", BOBS))
    assert _last(bot) == "Akubela is not answering right now. Please try again in a moment."
    faults.clear()
    await chat.press(bot.telegram.button("Try again"))
    assert _last(bot).startswith("Meeting room — waiting for approval")


async def test_silence_closes_the_list(database_url: str, sandbox_app: Starlette) -> None:
    async with started(database_url, sandbox_app, conversation_timeout_minutes=0.002) as bot:
        await link_demo_resident(bot, sandbox_app, BOB)
        await join(bot, MANAGER)
        chat = bot.chat(MANAGER)
        await chat.send("/bookings_pending")
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "I stopped waiting" in _last(bot):
                break
        assert "send /bookings_pending to pick up where you left off" in _last(bot)
        await chat.press(_press("open", BOBS))
        assert _alerts(bot)[-1].startswith("This button is no longer active.")


async def test_a_restart_in_the_middle_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, persistence=DatabasePersistence(sessions)
    ) as first:
        await link_demo_resident(first, sandbox_app, BOB)
        await join(first, MANAGER)
        await first.chat(MANAGER).send("/bookings_pending")
        await first.app.update_persistence()
    async with started(
        database_url,
        sandbox_app,
        persistence=DatabasePersistence(sessions),
        telegram=first.telegram,
    ) as second:
        await second.chat(MANAGER).press(_press("open", BOBS))
        assert _last(second).startswith("Meeting room — waiting for approval")
