"""A press that waits in cluster mode is answered within Telegram's window, exactly once, and
its handler still reaches the user when it runs.

Telegram here is the strict stand-in (`tests/support_telegram.py`) on a clock the test moves:
a press is made, the test waits until it is answered (or gives up), and only then moves
Telegram's clock past the press's answer window and lets the work it waited behind finish. An
answer the bot gives later than that is refused as Telegram refuses it ("query is too old"),
which fails the test; so does a second answer. Nothing races the window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.harness import Community, prepare_community
from conversations import callbacks
from sandbox.botapi.rules import SENDING_METHODS, Rules
from sandbox.botapi.state import Chat as BotApiChat
from tests.cluster.inprocess import Bot, cluster_bot, until
from tests.conftest import PostgresServer
from tests.support_telegram import FakeTelegram

WINDOW = 2.0  # seconds Telegram keeps a press answerable, on the test's clock
SKIP = callbacks.build("repair", "skip")  # no photos
WHEN = callbacks.build("repair", "when", "1m")


class SlowTelegram(FakeTelegram):
    """Telegram on a clock the test moves, whose messages to a chat can be held back: the
    handler sending them is slow, and its chat's (or its process's) next updates wait."""

    def __init__(self) -> None:
        super().__init__(rules=Rules(answer_window=WINDOW))
        self.offset = 0.0
        self.state.clock = lambda: time.time() + self.offset
        self.held: dict[int, asyncio.Event] = {}

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        data = args[0] if args else kwargs.get("request_data")
        chat = data.parameters.get("chat_id") if data is not None else None
        gate = self.held.get(int(chat)) if chat is not None else None
        if gate is not None and url.rsplit("/", 1)[-1].lower() in SENDING_METHODS:
            await gate.wait()
        return await super().do_request(url, method, *args, **kwargs)

    def answers(self, query_id: str) -> list[str | None]:
        """The answers the bot gave this press (their texts)."""
        return [
            call.text
            for call in self.sent("answerCallbackQuery")
            if str(call.params.get("callback_query_id")) == query_id
        ]

    def answered(self, query_id: str) -> bool:
        """Whether Telegram took an answer to this press."""
        return self.state.callbacks[query_id].answered

    def buttons_to(self, chat_id: int) -> list[str]:
        """The callback data of every button the chat was shown, oldest first."""
        return [
            str(button["callback_data"])
            for call in self.replies()
            if int(call.params["chat_id"]) == chat_id
            for row in call.buttons
            for button in row
            if "callback_data" in button
        ]


@pytest.fixture
async def community(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> AsyncIterator[tuple[Community, str]]:
    name = f"cluster_presses_{id(tmp_path)}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    database_url = postgres_server.url_for(name)
    try:
        yield await prepare_community(tmp_path, 2, database_url=database_url), database_url
    finally:
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _say(bot: Bot, telegram: SlowTelegram, chat: BotApiChat, text: str) -> None:
    """The user writes `text`; returns once the bot handled it."""
    telegram.state.user_sends_text(chat, text)
    for payload in telegram.take_updates():
        await bot.handle(payload)


async def _at_photos(bot: Bot, telegram: SlowTelegram, resident: int) -> BotApiChat:
    """The resident is in a repair report, asked for photos (a Skip button under it)."""
    chat = telegram.chat(resident)
    await _say(bot, telegram, chat, "/repair")
    await _say(bot, telegram, chat, "The bathroom extractor fan rattles and stops")
    assert SKIP in telegram.buttons_to(resident)
    return chat


def _press(telegram: SlowTelegram, chat: BotApiChat, data: str) -> tuple[str, dict[str, Any]]:
    """The user presses the newest button carrying `data`: its query id, and the update."""
    message = next(
        m
        for m in reversed(list(chat.messages.values()))
        if m.from_bot
        and any(b.get("callback_data") == data for row in m.inline_keyboard or [] for b in row)
    )
    query_id = telegram.state.user_presses(chat, message.message_id, data)
    (payload,) = telegram.take_updates()
    return query_id, payload


async def _answered_in_time(
    bot: Bot, telegram: SlowTelegram, query_id: str, held: asyncio.Event
) -> None:
    """Waits for the press's answer, then lets Telegram's window pass and the held work go:
    the press is handled after its window, as a press behind slow work is."""
    try:
        await until(lambda: bool(telegram.answers(query_id)), "answer to the waiting press")
    finally:
        telegram.offset += WINDOW + 1
        held.set()
    await _all_handled(bot)


async def _all_handled(bot: Bot) -> None:
    async with asyncio.timeout(20):
        while True:
            if not (await bot.inbound.counts())[0]:
                return
            await asyncio.sleep(0.02)


async def test_a_press_behind_its_chats_slow_update_is_answered_at_once_and_only_once(
    community: tuple[Community, str],
) -> None:
    prepared, database_url = community
    resident = prepared.residents[0].telegram_id
    telegram = SlowTelegram()
    async with cluster_bot(database_url, prepared.sandbox, request=telegram) as bot:
        bot.dispatcher.start()
        chat = await _at_photos(bot, telegram, resident)

        # A message whose handler is slow, then a press on the photos prompt behind it.
        held = telegram.held[resident] = asyncio.Event()
        telegram.state.user_sends_text(chat, "It is the one above the bath")
        for payload in telegram.take_updates():
            await bot.dispatcher.receive(payload)
        query_id, payload = _press(telegram, chat, SKIP)
        await bot.dispatcher.receive(payload)
        await _answered_in_time(bot, telegram, query_id, held)

        assert telegram.answered(query_id)
        assert telegram.answers(query_id) == ["⏳ One moment…"]
        # The press's own handler ran after the window and still reached the resident.
        assert WHEN in telegram.buttons_to(resident)


async def test_a_press_waiting_for_a_busy_process_is_answered_once_in_its_language(
    community: tuple[Community, str],
) -> None:
    prepared, database_url = community
    resident, other = (r.telegram_id for r in prepared.residents[:2])
    telegram = SlowTelegram()
    telegram.chat(resident, language_code="zh-hans")
    async with cluster_bot(database_url, prepared.sandbox, request=telegram, max_running=1) as bot:
        bot.dispatcher.start()
        chat = await _at_photos(bot, telegram, resident)
        # Another chat's slow update takes the process's one place.
        held = telegram.held[other] = asyncio.Event()
        telegram.state.user_sends_text(telegram.chat(other), "/repair")
        (payload,) = telegram.take_updates()
        await bot.dispatcher.receive(payload)
        await until(lambda: bot.dispatcher.running_chats == 1, "the other chat under way")

        # Nothing of its own chat is ahead of this press: it waits for the process.
        query_id, payload = _press(telegram, chat, SKIP)
        await bot.dispatcher.receive(payload)
        await _answered_in_time(bot, telegram, query_id, held)

        assert telegram.answered(query_id)
        assert telegram.answers(query_id) == ["⏳ 请稍候…"]
        assert WHEN in telegram.buttons_to(resident)


class Later:
    """A process's clock, `offset` ahead of real time."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_a_press_that_starts_after_its_window_gets_no_doomed_answer(
    community: tuple[Community, str],
) -> None:
    prepared, database_url = community
    resident = prepared.residents[0].telegram_id
    telegram = SlowTelegram()
    later = Later()
    async with (
        cluster_bot(database_url, prepared.sandbox, request=telegram) as first,
        cluster_bot(database_url, prepared.sandbox, request=telegram, clock=later) as second,
    ):
        first.dispatcher.start()
        chat = await _at_photos(first, telegram, resident)
        # The process that takes the press from the webhook stores it and goes.
        await first.dispatcher.stop()
        query_id, payload = _press(telegram, chat, SKIP)
        await first.dispatcher.receive(payload)

        # The next process starts it after Telegram stopped taking answers to it.
        telegram.offset += 20
        later.offset = timedelta(seconds=20)
        second.dispatcher.start()
        await _all_handled(second)

        assert telegram.answers(query_id) == []
        assert WHEN in telegram.buttons_to(resident)
