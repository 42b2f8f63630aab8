"""Alerts to many people at once, against Telegram's flood control as the local Bot API plays it
(per private chat a burst of 5, then one a second; 30 a second overall): every alert arrives,
Telegram never has to refuse one, each person's alerts arrive in the order they happened, and
a person with many alerts holds up nobody else's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette

from bot.alert_delivery import AlertDelivery
from bot.alert_kinds import MSG_REPAIR_STATE, Alert, AlertKind
from bot.storage.models import AlertStatus
from sandbox.botapi.rules import Rules
from tests.support_bot import BotUnderTest, running_bot
from tests.support_telegram import FakeTelegram

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
BUSY = 501  # a manager, say, who gets one alert per repair of a busy morning
OTHERS = list(range(601, 613))
BUSY_ALERTS = 8  # more than Telegram's burst to one chat


@pytest.fixture
async def strict_bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    telegram = FakeTelegram(rules=Rules(flood_control=True))
    async with running_bot(database_url, sandbox_app, telegram=telegram) as running:
        yield running


def _alert(recipient: int, number: int) -> Alert:
    values = {"description": f"Repair {number}", "state": "closed", "feedback": ""}
    return Alert(
        f"fanout:{recipient}:{number}",
        AlertKind.REPAIR_STATE,
        recipient,
        MSG_REPAIR_STATE,
        values,
        urgent=True,
    )


async def _people(bot: BotUnderTest, *people: int) -> None:
    for person in people:
        bot.telegram.chat(person)
        await bot.services.storage.users.get_or_create(person)


def _arrived(bot: BotUnderTest) -> list[tuple[int, str]]:
    """Every message the bot sent, in the order it sent them: (chat, text)."""
    return [(int(c.params["chat_id"]), c.text or "") for c in bot.telegram.sent("sendMessage")]


async def _statuses(bot: BotUnderTest) -> list[AlertStatus]:
    rows = await bot.services.storage.alerts.pending(after=0, limit=1000)
    return [row.status for row in rows]


async def test_a_person_with_many_alerts_holds_up_nobody_and_telegram_refuses_none(
    strict_bot: BotUnderTest,
) -> None:
    bot = strict_bot
    await _people(bot, BUSY, *OTHERS)
    delivery = AlertDelivery(bot.services)
    # The busy person's alerts happened first, side by side, as a busy morning records them.
    for number in range(BUSY_ALERTS):
        assert await delivery.record(_alert(BUSY, number), NOW)
    for person in OTHERS:
        assert await delivery.record(_alert(person, 0), NOW)

    await delivery.deliver(bot.app, NOW)

    # Telegram refused nothing: one call per alert, every one of them taken.
    arrived = _arrived(bot)
    assert len(arrived) == BUSY_ALERTS + len(OTHERS)
    assert sum(len(bot.telegram.bot_messages(person)) for person in (BUSY, *OTHERS)) == len(
        arrived
    )
    assert await _statuses(bot) == []
    # The busy person's alerts arrive in the order they happened.
    busy = [text for chat_id, text in arrived if chat_id == BUSY]
    assert [f"Repair {n}" in text for n, text in enumerate(busy)] == [True] * BUSY_ALERTS
    # Everyone else heard before the busy person's alerts beyond Telegram's burst: nobody
    # waited for that one chat's limit.
    positions = [chat_id for chat_id, _ in arrived]
    sixth_to_busy = [i for i, chat_id in enumerate(positions) if chat_id == BUSY][5]
    assert set(positions[:sixth_to_busy]) == {BUSY, *OTHERS}


async def test_a_chat_telegram_asks_to_wait_waits_alone_and_then_gets_its_alert(
    strict_bot: BotUnderTest,
) -> None:
    bot = strict_bot
    first, *rest = OTHERS[:4]
    await _people(bot, first, *rest)
    delivery = AlertDelivery(bot.services)
    for person in (first, *rest):
        await delivery.record(_alert(person, 0), NOW)
    bot.telegram.state.faults.inject("sendMessage", count=1, retry_after=1)

    await delivery.deliver(bot.app, NOW)

    # The refused chat waited out its retry_after alone; the others went on meanwhile (side by
    # side, so in no set order among themselves), and its alert still went in this round, once.
    arrived = [chat_id for chat_id, _ in _arrived(bot)]
    assert (arrived[0], sorted(arrived[1:-1]), arrived[-1]) == (first, sorted(rest), first)
    assert [len(bot.telegram.bot_messages(person)) for person in (first, *rest)] == [1] * 4
    assert await _statuses(bot) == []
