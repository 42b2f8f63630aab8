"""Keyboards follow the conversation (issue 15, item 3): an answered, cancelled, timed-out or
superseded prompt loses its buttons, a flow has at most one live keyboard, a list and its
details are one message, the exit words differ from a vendor's Cancel, residents see short ids
only, and a conversation stored before the flow kit still resumes.

Live keyboards are counted in the local Bot API's own state (what the user's client shows),
not in what the bot meant to send."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from bot.persistence import DatabasePersistence
from conversations import callbacks, keys
from conversations.booking import at_arg
from conversations.i18n import tr
from sandbox.akubela_seed import GYM
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot
from tests.support_telegram import Chat

RESIDENT = 951  # one home
NEIGHBOUR = 952  # two homes: repairs and bookings of her own
ZONE = ZoneInfo("Asia/Shanghai")
DESCRIPTION = "The kitchen tap drips all night."
EXIT_WORDS = {"en": ("✖ Close", "✖ Stop"), "zh": ("✖ 关闭", "✖ 停止")}


def _live(bot: BotUnderTest, user: int) -> list[Any]:
    """The bot's messages in the user's chat that still show buttons one can press."""
    return [
        m
        for m in bot.telegram.bot_messages(user)
        if any("callback_data" in b for row in m.inline_keyboard or [] for b in row)
    ]


def _texts(bot: BotUnderTest) -> list[str]:
    return [c.text or "" for c in bot.telegram.replies()]


def _labels(message: Any) -> list[str]:
    return [b["text"] for row in message.inline_keyboard or [] for b in row]


async def _resident(bot: BotUnderTest, sandbox_app: Starlette, lang: str = "en") -> Chat:
    await link_demo_resident(bot, sandbox_app, RESIDENT)
    return bot.chat(RESIDENT, language_code=lang)


def _at(day: date, hour: int) -> str:
    return callbacks.build(keys.BOOK, "at", at_arg(datetime.combine(day, time(hour), tzinfo=ZONE)))


async def test_a_typed_answer_takes_the_previous_prompt_s_buttons_off(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        chat = await _resident(bot, sandbox_app)
        await chat.send("/repair")
        [asked] = _live(bot, RESIDENT)
        assert "What needs repairing?" in (asked.text or "")
        await chat.send("leak")  # too short: asked again in words, the buttons stay usable
        assert _live(bot, RESIDENT) == [asked]
        await chat.send(DESCRIPTION)
        assert not asked.inline_keyboard
        [photos] = _live(bot, RESIDENT)
        assert "photos" in (photos.text or "")


@pytest.mark.parametrize("how", ["/cancel", "button"])
async def test_cancelling_takes_the_buttons_off(
    how: str, database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        chat = await _resident(bot, sandbox_app)
        await chat.send("/repair")
        await chat.send(DESCRIPTION)
        assert len(_live(bot, RESIDENT)) == 1
        if how == "/cancel":
            await chat.send("/cancel")
        else:
            await chat.press(callbacks.build(keys.REPAIR, "cancel"))
        assert _live(bot, RESIDENT) == []
        assert _texts(bot)[-1] == "Cancelled. Nothing was sent."


async def test_a_time_out_takes_the_buttons_off(database_url: str, sandbox_app: Starlette) -> None:
    async with running_bot(database_url, sandbox_app, conversation_timeout_minutes=0.004) as bot:
        chat = await _resident(bot, sandbox_app)
        await chat.send("/repair")
        await chat.send(DESCRIPTION)
        assert len(_live(bot, RESIDENT)) == 1
        await asyncio.sleep(0.5)
        assert _texts(bot)[-1].startswith("I stopped waiting")
        assert _live(bot, RESIDENT) == []


async def test_list_detail_and_back_are_one_message(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, NEIGHBOUR, homes=2)
        chat = bot.chat(NEIGHBOUR)
        await chat.send("/repairs")
        [listed] = _live(bot, NEIGHBOUR)
        opened = next(
            b["callback_data"]
            for row in listed.inline_keyboard
            for b in row
            if ":open:" in b.get("callback_data", "")
        )
        await chat.press(opened, listed.message_id)
        [detail] = _live(bot, NEIGHBOUR)
        assert detail.message_id == listed.message_id
        assert (detail.text or "").startswith("Repair #")
        await chat.press(callbacks.build(keys.REPAIRS, "page", "0"), detail.message_id)
        [back] = _live(bot, NEIGHBOUR)
        assert back.message_id == listed.message_id
        assert (back.text or "").startswith("📋 Your repairs")
        edits = bot.telegram.sent("editMessageText")
        assert {c.params["message_id"] for c in edits} == {listed.message_id}


async def test_a_full_repair_and_a_full_booking_keep_at_most_one_live_keyboard(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        chat = await _resident(bot, sandbox_app)
        tomorrow = datetime.now(ZONE).date() + timedelta(days=1)

        def press(job: str, action: str, arg: str = "") -> Awaitable[str]:
            return chat.press(callbacks.build(job, action, arg))

        steps: list[Callable[[], Awaitable[object]]] = [
            lambda: chat.send("/repair"),
            lambda: chat.send(DESCRIPTION),
            lambda: chat.send_photo("leak-1"),
            lambda: press(keys.REPAIR, "done"),
            lambda: chat.send("tomorrow 9-12"),
            lambda: press(keys.REPAIR, "ok"),
            lambda: chat.send_contact("+86 138 0000 0002"),
            lambda: press(keys.REPAIR, "edit"),
            lambda: press(keys.REPAIR, "back"),
            lambda: press(keys.REPAIR, "confirm"),
            lambda: chat.send("/book"),
            lambda: press(keys.BOOK, "am", GYM),
            lambda: chat.send("tomorrow"),
            lambda: chat.press(_at(tomorrow, 9)),
            lambda: press(keys.BOOK, "dur", "60"),
            lambda: press(keys.BOOK, "confirm"),
        ]
        for number, step in enumerate(steps):
            await step()
            live = _live(bot, RESIDENT)
            assert len(live) <= 1, (number, [m.text for m in live])
        assert any(t.startswith("✅ Repair #") for t in _texts(bot))
        assert any(t.startswith("✅ Booked!") for t in _texts(bot))
        # Both flows are done: nothing is left to press.
        assert _live(bot, RESIDENT) == []


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_the_exit_button_is_not_a_vendor_s_cancel(
    lang: str, database_url: str, sandbox_app: Starlette
) -> None:
    close, stop = EXIT_WORDS[lang]
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, NEIGHBOUR, homes=2)
        chat = bot.chat(NEIGHBOUR, language_code=lang)
        screens: list[list[str]] = []

        async def look(action: Any) -> None:
            await action
            screens.extend(_labels(m) for m in _live(bot, NEIGHBOUR))

        await look(chat.send("/bookings"))
        upcoming = next(
            b["callback_data"]
            for m in _live(bot, NEIGHBOUR)
            for row in m.inline_keyboard
            for b in row
            if ":open:" in b.get("callback_data", "")
        )
        await look(chat.press(upcoming))
        await look(chat.press(callbacks.build(keys.BOOKINGS, "drop", upcoming.split(":")[-1])))
        await look(chat.send("/repairs"))
        await look(chat.send("/repair"))
        views, drafts = screens[:-1], screens[-1:]
        vendor_cancel = {
            tr(lang, "🗑 Cancel this booking"),
            tr(lang, "🗑 Yes, cancel the booking"),
        }
        assert vendor_cancel <= {label for labels in views for label in labels}
        for labels in views:
            assert labels[-1] == close, labels
            assert stop not in labels
        for labels in drafts:
            assert labels[-1] == stop, labels
            assert close not in labels
        # The word of the vendor's action never names the way out, and the way out never
        # names the vendor's action.
        cancel_word = "Cancel" if lang == "en" else "取消"
        for labels in screens:
            assert cancel_word not in labels[-1]
            assert all(close not in label and stop not in label for label in labels[:-1])


async def test_residents_never_see_a_full_vendor_id(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        chat = await _resident(bot, sandbox_app)
        await chat.send("/repair")
        await chat.send(DESCRIPTION)
        await chat.press(callbacks.build(keys.REPAIR, "skip"))
        await chat.send("tomorrow 9-12")
        await chat.press(callbacks.build(keys.REPAIR, "ok"))
        await chat.send_contact("+86 138 0000 0002")
        await chat.press(callbacks.build(keys.REPAIR, "confirm"))
        desk = await bot.services.resident_desk(RESIDENT)
        assert desk is not None
        [made] = [r for r in await desk.repairs() if r.description == DESCRIPTION]
        await chat.send("/repairs")
        await chat.press(callbacks.build(keys.REPAIRS, "open", made.id))
        shown = "\n".join(_texts(bot))
        assert f"#{made.id[-6:]}" in shown
        assert made.id not in shown


async def test_a_conversation_stored_before_the_flow_kit_resumes(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The rows an older release wrote: the repair conversation waiting for a description
    (its name and step as they were stored) and its draft (its kind as it was stored)."""
    persistence = DatabasePersistence(sessions)
    await persistence.update_conversation("repair", (RESIDENT, RESIDENT), "repair.describe")
    await persistence.flush()
    async with running_bot(database_url, sandbox_app, persistence=persistence) as bot:
        await link_demo_resident(bot, sandbox_app, RESIDENT)
        await bot.services.storage.drafts.save(
            RESIDENT, "repair", {"command_id": "c" * 32, "step": "repair.describe"}
        )
        chat = bot.chat(RESIDENT)
        await chat.send(DESCRIPTION)
        assert "You can add up to 5 photos" in _texts(bot)[-1]
        draft = await bot.services.storage.drafts.load(RESIDENT, "repair")
        assert draft is not None
        assert draft["description"] == DESCRIPTION
        assert draft["command_id"] == "c" * 32


@pytest.mark.telegram_refusals("message to edit not found")
async def test_a_prompt_deleted_in_the_chat_is_passed_over_politely(
    database_url: str, sandbox_app: Starlette
) -> None:
    """The user deleted the old list; taking its buttons off is refused by Telegram, and the
    new list comes all the same, with no apology for an error."""
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, NEIGHBOUR, homes=2)
        chat = bot.chat(NEIGHBOUR)
        await chat.send("/repairs")
        [old] = _live(bot, NEIGHBOUR)
        old.deleted = True
        await chat.send("/repairs")
        [new] = _live(bot, NEIGHBOUR)
        assert new.message_id != old.message_id
        assert (new.text or "").startswith("📋 Your repairs")
        stripped = bot.telegram.sent("editMessageReplyMarkup")
        assert [c.params["message_id"] for c in stripped] == [old.message_id]
        assert not [t for t in _texts(bot) if "Sorry" in t]
