"""The bot under Telegram's rules: edits change nothing, groups see nothing private, every press
is answered once and quickly, re-edits and long captions never reach the user as errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from telegram.ext import CommandHandler, ConversationHandler

from bot import presses
from bot.gate import ALLOWED_UPDATES
from bot.storage.models import OAuthState
from conversations import callbacks
from sandbox.akubela_seed import GYM
from sandbox.faults import FaultKind, FaultRule
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot
from tests.support_telegram import Call

ALICE = 9101
BOB = 9102
APOLOGY = "Sorry, something went wrong"


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app) as running:
        yield running


def _to_bot(bot: BotUnderTest, since: int) -> list[Call]:
    return bot.telegram.calls[since:]


def _commands(bot: BotUnderTest) -> set[str]:
    """Every command any handler of the bot takes, conversations' entry points included."""
    found: set[str] = set()

    def walk(handlers: Any) -> None:
        for handler in handlers:
            if isinstance(handler, CommandHandler):
                found.update(handler.commands)
            elif isinstance(handler, ConversationHandler):
                walk(handler.entry_points)
                walk(handler.fallbacks)
                for state_handlers in handler.states.values():
                    walk(state_handlers)

    for group in bot.app.handlers.values():
        walk(group)
    return found


# ---- edits -------------------------------------------------------------------------------------


def test_the_bot_asks_telegram_only_for_what_it_handles() -> None:
    assert set(ALLOWED_UPDATES) == {"message", "callback_query", "my_chat_member"}


async def test_an_edit_never_reruns_any_command(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE)
    chat = bot.chat(ALICE)
    typed = await chat.send("hello")
    commands = sorted(_commands(bot))
    assert {"start", "repair", "book", "bookings", "tasks", "cancel"} <= set(commands)
    for command in commands:
        before = len(bot.telegram.calls)
        await chat.edit(typed, f"/{command}")
        assert _to_bot(bot, before) == [], command
        typed = await chat.send(f"note {command}")


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/repair", "a broken tap in the kitchen, dripping all night"),
        ("/book", "tomorrow"),
        ("/bookings", "ABC123"),
        ("/repairs", "the second one"),
    ],
)
async def test_an_edit_never_answers_a_prompt(
    bot: BotUnderTest, sandbox_app: Starlette, command: str, answer: str
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE)
    chat = bot.chat(ALICE)
    old = await chat.send("an old message")
    await chat.send(command)
    drafts_before = await bot.services.storage.drafts.load(ALICE, command.strip("/"))
    before = len(bot.telegram.calls)
    await chat.edit(old, answer)
    assert _to_bot(bot, before) == []
    assert await bot.services.storage.drafts.load(ALICE, command.strip("/")) == drafts_before
    # The prompt still waits for its answer: the same text, typed anew, is taken.
    await chat.send(answer)
    assert len(bot.telegram.calls) > before


# ---- groups ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["/start", "/bookings", "/whoami", "/repair", "/tasks"])
@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_group_gets_one_short_answer_and_nothing_private(
    bot: BotUnderTest, sandbox_app: Starlette, command: str, language: str
) -> None:
    person = await link_demo_resident(bot, sandbox_app, ALICE)
    bot.telegram.chat(ALICE, language_code=language)
    group = bot.telegram.group("Block B", [ALICE, BOB])
    in_group = bot.chat(ALICE, language_code=language).in_group(group)
    await in_group.deliver()  # the bot was added: my_chat_member
    assert bot.telegram.calls[-1].method != "sendMessage"
    before = len(bot.telegram.calls)
    await in_group.send(command)
    await in_group.send("and some chatter")
    calls = _to_bot(bot, before)
    assert [c.method for c in calls] == ["sendMessage"]
    [reply] = calls
    assert int(reply.params["chat_id"]) == group
    [[button]] = reply.buttons
    assert button["url"] == f"https://t.me/{bot.app.bot.username}?start=from_group"
    assert ("私聊" in button["text"]) == (language == "zh")
    assert person["email"] not in str(reply.params)
    async with bot.services.storage.sessions() as session:
        states = (await session.scalars(select(OAuthState))).all()
    assert states == []
    assert await bot.services.storage.users.get(group) is None


async def test_a_press_in_a_group_is_answered_quietly_and_does_nothing(
    bot: BotUnderTest,
) -> None:
    group = bot.telegram.group("Block B", [ALICE, BOB])
    in_group = bot.chat(BOB).in_group(group)
    await in_group.send("/start")
    before = len(bot.telegram.calls)
    query = await in_group.press(callbacks.build("menu", "bookings"))
    assert [(c.method, c.params.get("text")) for c in _to_bot(bot, before)] == [
        ("answerCallbackQuery", None)
    ]
    assert bot.telegram.state.callbacks[query].answered


async def test_the_private_chat_opened_from_a_group_shows_the_menu(
    bot: BotUnderTest,
) -> None:
    await bot.chat(BOB).send("/start from_group")
    assert "invite" not in (bot.telegram.last.text or "")


# ---- presses -----------------------------------------------------------------------------------


def _answers(bot: BotUnderTest, since: int = 0) -> list[Call]:
    return [c for c in _to_bot(bot, since) if c.method == "answerCallbackQuery"]


@pytest.mark.parametrize("job", ["book", "bookings"])
async def test_a_press_while_akubela_is_down_is_answered_once_and_says_why(
    bot: BotUnderTest, sandbox_app: Starlette, job: str
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE)
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.ERROR, path="/akubela/api", status=503)
    )
    chat = bot.chat(ALICE)
    await chat.press(callbacks.build("menu", job))
    await chat.press(callbacks.build(job, "retry"))
    assert len(_answers(bot)) == 2
    assert all(APOLOGY not in (c.text or "") for c in bot.telegram.replies())
    assert "Akubela is not answering" in (bot.telegram.last.text or "")


async def test_a_resident_pressing_assign_a_task_is_refused_once(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE)
    await bot.chat(ALICE).press(callbacks.build("menu", "assign"))
    assert len(_answers(bot)) == 1
    assert all(APOLOGY not in (c.text or "") for c in bot.telegram.replies())


async def test_a_press_is_answered_within_a_second_before_a_slow_vendor(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE)
    chat = bot.chat(ALICE)
    await chat.send("/book")  # which amenity?
    sandbox_app.state.control.faults.add(
        FaultRule(FaultKind.LATENCY, path="/akubela/api", latency=1.5, times=1)
    )
    stamps: list[tuple[str, float]] = []
    telegram = bot.telegram
    real = telegram.do_request

    async def stamped(url: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        stamps.append((url.rsplit("/", 1)[-1], time.monotonic()))
        return await real(url, *args, **kwargs)

    telegram.do_request = stamped  # type: ignore[method-assign]
    started = time.monotonic()
    await chat.press(callbacks.build("book", "am", GYM))
    answered = [at for method, at in stamps if method == "answerCallbackQuery"]
    assert len(answered) == 1
    assert answered[0] - started < 0.5  # before the vendor call, not after it
    assert time.monotonic() - started >= 1.5


async def test_a_press_flood_control_drops_is_still_answered(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app, flood_rate=0.01, flood_burst=2) as bot:
        chat = bot.chat(ALICE)
        queries = [await chat.press(callbacks.build("menu", "nothing", str(n))) for n in range(5)]
        state = bot.telegram.state
        assert all(state.callbacks[q].answered for q in queries)
        assert len(_answers(bot)) == 5


async def test_a_double_tap_is_harmless_and_quiet(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, ALICE)
    chat = bot.chat(ALICE)
    await chat.send("/language")
    [message] = [m for m in bot.telegram.bot_messages(ALICE) if m.inline_keyboard]
    state = bot.telegram.state
    chat_state = bot.telegram.chat(ALICE)
    data = callbacks.build("acct", "lang", "zh")
    # Both taps leave the phone before the first one's answer arrives.
    first = state.user_presses(chat_state, message.message_id, data)
    second = state.user_presses(chat_state, message.message_id, data)
    before = len(bot.telegram.calls)
    await chat.deliver()
    assert state.callbacks[first].answered
    assert state.callbacks[second].answered
    answers = _answers(bot, before)
    assert [a.params.get("text") for a in answers] == [None, None]
    assert len([c for c in _to_bot(bot, before) if c.method == "editMessageText"]) == 1


async def test_an_identical_re_edit_is_no_error(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presses, "DOUBLE_TAP_SECONDS", 0.0)
    await link_demo_resident(bot, sandbox_app, ALICE)
    chat = bot.chat(ALICE)
    await chat.send("/unlink")
    [message] = [m for m in bot.telegram.bot_messages(ALICE) if m.inline_keyboard]
    state = bot.telegram.state
    data = callbacks.build("acct", "unlink", "no")
    taps = [state.user_presses(bot.telegram.chat(ALICE), message.message_id, data)] * 2
    await chat.deliver()
    assert all(state.callbacks[tap].answered for tap in taps)
    assert all(APOLOGY not in (c.text or "") for c in bot.telegram.replies())


async def test_an_old_button_gets_a_clear_quiet_answer(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.press("0:an-old-version:of-a-button")
    [answer] = _answers(bot)
    assert "no longer active" in answer.params["text"]
    assert not answer.params.get("show_alert")
    assert [c.method for c in bot.telegram.calls if c.method.startswith("send")] == []


# ---- captions and blocking ---------------------------------------------------------------------


async def test_a_long_caption_is_cut_to_fit(bot: BotUnderTest) -> None:
    bot.telegram.chat(BOB)
    bot.telegram.photo("qr-1")
    sent = await bot.app.bot.send_photo(BOB, "qr-1", caption="🔧 " + "word " * 400)
    assert sent.caption is not None
    assert 1000 < len(sent.caption.encode("utf-16-le")) // 2 <= 1024
    assert sent.caption.endswith("…")


async def test_blocking_and_unblocking_the_bot_is_heard(bot: BotUnderTest) -> None:
    chat = bot.chat(BOB)
    await chat.send("/start")
    telegram = bot.telegram
    telegram.state.block(telegram.chat(BOB))
    await chat.deliver()
    user = await bot.services.storage.users.get(BOB)
    assert user is not None
    assert user.blocked_at is not None
    telegram.state.unblock(telegram.chat(BOB))
    await chat.deliver()
    user = await bot.services.storage.users.get(BOB)
    assert user is not None
    assert user.blocked_at is None
