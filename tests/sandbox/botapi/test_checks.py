"""Telegram's refusals, as PTB sees them: each check answers 400 with Telegram's description."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter

from bot.send_budget import MemorySendBudget
from bot.telegram_limiter import BudgetRateLimiter
from tests.sandbox.botapi.conftest import MANAGER, RESIDENT, LiveBotApi, png_bytes

# These tests send what Telegram refuses, to see it refused.
pytestmark = pytest.mark.telegram_refusals()

Call = Callable[[Bot], Awaitable[Any]]
CHAT = RESIDENT.user_id


def _keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data=data)]])


CHECKS: list[tuple[str, Call, str]] = [
    ("text too long", lambda b: b.send_message(CHAT, "x" * 4097), "message is too long"),
    ("text empty", lambda b: b.send_message(CHAT, "   "), "message text is empty"),
    (
        "empty after parsing",
        lambda b: b.send_message(CHAT, "<b> </b>", parse_mode="HTML"),
        "message text is empty",
    ),
    (
        "callback data over 64 bytes",
        lambda b: b.send_message(CHAT, "Pick", reply_markup=_keyboard("é" * 33)),
        "BUTTON_DATA_INVALID",
    ),
    (
        "unclosed HTML tag",
        lambda b: b.send_message(CHAT, "<b>bold", parse_mode="HTML"),
        "can't parse entities: can't find end tag corresponding to start tag \"b\"",
    ),
    (
        "unknown HTML tag",
        lambda b: b.send_message(CHAT, "a <br> b", parse_mode="HTML"),
        'can\'t parse entities: unsupported start tag "br" at byte offset 2',
    ),
    (
        "raw < in HTML",
        lambda b: b.send_message(CHAT, "1 < 2", parse_mode="HTML"),
        "can't parse entities",
    ),
    (
        "unescaped MarkdownV2 dot",
        lambda b: b.send_message(CHAT, "Booked for 9.30", parse_mode="MarkdownV2"),
        "character '.' is reserved",
    ),
    (
        "unclosed MarkdownV2 bold",
        lambda b: b.send_message(CHAT, "*Booked", parse_mode="MarkdownV2"),
        "can't find end of bold entity at byte offset 0",
    ),
    (
        "caption too long",
        lambda b: b.send_photo(CHAT, _png(), caption="c" * 1025),
        "message caption is too long",
    ),
    ("unknown chat", lambda b: b.send_message(424242, "hi"), "chat not found"),
    (
        "edit of an unknown message",
        lambda b: b.edit_message_text("new", chat_id=CHAT, message_id=999),
        "message to edit not found",
    ),
    (
        "delete of an unknown message",
        lambda b: b.delete_message(CHAT, 999),
        "message to delete not found",
    ),
    (
        "answer of an unknown query",
        lambda b: b.answer_callback_query("12345"),
        "query is too old",
    ),
    ("bad file id", lambda b: b.send_photo(CHAT, "AgAC-nope"), "wrong file identifier"),
    ("unknown chat action", lambda b: b.send_chat_action(CHAT, "dancing"), "wrong parameter"),
]


def _png() -> bytes:
    return png_bytes()


@pytest.mark.parametrize(("case", "call", "description"), CHECKS, ids=[c[0] for c in CHECKS])
async def test_telegram_refuses(
    botapi: LiveBotApi, case: str, call: Call, description: str
) -> None:
    async with botapi.bot() as bot:
        with pytest.raises(BadRequest) as caught:
            await call(bot)
    assert description.lower() in caught.value.message.lower()


async def test_edit_with_identical_content_is_not_modified(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        sent = await bot.send_message(CHAT, "Same", reply_markup=_keyboard("k"))
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text(
                "Same", chat_id=CHAT, message_id=sent.message_id, reply_markup=_keyboard("k")
            )
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=_keyboard("k"))
        changed = await bot.edit_message_reply_markup(
            CHAT, sent.message_id, reply_markup=_keyboard("other")
        )
    assert not isinstance(changed, bool)
    [shown] = await botapi.messages(CHAT)
    assert shown["buttons"] == [[{"text": "Go", "callback_data": "other"}]]


async def test_user_messages_cannot_be_edited_but_can_be_deleted(botapi: LiveBotApi) -> None:
    said = await botapi.say(CHAT, "my message")
    async with botapi.bot() as bot:
        with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
            await bot.edit_message_text("hacked", chat_id=CHAT, message_id=said["message_id"])
        assert await bot.delete_message(CHAT, said["message_id"]) is True
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await bot.delete_message(CHAT, said["message_id"])
    [shown] = await botapi.messages(CHAT)
    assert shown == {**shown, "deleted": True}
    assert "text" not in shown


async def test_unknown_method_is_400_not_404(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        with pytest.raises(BadRequest, match=r"(?i)not found"):
            await bot.do_api_request("sendHologram", api_kwargs={"chat_id": CHAT})
    raw = await botapi.http.post("/bot123456:TEST-local-bot-api-token/sendHologram")
    assert raw.status_code == 400
    assert raw.json()["ok"] is False


async def test_method_names_are_case_insensitive(botapi: LiveBotApi) -> None:
    raw = await botapi.http.get("/bot123456:TEST-local-bot-api-token/GETME")
    assert raw.json()["result"]["username"] == "concierge_demo_bot"


async def test_wrong_token_is_401_and_never_echoed(botapi: LiveBotApi) -> None:
    with pytest.raises(InvalidToken):
        async with botapi.bot("123456:wrong-token") as bot:
            await bot.get_me()
    raw = await botapi.http.post("/bot123456:wrong-token/getMe")
    assert raw.status_code == 401
    assert "wrong-token" not in raw.text
    download = await botapi.http.get("/file/bot123456:wrong-token/photos/file_0.png")
    assert download.status_code == 401


async def test_json_and_urlencoded_bodies_are_both_read(botapi: LiveBotApi) -> None:
    base = "/bot123456:TEST-local-bot-api-token/sendMessage"
    as_json = await botapi.http.post(base, json={"chat_id": CHAT, "text": "json body"})
    as_form = await botapi.http.post(base, data={"chat_id": str(CHAT), "text": "form body"})
    as_query = await botapi.http.get(base, params={"chat_id": CHAT, "text": "query"})
    assert [r.json()["result"]["text"] for r in (as_json, as_form, as_query)] == [
        "json body",
        "form body",
        "query",
    ]


async def test_injected_429_is_retried_by_the_bots_rate_limiter(botapi: LiveBotApi) -> None:
    botapi.state.faults.inject("sendMessage", count=2, retry_after=0.05)
    limiter = BudgetRateLimiter(MemorySendBudget(), on_retry=lambda _reason: None)
    application = botapi.builder().rate_limiter(limiter).build()
    async with application:
        sent = await application.bot.send_message(CHAT, "eventually")
    assert sent.text == "eventually"
    assert botapi.state.calls.count("sendmessage") == 3


async def test_injected_429_through_the_route_raises_retry_after(botapi: LiveBotApi) -> None:
    injected = await botapi.http.post(
        "/_botapi/faults", json={"method": "sendPhoto", "count": 1, "retry_after": 3}
    )
    assert injected.json() == {"sendphoto": {"count": 1, "retry_after": 3.0}}
    async with botapi.bot() as bot:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_photo(MANAGER.user_id, _png())
        assert caught.value.retry_after == dt.timedelta(seconds=3)
        assert (await bot.send_photo(MANAGER.user_id, _png())).photo
    assert (await botapi.http.get("/_botapi/faults")).json() == {}


async def test_get_updates_offsets_limits_and_allowed_updates(botapi: LiveBotApi) -> None:
    for text in ("one", "two", "three"):
        await botapi.say(CHAT, text)
    async with botapi.bot() as bot:
        first = await bot.get_updates(limit=2)
        assert [u.message.text for u in first if u.message] == ["one", "two"]
        rest = await bot.get_updates(offset=first[-1].update_id + 1)
        assert [u.message.text for u in rest if u.message] == ["three"]
        assert await bot.get_updates(offset=rest[-1].update_id + 1) == ()
        await bot.get_updates(allowed_updates=["callback_query"])
        await botapi.say(CHAT, "ignored")
        assert await bot.get_updates() == ()


async def test_long_poll_returns_as_soon_as_an_update_arrives(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=10))
        await asyncio.sleep(0.05)
        assert not poll.done()
        await botapi.say(CHAT, "wake up")
        async with asyncio.timeout(2):
            updates = await poll
    assert updates[0].message is not None
    assert updates[0].message.text == "wake up"


async def test_a_second_poller_ends_the_first_with_conflict(botapi: LiveBotApi) -> None:
    async with botapi.bot() as first, botapi.bot() as second:
        older = asyncio.create_task(first.get_updates(timeout=10))
        await asyncio.sleep(0.05)
        await second.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await older
