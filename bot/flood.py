"""Flood control: a user who sends updates faster than a person types is slowed down politely.

Each Telegram user has a token bucket in memory: `burst` updates at once, refilled at `rate`
per second. The first update over the limit gets one "please slow down" answer; the rest are
dropped until the bucket refills, so one user's flood costs neither Bot API calls nor vendor
calls, and other users are not touched. The handler runs in a group of its own before every
other handler and stops an update there (`ApplicationHandlerStop`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, BaseHandler, TypeHandler

from bot.metrics import mark_update
from conversations.context import ConciergeContext
from conversations.i18n import N_

logger = logging.getLogger(__name__)

FLOOD_GROUP: Final = -2
SLOW_DOWN: Final = N_(
    "You are sending messages faster than I can follow. Please wait a few seconds; "
    "I will answer what you send after that."
)


class Verdict(StrEnum):
    """What becomes of one update."""

    ALLOW = "allow"
    WARN = "warn"  # the first update over the limit: the user is told once
    DROP = "drop"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    warned: bool = False


class FloodGate:
    """Token buckets per user; `rate` 0 lets everything through."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_users: int = 10_000,
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("flood control needs rate >= 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_users = max_users
        self._buckets: dict[int, _Bucket] = {}

    def admit(self, user_id: int) -> Verdict:
        """Takes one token from the user's bucket and says what to do with the update."""
        if self._rate == 0:
            return Verdict.ALLOW
        now = self._clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[user_id] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.warned = False
            return Verdict.ALLOW
        if bucket.warned:
            return Verdict.DROP
        bucket.warned = True
        return Verdict.WARN

    def _forget_idle(self, now: float) -> None:
        # Memory stays bounded: a full bucket holds nothing a new one would not.
        if len(self._buckets) < self._max_users:
            return
        refill = self._burst / self._rate
        for user_id in [u for u, b in self._buckets.items() if now - b.at >= refill]:
            del self._buckets[user_id]
        if len(self._buckets) >= self._max_users:
            # Everyone is busy: drop the longest quiet ones rather than grow without end.
            quiet = sorted(self._buckets, key=lambda u: self._buckets[u].at)
            for user_id in quiet[: len(quiet) // 2]:
                del self._buckets[user_id]


def build_handlers(gate: FloodGate) -> list[BaseHandler[Any, ConciergeContext, Any]]:
    """The gate as a handler for its own group, before every other one."""

    async def check(update: Update, context: ConciergeContext) -> None:
        user = update.effective_user
        if user is None:
            return
        verdict = gate.admit(user.id)
        if verdict is Verdict.ALLOW:
            return
        if verdict is Verdict.WARN:
            logger.info("user %s is flooding the bot; slowing them down", user.id)
            await _slow_down(update, context)
        mark_update("throttled")
        raise ApplicationHandlerStop

    return [TypeHandler(Update, check)]


async def _slow_down(update: Update, context: ConciergeContext) -> None:
    """Tells the user once, where they will see it: a pop-up for a press, else a message."""
    text = context.t(SLOW_DOWN)
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id, text)
    except TelegramError as error:
        logger.debug("could not ask user to slow down: %s", type(error).__name__)
