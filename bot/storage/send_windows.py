"""Cluster mode's send budget (bot.send_budget) in PostgreSQL: one row per window, the bot-wide
one and one per chat, each holding the moments it handed out as seconds on the database's
clock (every process reads the same clock, whatever its machine's says).

A chat's turn locks only its own row; the bot-wide turn locks the chat's row and then the
bot-wide one, always in that order (keys sort "chat:"/"group:" before "overall"), so two turns
never wait on each other in a circle. Each turn is one short transaction: Telegram's limits
cap the turns at some 30 a second across the cluster, and so their cost to the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.send_budget import (
    OVERALL_KEY,
    TELEGRAM,
    Moment,
    SendBudget,
    SendLimits,
    Turn,
    Window,
    move,
    next_slot,
    overall_window,
    recent,
)
from bot.storage.models import SendWindow

# Seconds since the epoch on the database's clock, as the transaction runs.
_NOW = func.extract("epoch", func.clock_timestamp())


class SharedSendBudget(SendBudget):
    """The send budget every process of a cluster shares."""

    def __init__(self, engine: AsyncEngine, limits: SendLimits = TELEGRAM) -> None:
        super().__init__(limits)
        self._engine = engine
        self._overall_made = False  # the bot-wide row, made once by whichever process is first

    async def take_chat_slot(self, window: Window) -> tuple[float, float]:
        """Takes the chat's next moment (its row is made on its first message)."""
        taken = (
            postgresql.insert(SendWindow)
            .values(key=window.key, moments=[])
            .on_conflict_do_update(index_elements=["key"], set_={"updated_at": func.now()})
            .returning(SendWindow.moments, _NOW)
        )
        async with self._engine.begin() as connection:
            stored, now = (await connection.execute(taken)).one()
            log = recent(_moments(stored), float(now), window)
            slot = next_slot(log, float(now), window)
            await _store(connection, window.key, [*log, (slot, True)])
        return slot, slot - float(now)

    async def take_overall_slot(self, chat: Window, chat_slot: float) -> tuple[float, float]:
        """Takes the bot-wide window's next moment, and moves the chat's to it."""
        overall = overall_window(self.limits)
        if not self._overall_made:
            # Committed before any turn reads it: a turn of this process that ran beside the
            # transaction making it would not see the row, and its place would be lost.
            async with self._engine.begin() as connection:
                await connection.execute(
                    postgresql.insert(SendWindow)
                    .values(key=OVERALL_KEY, moments=[])
                    .on_conflict_do_nothing(index_elements=["key"])
                )
            self._overall_made = True
        async with self._engine.begin() as connection:
            logs, now = await _locked(connection, chat)
            log = recent(logs.get(OVERALL_KEY, []), now, overall)
            slot = next_slot(log, now, overall)
            await _store(connection, OVERALL_KEY, [*log, (slot, True)])
            if chat.key in logs:
                chat_log = logs[chat.key]
                move(chat_log, (chat_slot, True), (slot, True))
                await _store(connection, chat.key, chat_log)
        return slot, slot - now

    async def settle(self, turn: Turn) -> None:
        """Moves the message's moment to now, its answer's, in both windows."""
        async with self._engine.begin() as connection:
            logs, now = await _locked(connection, turn.chat)
            for key, log in logs.items():
                move(log, (turn.moment, True), (max(now, turn.moment), False))
                await _store(connection, key, log)

    async def forget_before(self, before: datetime) -> None:
        """Drops the windows of chats not written to since `before` (their moments have long
        stopped counting)."""
        async with self._engine.begin() as connection:
            await connection.execute(
                delete(SendWindow).where(
                    SendWindow.key != OVERALL_KEY, SendWindow.updated_at < before
                )
            )


async def _locked(
    connection: AsyncConnection, chat: Window
) -> tuple[dict[str, list[Moment]], float]:
    """The chat's and the bot-wide window's moments, locked in that order, and the time."""
    rows = await connection.execute(
        select(SendWindow.key, SendWindow.moments, _NOW)
        .where(SendWindow.key.in_([chat.key, OVERALL_KEY]))
        .order_by(SendWindow.key)
        .with_for_update()
    )
    logs: dict[str, list[Moment]] = {}
    now = 0.0
    for key, stored, now_at_row in rows:
        logs[key] = _moments(stored)
        now = float(now_at_row)
    return logs, now


def _moments(stored: list[Any]) -> list[Moment]:
    """A window's moments as stored: JSON pairs [when, on its way]."""
    return [(float(when), bool(on_its_way)) for when, on_its_way in stored]


async def _store(connection: AsyncConnection, key: str, moments: list[Moment]) -> None:
    await connection.execute(
        update(SendWindow)
        .where(SendWindow.key == key)
        .values(moments=moments, updated_at=func.now())
    )
