"""Updates from different chats run side by side; updates from one chat (or user) run in order.

PTB either processes one update at a time, so one slow vendor call holds up every resident, or
processes them all concurrently, which lets a user's second message overtake their first and
breaks conversations. This processor does both: each update first queues on a lock per chat and
per user (FIFO, taken in a fixed order so two locks never deadlock), and only then takes one of
a bounded number of running slots, so an update waiting its turn never holds a slot that
another chat could use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# How many updates may wait (queued behind their chat's earlier ones, or for a slot) at once;
# PTB's own bound, kept large so that it never decides ordering.
MAX_PENDING = 100_000


@dataclass(slots=True)
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Concurrent across chats, in arrival order within a chat and for one user."""

    __slots__ = ("_running", "_turns")

    def __init__(self, max_running: int = 64) -> None:
        super().__init__(MAX_PENDING)
        if max_running < 1:
            raise ValueError("max_running must be at least 1")
        self._running = asyncio.Semaphore(max_running)
        self._turns: dict[tuple[str, int], _Turn] = {}

    @staticmethod
    def keys(update: object) -> list[tuple[str, int]]:
        """What an update must be ordered with: its chat and its user (sorted, no repeats)."""
        if not isinstance(update, Update):
            return []
        found: set[tuple[str, int]] = set()
        if update.effective_chat is not None:
            found.add(("chat", update.effective_chat.id))
        if update.effective_user is not None:
            found.add(("user", update.effective_user.id))
        return sorted(found)

    @contextlib.asynccontextmanager
    async def _turn(self, key: tuple[str, int]) -> AsyncIterator[None]:
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.holders += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.holders -= 1
            if turn.holders == 0:
                # Forget idle chats so memory follows the active ones, not every chat ever seen.
                del self._turns[key]

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Waits for this update's turn in its chat and user, then for a running slot."""
        async with contextlib.AsyncExitStack() as stack:
            for key in self.keys(update):
                await stack.enter_async_context(self._turn(key))
            async with self._running:
                await coroutine

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    @property
    def waiting_chats(self) -> int:
        """How many chats or users have an update running or queued (for metrics and tests)."""
        return len(self._turns)
