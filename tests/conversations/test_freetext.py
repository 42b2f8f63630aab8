"""Text typed outside any conversation: a booking, a repair, or the menu, in both languages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from conversations import callbacks
from conversations.freetext import Kind, classify
from tests.conversations.test_booking import BOB, started
from tests.support_bot import BotUnderTest, link_demo_resident


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("gym tomorrow 7pm for an hour", Kind.BOOKING),
        ("book the meeting room friday 2-4pm", Kind.BOOKING),
        ("预约健身房 明天晚上7点 一小时", Kind.BOOKING),
        ("健身房 明天晚上7点", Kind.BOOKING),
        ("bbq 25/12 18:00", Kind.BOOKING),
        ("my kitchen tap is leaking", Kind.PROBLEM),
        ("电梯坏了", Kind.PROBLEM),
        ("the lift has been broken since yesterday", Kind.PROBLEM),
        ("卫生间漏水", Kind.PROBLEM),
        ("the sun terrace is dirty", Kind.PROBLEM),
        ("see you on sat", Kind.OTHER),
        ("hello", Kind.OTHER),
        ("你好", Kind.OTHER),
        ("3", Kind.OTHER),
        ("gym tomorrow 7pm " + "x" * 300, Kind.OTHER),
    ],
)
def test_what_a_stray_message_asks_for(text: str, kind: Kind) -> None:
    assert classify(text) is kind


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


@pytest.mark.parametrize(
    ("language", "text", "summary", "window"),
    [
        ("en", "gym tomorrow 7pm for an hour", "Please check your booking:", "19:00–20:00 (1 h)"),
        ("en", "book the gym tomorrow 2-3pm", "Gym", "14:00–15:00 (1 h)"),
        ("zh", "预约健身房 明天晚上7点 一小时", "请核对", "19:00–20:00"),
        ("zh", "健身房 明天晚上7点 一小时", "请核对", "19:00–20:00"),
    ],
)
async def test_a_booking_typed_with_no_command_reaches_the_confirmation(
    bot: BotUnderTest, language: str, text: str, summary: str, window: str
) -> None:
    chat = bot.chat(BOB, language_code=language)
    await chat.send(text)
    assert summary in _last(bot)
    assert window in _last(bot)
    assert callbacks.build("book", "confirm") in [
        b.get("callback_data") for row in bot.telegram.last_buttons() for b in row
    ]


@pytest.mark.parametrize(
    ("language", "text", "named"),
    [
        ("zh", "预约健身房 2月31日 晚上7点", "“2月31日”不是日历上存在的日期。"),
        ("en", "book the gym on February 31 at 7pm", "“february 31” is not a date"),
        ("en", "gym tomorrow 7pm with my poodle", "I did not understand “poodle”."),
    ],
)
async def test_what_was_not_understood_is_named(
    bot: BotUnderTest, language: str, text: str, named: str
) -> None:
    await bot.chat(BOB, language_code=language).send(text)
    assert named in _last(bot)


@pytest.mark.parametrize(
    ("language", "text", "offer", "next_step"),
    [
        ("en", "my kitchen tap is leaking", "That sounds like something to repair", "📷"),
        ("zh", "电梯坏了", "这听起来需要报修", "📷"),
    ],
)
async def test_a_problem_offers_a_repair_with_the_description_filled_in(
    bot: BotUnderTest, language: str, text: str, offer: str, next_step: str
) -> None:
    chat = bot.chat(BOB, language_code=language)
    await chat.send(text)
    assert _last(bot).startswith(offer)
    assert f"“{text}”" in _last(bot)
    await chat.press(callbacks.build("repair", "fromtext"))
    # The description step is done: the report goes on to the photos.
    assert _last(bot).startswith(next_step)
    draft = await bot.services.storage.drafts.load(BOB, "repair")
    assert draft is not None
    assert draft["description"] == text


async def test_anything_else_gets_the_menu(bot: BotUnderTest) -> None:
    await bot.chat(BOB).send("hello there")
    assert _last(bot).startswith("I did not understand that.\nWhat would you like to do?")
    assert "📅 Book an amenity" in _labels(bot)


async def test_text_inside_a_conversation_stays_there(bot: BotUnderTest) -> None:
    """The free-text reading applies only outside conversations: a repair description that
    names a day is the description, not a booking."""
    chat = bot.chat(BOB)
    await chat.send("/repair")
    await chat.send("the gym shower is broken since tomorrow 7pm")
    assert _last(bot).startswith("📷")
    draft = await bot.services.storage.drafts.load(BOB, "repair")
    assert draft is not None
    assert draft["description"] == "the gym shower is broken since tomorrow 7pm"


@pytest.mark.parametrize(
    ("language", "examples"),
    [
        ("en", ["gym tomorrow 7pm for an hour", "my kitchen tap is leaking", "next friday"]),
        ("zh", ["预约健身房 明天晚上7点 一小时", "电梯坏了", "下周五"]),
    ],
)
async def test_help_shows_what_can_be_typed(
    bot: BotUnderTest, language: str, examples: list[str]
) -> None:
    await bot.chat(BOB, language_code=language).send("/help")
    for example in examples:
        assert example in _last(bot)


@pytest.mark.parametrize("zone", ["Asia", "Etc", "Asia/", "Mars/Olympus", "../../etc/passwd"])
async def test_an_unknown_or_partial_time_zone_is_named_with_examples(
    bot: BotUnderTest, zone: str
) -> None:
    await bot.chat(BOB).send(f"/timezone {zone}")
    assert _last(bot).startswith(f"I do not know the time zone “{zone}”. Send a full name")
    area = zone.split("/")[0]
    if area in ("Asia", "Etc"):
        assert f"{area}/" in _last(bot)


async def test_a_time_zone_name_in_any_case_is_taken(bot: BotUnderTest) -> None:
    await bot.chat(BOB).send("/timezone europe/berlin")
    assert _last(bot) == "Done: times are now shown in Europe/Berlin."
