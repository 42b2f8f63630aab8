"""Text typed inside one conversation stays there, even when it looks like another's start."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

USER = 6200


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app) as running:
        yield running


async def test_a_repair_description_starting_with_the_booking_word_stays_a_description(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, USER)
    chat = bot.chat(USER, language_code="zh")
    await chat.send("/repair")
    await chat.send("预约健身房的时候发现更衣室的灯坏了")
    draft = await bot.services.storage.drafts.load(USER, "repair")
    assert draft is not None
    assert draft["description"] == "预约健身房的时候发现更衣室的灯坏了"
    assert await bot.services.storage.drafts.load(USER, "book") is None


async def test_a_booking_code_starting_with_the_booking_word_goes_to_the_code_step(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, USER)
    chat = bot.chat(USER)
    await chat.send("/code")
    asked = bot.telegram.last.text or ""
    await chat.send("预约码 NOT-A-REAL-CODE")
    # The /code step answered (the code is unknown); no booking was started from it.
    assert await bot.services.storage.drafts.load(USER, "book") is None
    assert "Which amenity" not in (bot.telegram.last.text or "")
    assert bot.telegram.last.text != asked


async def test_outside_any_conversation_the_booking_word_still_starts_a_booking(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, USER)
    await bot.chat(USER, language_code="zh").send("预约健身房")
    assert "健身房" in (bot.telegram.last.text or "")
