"""Telegram's send limits have one owner: the send budget. Against the local Bot API playing
Telegram's flood control (a burst of 5 then one a second per private chat, 30 a second
overall), every message arrives and Telegram never has to refuse one, whether one process
sends or two share the budget through PostgreSQL (a cluster); a chat over its own limit holds
up nobody else; a 429 that comes anyway holds up only the call it answered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.error import RetryAfter
from telegram.ext import ExtBot

from bot.send_budget import IN_FLIGHT_SECONDS, SAFETY_SECONDS, MemorySendBudget, SendBudget
from bot.storage.db import create_engine
from bot.storage.send_windows import SharedSendBudget
from bot.telegram_limiter import BudgetRateLimiter
from sandbox.botapi.rules import Rules
from tests.support_telegram import BOT_ID, FakeTelegram


class FakeTime:
    """A clock that moves only when a test sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


async def _send(budget: SendBudget, chat: int) -> None:
    """One message: its turn, then Telegram's answer at once."""
    await budget.settle(await budget.wait_for_turn(chat))


async def test_a_chat_past_its_burst_waits_and_holds_nobody_else_up() -> None:
    time = FakeTime()
    budget = MemorySendBudget(clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        await _send(budget, 7)
    assert time.slept == []  # Telegram's burst of five goes at once
    await _send(budget, 8)
    assert time.slept == []  # another chat is not held up by the first one's window
    await _send(budget, 7)
    assert time.slept == [5 + SAFETY_SECONDS]  # the sixth waits for the first to leave


async def test_the_thirty_first_message_of_a_second_waits() -> None:
    time = FakeTime()
    budget = MemorySendBudget(clock=time.clock, sleep=time.sleep)
    for chat in range(30):
        await _send(budget, 100 + chat)
    assert time.slept == []
    await _send(budget, 200)
    assert time.slept == [1 + SAFETY_SECONDS]


async def test_a_message_counts_from_when_telegram_answered() -> None:
    # Telegram counts a message when it arrives; a call held up on its way arrives late, and
    # the next second's messages must wait for its answer, not for when it left.
    time = FakeTime()
    budget = MemorySendBudget(clock=time.clock, sleep=time.sleep)
    turns = [await budget.wait_for_turn(100 + chat) for chat in range(30)]
    time.now += 0.4  # the answers come back 0.4 s later
    for turn in turns:
        await budget.settle(turn)
    await _send(budget, 200)
    assert time.slept == [pytest.approx(1 + SAFETY_SECONDS)]
    assert time.now == pytest.approx(1000 + 0.4 + 1 + SAFETY_SECONDS)


async def test_a_message_still_on_its_way_counts_as_arriving_late() -> None:
    time = FakeTime()
    budget = MemorySendBudget(clock=time.clock, sleep=time.sleep)
    for chat in range(30):
        await budget.wait_for_turn(100 + chat)  # no answer yet
    await budget.wait_for_turn(200)
    assert time.slept == [pytest.approx(1 + SAFETY_SECONDS + IN_FLIGHT_SECONDS)]


async def test_a_group_takes_twenty_a_minute() -> None:
    time = FakeTime()
    budget = MemorySendBudget(clock=time.clock, sleep=time.sleep)
    for _ in range(20):
        await _send(budget, -100123)
    assert time.slept == []
    await _send(budget, -100123)
    assert time.slept == [60 + SAFETY_SECONDS]


def _bot(telegram: FakeTelegram, budget: SendBudget, retried: list[str]) -> ExtBot[Any]:
    limiter = BudgetRateLimiter(budget, on_retry=retried.append)
    return ExtBot(f"{BOT_ID}:stand-in", request=telegram, rate_limiter=limiter)


async def _send_all(bot: ExtBot[Any], chats: list[int]) -> None:
    await asyncio.gather(*(bot.send_message(chat, f"Hello {chat}") for chat in chats))


def _strict() -> FakeTelegram:
    return FakeTelegram(rules=Rules(flood_control=True))


def _delivered(telegram: FakeTelegram, chat: int) -> list[str]:
    return [m.text or "" for m in telegram.bot_messages(chat)]


async def test_one_process_sends_more_than_telegram_takes_in_a_second_and_nothing_is_refused() -> (
    None
):
    telegram = _strict()
    retried: list[str] = []
    async with _bot(telegram, MemorySendBudget(), retried) as bot:
        # 40 people at once, and one of them six messages in a row.
        chats = list(range(301, 341))
        await asyncio.gather(
            _send_all(bot, chats),
            *(bot.send_message(301, f"Step {n}") for n in range(6)),
        )
    assert retried == []  # Telegram never had to refuse a message
    for chat in chats[1:]:
        assert _delivered(telegram, chat) == [f"Hello {chat}"]
    assert len(_delivered(telegram, 301)) == 7


@pytest.fixture
async def shared_engines(
    postgres_server: Any, postgres_template: str
) -> AsyncIterator[Callable[[], AsyncEngine]]:
    """Engines on one fresh PostgreSQL database, as each process of a cluster has its own."""
    name = f"send_budget_{id(postgres_server)}_{asyncio.get_running_loop().time():.0f}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    made: list[AsyncEngine] = []

    def engine() -> AsyncEngine:
        made.append(create_engine(postgres_server.url_for(name)))
        return made[-1]

    try:
        yield engine
    finally:
        for each in made:
            await each.dispose()
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_two_processes_share_one_budget(
    shared_engines: Callable[[], AsyncEngine],
) -> None:
    telegram = _strict()
    retried: list[str] = []
    first = _bot(telegram, SharedSendBudget(shared_engines()), retried)
    second = _bot(telegram, SharedSendBudget(shared_engines()), retried)
    async with first, second:
        # Each process alone stays under 30 a second; together they would not.
        await asyncio.gather(
            _send_all(first, list(range(401, 426))), _send_all(second, list(range(426, 451)))
        )
        # One chat's updates handled by one process, then the other (any process may take
        # any update): its window is the same wherever it sends from.
        for step in range(6):
            await (first if step % 2 else second).send_message(460, f"Step {step}")
    assert retried == []
    for chat in range(401, 451):
        assert _delivered(telegram, chat) == [f"Hello {chat}"]
    assert _delivered(telegram, 460) == [f"Step {n}" for n in range(6)]


async def test_a_refusal_holds_up_only_its_own_message() -> None:
    telegram = _strict()
    retried: list[str] = []
    telegram.state.faults.inject("sendMessage", count=1, retry_after=1)
    async with _bot(telegram, MemorySendBudget(), retried) as bot:
        refused = asyncio.create_task(bot.send_message(501, "Refused once"))
        await asyncio.sleep(0.05)  # the first call is refused and waits its second
        await _send_all(bot, [502, 503])
        await refused
    assert retried == ["429"]
    # The others went while 501's message waited out Telegram's second.
    order = [int(call.params["chat_id"]) for call in telegram.sent("sendMessage")]
    assert order == [501, 502, 503, 501]
    assert _delivered(telegram, 501) == ["Refused once"]


async def test_a_message_is_given_up_only_after_many_refusals() -> None:
    calls = 0

    async def refused(*_: Any, **__: Any) -> bool:
        nonlocal calls
        calls += 1
        raise RetryAfter(timedelta(seconds=0))

    retried: list[str] = []
    limiter = BudgetRateLimiter(MemorySendBudget(), on_retry=retried.append, max_retries=4)
    with pytest.raises(RetryAfter):
        await limiter.process_request(refused, (), {}, "sendMessage", {"chat_id": 1}, None)
    assert calls == 5
    assert retried == ["429"] * 4
