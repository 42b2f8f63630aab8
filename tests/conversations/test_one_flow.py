"""One conversation at a time per user: a new flow puts the open one aside, typed text reaches
the flow the user is in, read-only views never take it, `/cancel` ends only the current flow,
and all of it holds after a restart."""

from __future__ import annotations

import asyncio
from typing import Final

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from bot.persistence import DatabasePersistence
from conversations import callbacks, keys
from conversations.i18n import tr
from sandbox.akubela_seed import GYM
from tests.hostile.community import MANAGER, RESIDENT, Community, community
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

# Every flow's entry command, and the conversation it opens.
FLOWS: Final = {
    "/repair": "repair",
    "/repairs": "repairs",
    "/book": "book",
    "/bookings": "bookings",
    "/code": "bookings",
    "/tasks": "tasks",
    "/assign": "assign",
    "/repairs_all": "repairs_all",
    "/bookings_pending": "bookings_pending",
}
# What the user is told when the flow a command opened is put aside right after it opened.
ASIDE: Final = {
    "/repair": "Your repair report is closed; nothing was sent.",
    "/repairs": "Closed your repairs list (/repairs opens it again).",
    "/book": "Your booking is closed; nothing was booked.",
    "/bookings": "Closed your bookings (/bookings shows them again).",
    "/code": "Stopped waiting for a booking code (/code to try again).",
    "/tasks": "Closed the task board (/tasks opens it again).",
    "/assign": "The new task was not created (/assign to start again).",
    "/repairs_all": "Closed the list of all repairs (/repairs_all opens it again).",
    "/bookings_pending": "Closed the pending bookings (/bookings_pending opens them again).",
}
START_ASKED: Final = {"en": "when would you like to start?", "zh": "您想几点开始"}
TOMORROW: Final = {"en": "tomorrow", "zh": "明天"}


async def _manager_at_home(c: Community, sandbox_app: Starlette) -> int:
    """The manager, who also lives in the community, so every flow is theirs to open."""
    await link_demo_resident(c.bot, sandbox_app, MANAGER, homes=2)
    return MANAGER


def _texts(bot: BotUnderTest) -> list[str]:
    return [call.text or "" for call in bot.telegram.replies()]


@pytest.mark.parametrize("first", list(FLOWS))
async def test_every_other_flow_puts_this_one_aside_and_cancel_ends_only_the_new_one(
    first: str, database_url: str, sandbox_app: Starlette
) -> None:
    async with community(database_url, sandbox_app) as c:
        user = await _manager_at_home(c, sandbox_app)
        chat = c.chat(user)
        for second in FLOWS:
            if FLOWS[second] == FLOWS[first]:
                continue
            await c.leave_all(user)
            await chat.send(first)
            assert set(c.conversations(user)) == {FLOWS[first]}, first
            c.bot.telegram.clear()
            await chat.send(second)
            assert set(c.conversations(user)) == {FLOWS[second]}, (first, second)
            # The line comes before the new flow's first prompt, and only once.
            assert _texts(c.bot)[0] == ASIDE[first], (first, second)
            assert _texts(c.bot).count(ASIDE[first]) == 1
            await chat.send("/cancel")
            assert c.conversations(user) == {}, (first, second)
            # A draft is cancelled; a view is closed.
            left = "Cancelled. Nothing was sent." if FLOWS[second] in keys.DRAFTING else "Closed."
            assert c.bot.telegram.last.text == left, (first, second)
        assert c.errors == []


async def _book_gym_after(bot: BotUnderTest, user: int, before: str, lang: str) -> None:
    """Opens `before`, then /book, Gym: the booking waits for a day."""
    chat = bot.chat(user, language_code=lang)
    if before == "repair draft":
        await chat.send("/repair")
        await chat.send("The kitchen tap drips all night.")
    elif before == "repair detail":
        await chat.send("/repairs")
        await chat.press(next(d for d in _callback_data(bot) if ":repairs:open:" in d))
    else:
        await chat.send(before)
    await chat.send("/book")
    await chat.press(callbacks.build("book", "am", GYM))


def _callback_data(bot: BotUnderTest) -> list[str]:
    return [
        str(button["callback_data"])
        for call in reversed(bot.telegram.replies())
        for row in call.buttons
        for button in row
        if "callback_data" in button
    ]


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(
    "before", ["/bookings", "/repairs", "repair detail", "repair draft", "/code"]
)
async def test_a_day_typed_in_a_booking_is_the_booking_s_whatever_was_open_before(
    before: str, lang: str, database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, RESIDENT)
        await _book_gym_after(bot, RESIDENT, before, lang)
        await bot.chat(RESIDENT, language_code=lang).send(TOMORROW[lang])
        assert START_ASKED[lang] in (bot.telegram.last.text or "")
        # One /cancel ends the booking, and nothing else is left open.
        await bot.chat(RESIDENT, language_code=lang).send("/cancel")
        await bot.chat(RESIDENT, language_code=lang).send("/cancel")
        assert bot.telegram.last.text == tr(
            lang, "There is nothing to cancel. Send /start for the menu."
        )


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_kept_repair_draft_is_named_with_the_way_back(
    lang: str, database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, RESIDENT)
        chat = bot.chat(RESIDENT, language_code=lang)
        await chat.send("/repair")
        await chat.send("The kitchen tap drips all night.")
        bot.telegram.clear()
        await chat.send("/bookings")
        assert _texts(bot)[0] == tr(lang, "Your repair draft is kept: /repair to continue.")
        # And /repair does pick it up.
        await chat.send("/repair")
        assert "The kitchen tap drips all night." in (bot.telegram.last.text or "")


async def test_text_typed_while_only_a_view_is_open_is_read_as_free_text(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, RESIDENT)
        chat = bot.chat(RESIDENT)
        await chat.send("/bookings")
        await chat.send("the lift is broken")
        assert "That sounds like something to repair" in (bot.telegram.last.text or "")
        await chat.send("/repairs")
        await chat.send("gym tomorrow 7pm for an hour")
        # The typed request started a booking, and the list was put aside for it.
        texts = _texts(bot)
        assert "Closed your repairs list (/repairs opens it again)." in texts
        assert "Please use the buttons above" not in " ".join(texts)
        assert "Gym" in (bot.telegram.last.text or "")


async def test_after_a_restart_typed_text_still_reaches_the_booking(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running_bot(
        database_url, sandbox_app, persistence=DatabasePersistence(sessions)
    ) as first:
        await link_demo_resident(first, sandbox_app, RESIDENT)
        await _book_gym_after(first, RESIDENT, "/bookings", "en")
        await first.app.update_persistence()
    async with running_bot(
        database_url,
        sandbox_app,
        persistence=DatabasePersistence(sessions),
        telegram=first.telegram,
    ) as second:
        chat = second.chat(RESIDENT)
        await chat.send("tomorrow")
        assert START_ASKED["en"] in (second.telegram.last.text or "")
        # The list put aside before the restart stays closed after it.
        await chat.send("/cancel")
        await chat.send("/cancel")
        assert second.telegram.last.text == "There is nothing to cancel. Send /start for the menu."


async def test_a_flow_put_aside_is_closed_in_the_database_after_a_restart(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running_bot(
        database_url, sandbox_app, persistence=DatabasePersistence(sessions)
    ) as first:
        await link_demo_resident(first, sandbox_app, RESIDENT)
        chat = first.chat(RESIDENT)
        await chat.send("/repairs")
        await first.app.update_persistence()
        await chat.send("/book")
        await first.app.update_persistence()
    stored = await DatabasePersistence(sessions).stored_conversations("repairs")
    assert stored == {}
    assert await DatabasePersistence(sessions).stored_conversations("book") != {}


async def test_a_flow_put_aside_never_announces_a_time_out(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app, conversation_timeout_minutes=0.004) as bot:
        await link_demo_resident(bot, sandbox_app, RESIDENT)
        chat = bot.chat(RESIDENT)
        await chat.send("/repair")
        await chat.send("The kitchen tap drips all night.")
        await chat.send("/bookings")

        def stopped() -> list[str]:
            return [text for text in _texts(bot) if text.startswith("I stopped waiting")]

        # The list's time-out comes 0.24 s after it opened, later on a busy machine; once it
        # has, the repair (put aside before it) has had as long to time out too.
        for _ in range(100):
            if stopped():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        # Only the list that is open says it stopped waiting; the repair was put aside.
        assert len(stopped()) == 1
        assert "/bookings" in stopped()[0]


async def test_the_prompt_of_a_flow_put_aside_loses_its_buttons(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, RESIDENT)
        chat = bot.chat(RESIDENT)
        await chat.send("/book")
        await chat.press(callbacks.build("book", "am", GYM))
        [day_prompt] = [m for m in bot.telegram.bot_messages(RESIDENT) if m.inline_keyboard]
        await chat.send("/repairs")
        assert not day_prompt.inline_keyboard
        # The new flow's own buttons are live, and they are the only ones.
        live = [m for m in bot.telegram.bot_messages(RESIDENT) if m.inline_keyboard]
        assert len(live) == 1
        assert "repairs" in str(live[0].inline_keyboard)
