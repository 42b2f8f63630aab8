"""The Telegram side of faults: 429s are waited out, a user who blocked the bot is marked and
left alone, and texts longer than Telegram takes arrive in pieces.

The 429 and long-text cases run the real application (rate limiter and all) polling the local
Bot API, which answers 429 on demand and refuses texts over 4096 characters as Telegram does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.app import build_application
from bot.app_type import ConciergeApp
from bot.persistence import DatabasePersistence
from bot.services import Services
from bot.settings import Settings
from bot.storage.migrate import upgrade
from bot.telegram_bot import MAX_TEXT, split_text
from conversations.common import new_command_id
from conversations.context import SERVICES_KEY
from conversations.writes import BookingCancel, dump_write
from sandbox.botapi import BotApiState, Persona, create_botapi_app
from tests.faults.conftest import Figures, MovableClock
from tests.sandbox.botapi.conftest import LiveBotApi, polling, serve_in_loop
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot
from tests.support_telegram import FakeTelegram

TOKEN = "123456:FAULTS-local-bot-api-token"
RESIDENT = Persona(user_id=7101, name="Wang Fang", role="resident")
LONG_DESCRIPTION = "The balcony drain overflows whenever it rains. " * 120  # about 5,600


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ---- the splitter ---------------------------------------------------------------------------


def test_a_text_within_the_limit_is_one_piece() -> None:
    assert split_text("") == [""]
    assert split_text("x" * MAX_TEXT) == ["x" * MAX_TEXT]


def test_a_long_text_is_cut_at_a_paragraph_then_a_line_then_a_space() -> None:
    paragraphs = ("a" * 3000) + "\n\n" + ("b" * 900) + "\n" + ("c" * 900)
    assert split_text(paragraphs) == ["a" * 3000, ("b" * 900) + "\n" + ("c" * 900)]
    lines = ("a" * 3000) + "\n" + ("b" * 900) + " " + ("c" * 900)
    assert split_text(lines) == ["a" * 3000, ("b" * 900) + " " + ("c" * 900)]
    words = ("a" * 3000) + " " + ("b" * 1500)
    assert split_text(words) == ["a" * 3000, "b" * 1500]
    one_word = "x" * 5000
    assert split_text(one_word) == ["x" * MAX_TEXT, "x" * 904]


def test_emoji_count_twice_as_telegram_counts_them() -> None:
    text = "🔧" * 3000  # 6000 UTF-16 units
    pieces = split_text(text)
    assert [_utf16(p) for p in pieces] == [4096, 1904]
    assert "".join(pieces) == text


@given(
    text=st.text(
        alphabet=st.sampled_from(["a", "语", "🔧", " ", "\n", "\u200f", "é"]), max_size=400
    ),
    limit=st.integers(min_value=2, max_value=60),
)
def test_pieces_fit_lose_nothing_but_the_separators_and_are_never_empty(
    text: str, limit: int
) -> None:
    pieces = split_text(text, limit)
    assert all(_utf16(piece) <= limit for piece in pieces)
    assert all(pieces) or pieces == [text]
    assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", text)


async def test_the_bot_sends_a_long_text_in_pieces_with_the_buttons_under_the_last(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        button = InlineKeyboardButton("OK", callback_data="1:x:ok")
        sent = await bot.app.bot.send_message(
            42, "line\n" * 2000, reply_markup=InlineKeyboardMarkup([[button]])
        )
        calls = bot.telegram.sent("sendMessage")
        assert len(calls) == 3
        assert all(len(c.text or "") <= MAX_TEXT for c in calls)
        assert [c.buttons for c in calls] == [
            [],
            [],
            [[{"text": "OK", "callback_data": "1:x:ok"}]],
        ]
        # Telegram trims a message's text, as the stand-in now does too.
        assert sent.text == (calls[-1].text or "").strip()
        assert sum((c.text or "").count("line") for c in calls) == 2000


# ---- the real bot on the local Bot API --------------------------------------------------------


@asynccontextmanager
async def _live(
    database_url: str, sandbox_app: Starlette
) -> AsyncIterator[tuple[LiveBotApi, ConciergeApp]]:
    """The local Bot API with one resident, and the real application polling it."""
    botapi_app = create_botapi_app(token=TOKEN, personas=[RESIDENT])
    state: BotApiState = botapi_app.state.botapi
    await upgrade(database_url)
    async with serve_in_loop(botapi_app) as url, httpx.AsyncClient(base_url=url) as http:
        settings = Settings(
            _env_file=None,
            database_url=database_url,
            telegram_bot_token=TOKEN,
            telegram_base_url=f"{url}/bot",
            outbox_interval_seconds=3600,
            alert_poll_seconds=3600,
        )
        services = Services.open(settings, vendor_transport=httpx.ASGITransport(app=sandbox_app))
        application = build_application(
            settings, services, persistence=DatabasePersistence(services.storage.sessions)
        )
        try:
            async with polling(application):
                yield LiveBotApi(url=url, app=botapi_app, state=state, http=http), application
        finally:
            state.close()
            # Leaving `async with` does not run post_shutdown (only run_polling does).
            await services.aclose()


async def test_a_429_from_the_bot_api_is_waited_out_and_the_reply_arrives(
    database_url: str, sandbox_app: Starlette, figures: Figures
) -> None:
    async with _live(database_url, sandbox_app) as (botapi, _):
        botapi.state.faults.inject("sendMessage", count=2, retry_after=0.05)
        await botapi.say(RESIDENT.user_id, "/start")
        replies = await botapi.bot_messages(RESIDENT.user_id, count=2)
        figures.faults["telegram_429"] += 2
    assert "Concierge" in replies[0]["text"]
    assert "link your Akubela account" in replies[1]["text"]
    # Both refusals were retried: every reply went through, two sends more than replies.
    assert botapi.state.calls.count("sendmessage") == len(replies) + 2


async def test_a_repair_detail_longer_than_telegram_takes_arrives_in_pieces(
    database_url: str, sandbox_app: Starlette, figures: Figures
) -> None:
    async with _live(database_url, sandbox_app) as (botapi, application):
        services = application.bot_data[SERVICES_KEY]
        holder = BotUnderTest(application, services, FakeTelegram(), services.settings)
        person = await link_demo_resident(holder, sandbox_app, RESIDENT.user_id)
        akubela = sandbox_app.state.control.vendors["akubela"]
        home = person["residence_ids"][0]
        mine = next(r for r in akubela._repairs.values() if r.residence_id == home)
        akubela._repairs[mine.maintenance_id] = dataclasses.replace(
            mine, description=LONG_DESCRIPTION
        )

        await botapi.say(RESIDENT.user_id, "/repairs")
        [listing] = await botapi.bot_messages(RESIDENT.user_id)
        pressed = _button_data(listing, mine.maintenance_id[-6:])
        assert pressed is not None, listing
        answer = await botapi.http.post(
            f"/api/chats/{RESIDENT.user_id}/callbacks",
            json={"message_id": listing["message_id"], "data": pressed},
        )
        assert answer.status_code == 200, answer.text
        shown = await botapi.bot_messages(RESIDENT.user_id, count=3)
        figures.faults["telegram_long_text"] += 1
    detail = shown[1:]
    assert all(_utf16(m["text"]) <= MAX_TEXT for m in detail)
    whole = " ".join(m["text"] for m in detail)
    assert whole.count("balcony drain") == 120
    assert detail[-1]["buttons"], "the detail's buttons belong under its last piece"
    assert not detail[0]["buttons"]


def _button_data(message: dict[str, Any], label_part: str) -> str | None:
    for row in message.get("buttons") or []:
        for button in row:
            if label_part in button["text"]:
                return str(button["callback_data"])
    return None


# ---- blocked users ------------------------------------------------------------------------------


async def test_a_user_who_blocked_the_bot_is_marked_by_any_notice_and_gets_no_alerts(
    database_url: str, sandbox_app: Starlette, figures: Figures
) -> None:
    clock = MovableClock()
    async with running_bot(database_url, sandbox_app, clock=clock) as bot:
        person = await link_demo_resident(bot, sandbox_app, RESIDENT.user_id, homes=2)
        job_queue = bot.app.job_queue
        assert job_queue is not None
        [alerts] = job_queue.get_jobs_by_name("alerts")
        await alerts.run(bot.app)  # the first poll only looks
        # A cancellation Akubela could not take earlier, and now refuses: the user is told.
        writes = bot.services.storage.writes
        cancel = BookingCancel(
            residence_id=person["residence_ids"][0], booking_id="no-such-booking"
        )
        begun = await writes.begin(
            command_id=new_command_id(),
            telegram_id=RESIDENT.user_id,
            vendor=cancel.vendor,
            kind=cancel.kind,
            subject=cancel.subject(),
            write=dump_write(cancel),
            owner="earlier",
            now=clock.now,
            lease_until=clock.now,
        )
        await writes.release(
            begun.row.id,
            "earlier",
            maybe_sent=False,
            error="Unavailable",
            next_attempt_at=clock.now,
        )
        bot.telegram.blocked_chats.add(RESIDENT.user_id)
        figures.faults["telegram_403"] += 1

        [outbox] = job_queue.get_jobs_by_name("outbox")
        await outbox.run(bot.app)

        user = await bot.services.storage.users.get(RESIDENT.user_id)
        assert user is not None
        assert user.blocked_at == clock.now
        tried = len(_to(bot.telegram, RESIDENT.user_id))
        assert tried == 1  # the one notice of how the write ended, refused
        akubela = sandbox_app.state.control.vendors["akubela"]
        home_repairs = [
            r.maintenance_id
            for r in akubela._repairs.values()
            if r.residence_id == person["residence_ids"][0] and r.state == "wait for confirmation"
        ]
        akubela.advance("repair", home_repairs[0])
        await alerts.run(bot.app)
        assert len(_to(bot.telegram, RESIDENT.user_id)) == tried


def _to(telegram: FakeTelegram, chat_id: int) -> list[Any]:
    return [c for c in telegram.sent("sendMessage") if int(c.params["chat_id"]) == chat_id]
