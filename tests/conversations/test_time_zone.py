"""A resident's own time zone: set with /timezone, used by the flows, sent to Akubela in UTC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette

from conversations import callbacks
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

USER = 6100
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app) as running:
        yield running


async def test_timezone_is_shown_set_refused_and_reset(bot: BotUnderTest) -> None:
    chat = bot.chat(USER)
    await chat.send("/timezone")
    assert "Times are shown in Asia/Shanghai" in (bot.telegram.last.text or "")
    await chat.send("/timezone Mars/Olympus")
    assert "I do not know the time zone “Mars/Olympus”" in (bot.telegram.last.text or "")
    await chat.send("/timezone Europe/Berlin")
    assert "now shown in Europe/Berlin" in (bot.telegram.last.text or "")
    user = await bot.services.storage.users.get(USER)
    assert user is not None
    assert user.time_zone == "Europe/Berlin"
    await chat.send("/whoami")
    assert "Time zone: Europe/Berlin" in (bot.telegram.last.text or "")
    await chat.send("/timezone reset")
    assert "now shown in Asia/Shanghai" in (bot.telegram.last.text or "")


async def test_a_repair_window_follows_the_residents_own_zone(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, USER)
    chat = bot.chat(USER)
    await chat.send("/timezone Europe/Berlin")
    await chat.send("/repair")
    description = "Radiator in the bedroom stays cold, Berlin time"
    await chat.send(description)
    await chat.press(callbacks.build("repair", "skip"))
    await chat.press(callbacks.build("repair", "when", "1m"))
    await chat.press(callbacks.build("repair", "ok"))
    await chat.send("+49 30 1234567")
    await chat.press(callbacks.build("repair", "confirm"))
    desk = await bot.services.resident_desk(USER)
    assert desk is not None
    (repair,) = [r for r in await desk.repairs() if r.description == description]
    tomorrow = (bot.services.clock().astimezone(BERLIN) + timedelta(days=1)).date()
    assert repair.start == datetime.combine(tomorrow, time(9), tzinfo=BERLIN)
