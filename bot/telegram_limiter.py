"""The bot's PTB rate limiter: each message waits for its turn in the send budget
(bot.send_budget), and a 429 that comes anyway holds up only the call it answered.

PTB's `AIORateLimiter` keeps its own overall window in the process and, on any 429, halts
every request of the process until the wait is over, then gives up after `max_retries`. In a
cluster that made three owners of one budget, and a reply that met its fourth 429 was lost.
Here the budget is shared (one owner), a 429 holds up only its own call, and a message is
tried again until Telegram takes it or refuses it for good, or `max_retries` 429s were met.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, Final

from telegram.error import RetryAfter, TelegramError
from telegram.ext import BaseRateLimiter

from bot.send_budget import SendBudget, Turn

logger = logging.getLogger(__name__)

# Enough that a message is lost only when Telegram keeps refusing for a minute or more (its
# waits are whole seconds), never in a burst the budget did not foresee.
MAX_RETRIES: Final = 20
# The methods that put a message in a chat or change one (Telegram's flood control counts
# them); answers to presses, chat actions and reads are not paced.
_PACED_PREFIXES: Final = ("send", "edit", "copy", "forward")
_UNPACED: Final = frozenset({"sendChatAction"})

Result = bool | dict[str, Any] | list[dict[str, Any]]


def is_paced(endpoint: str, data: dict[str, Any]) -> bool:
    """Whether a Bot API call counts towards Telegram's limits: a message to a chat."""
    return (
        data.get("chat_id") is not None
        and endpoint.startswith(_PACED_PREFIXES)
        and endpoint not in _UNPACED
    )


class BudgetRateLimiter(BaseRateLimiter[int]):
    """Paces messages by the send budget; counts each call made again after a 429."""

    def __init__(
        self,
        budget: SendBudget,
        *,
        on_retry: Callable[[str], None],
        max_retries: int = MAX_RETRIES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.budget = budget
        self._on_retry = on_retry
        self._max_retries = max_retries
        self._sleep = sleep

    async def initialize(self) -> None:
        """Nothing to set up: the budget lives as long as the bot's services."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        """Makes the call when its message's turn comes; again after each 429's wait."""
        retries = self._max_retries if rate_limit_args is None else rate_limit_args
        paced = is_paced(endpoint, data)
        for attempt in range(retries + 1):
            turn = await self.budget.wait_for_turn(data["chat_id"]) if paced else None
            try:
                result = await callback(*args, **kwargs)
            except RetryAfter as exc:
                await self._settle(turn)
                if attempt == retries:
                    logger.warning("%s: 429 %d times; giving up", endpoint, attempt + 1)
                    raise
                self._on_retry("429")
                wait = _seconds(exc.retry_after)
                logger.info("%s: Telegram asked to wait %.0f s; trying again", endpoint, wait)
                await self._sleep(wait)
                continue
            except TelegramError:
                # A refusal is an answer too (Telegram may have counted the message).
                await self._settle(turn)
                raise
            await self._settle(turn)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _settle(self, turn: Turn | None) -> None:
        # A call cut off (cancelled) is not settled: its moment stays when it left.
        if turn is not None:
            await self.budget.settle(turn)


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
