"""The booking and repair flows follow the resident's community: each amenity's grid, lengths
and horizon, and the community's service hours, as kept in the communities table."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette

from bot.communities import stored_communities, stored_values
from conversations import callbacks
from conversations.booking import at_arg
from conversations.community import AmenityRules
from sandbox.akubela_seed import BBQ, GYM
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

BOB = 811
BOB_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b603"
ZONE = ZoneInfo("Asia/Shanghai")


async def set_rules(bot: BotUnderTest, **changes: Any) -> None:
    """Changes community 1 as `concierge community edit` would, and restarts its reading."""
    services = bot.services
    [access] = await stored_communities(services.storage, services.cipher)
    changed = dataclasses.replace(
        access, community=dataclasses.replace(access.community, **changes)
    )
    await services.storage.communities.save(1, stored_values(changed, services.cipher))
    await services.load_communities()


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app) as running:
        await link_demo_resident(running, sandbox_app, BOB)
        yield running


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("book", action, arg)


def _tomorrow() -> date:
    return datetime.now(ZONE).date() + timedelta(days=1)


def _labels(bot: BotUnderTest) -> list[str]:
    return [b["text"] for row in bot.telegram.last_buttons() for b in row]


def _last(bot: BotUnderTest) -> str:
    return bot.telegram.last.text or ""


def _bookings(sandbox_app: Starlette, amenity_id: str) -> list[Any]:
    vendor = sandbox_app.state.control.vendors["akubela"]
    return [
        b
        for b in vendor._bookings.values()
        if b.residence_id == BOB_HOME and b.amenity_id == amenity_id and b.pin_code
    ]


async def test_a_60_minute_grid_amenity_offers_only_starts_on_its_grid(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await set_rules(
        bot,
        amenity_rules={
            BBQ: AmenityRules(grid_minutes=60, min_minutes=60, max_minutes=120, horizon_days=14)
        },
    )
    before = len(_bookings(sandbox_app, BBQ))
    chat = bot.chat(BOB)
    await chat.send("/book")
    await chat.press(_press("am", BBQ))
    tomorrow = _tomorrow()
    await chat.press(_press("day", tomorrow.isoformat()))
    starts = [label for label in _labels(bot) if label[:2].isdigit()]
    assert starts == ["17:00", "18:00", "19:00"]  # evenings 17-20, on the hour only
    await chat.send("17:30")
    assert _last(bot).startswith("17:30 can't be booked. The nearest free times:")
    assert [label for label in _labels(bot) if label[:2].isdigit()] == ["17:00", "18:00", "19:00"]
    await chat.press(_press("at", at_arg(datetime.combine(tomorrow, time(18), tzinfo=ZONE))))
    assert _labels(bot)[:2] == ["1 h", "2 h"]
    await chat.press(_press("dur", "60"))
    await chat.press(_press("confirm"))
    assert _last(bot).startswith("✅ Booked!\nBBQ terrace")
    assert len(_bookings(sandbox_app, BBQ)) == before + 1


async def test_the_seeds_80_minutes_from_a_quarter_past_where_the_gym_allows_it(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await set_rules(
        bot,
        amenity_rules={
            GYM: AmenityRules(grid_minutes=5, min_minutes=30, max_minutes=120, horizon_days=30)
        },
    )
    chat = bot.chat(BOB, language_code="zh")
    await chat.send("预约健身房 明天13:15 80分钟")
    assert _last(bot).endswith("13:15–14:35（1 小时 20 分钟）")
    await chat.press(_press("confirm"))
    assert _last(bot).startswith("✅ 预约成功！\n健身房")
    [made] = [b for b in _bookings(sandbox_app, GYM) if b.start_time.minute == 15]
    assert made.start_time == datetime.combine(_tomorrow(), time(13, 15), tzinfo=ZONE)
    assert made.finish_time - made.start_time == timedelta(minutes=80)


async def test_the_amenitys_horizon_bounds_the_dates(bot: BotUnderTest) -> None:
    await set_rules(
        bot,
        amenity_rules={
            BBQ: AmenityRules(grid_minutes=60, min_minutes=60, max_minutes=120, horizon_days=14)
        },
    )
    chat = bot.chat(BOB)
    await chat.send("/book")
    await chat.press(_press("am", BBQ))
    far = _tomorrow() + timedelta(days=20)
    await chat.send(far.isoformat())
    assert _last(bot) == "Please choose a date within the next 14 days."


async def test_repair_visits_keep_to_the_communitys_service_hours(bot: BotUnderTest) -> None:
    await set_rules(bot, service_hours_start=time(9, 0), service_hours_end=time(12, 0))
    chat = bot.chat(BOB)
    await chat.send("/repair")
    await chat.send("The kitchen tap drips all night long")
    await chat.press(callbacks.build("repair", "skip"))
    await chat.send("tomorrow 14:00-16:00")
    assert "09:00" in _last(bot)
    assert "12:00" in _last(bot)
    await chat.send("tomorrow 10:00-11:00")
    assert "10:00" in _last(bot)


@pytest.mark.parametrize(
    ("grid", "shown"),
    [
        (45, ["17:00", "17:45", "18:30", "19:15"]),  # a coarse grid: every start a button
        (5, ["17:00", "17:30", "18:00", "18:30", "19:00", "19:30"]),  # a fine one: typed
    ],
)
async def test_start_buttons_follow_the_grid(
    bot: BotUnderTest, grid: int, shown: list[str]
) -> None:
    await set_rules(
        bot,
        amenity_rules={
            BBQ: AmenityRules(
                grid_minutes=grid, min_minutes=45 if grid == 45 else 30, max_minutes=90
            )
        },
    )
    chat = bot.chat(BOB)
    await chat.send("/book")
    await chat.press(_press("am", BBQ))
    await chat.press(_press("day", _tomorrow().isoformat()))
    assert [label for label in _labels(bot) if label[:2].isdigit()] == shown
