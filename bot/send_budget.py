"""Telegram's send limits, and the one owner of how much of them is spent.

Telegram refuses a bot that puts more than about 30 messages a second into chats overall, more
than a short burst and then about one a second into one private chat, or more than 20 a minute
into one group; beyond any of them it answers 429 with `retry_after`. These limits belong to
the bot, not to a process: three cluster processes each keeping PTB's `AIORateLimiter` (30 a
second each) together sent up to 90 a second, and each of them, on any 429, halted every
request it had and gave up after three retries, losing the reply. So the budget has one
owner: in one process the memory of that process (`MemorySendBudget`), in a cluster one row
per window in PostgreSQL (`bot.storage.send_windows`), with the database's clock.

A send first takes its place in its chat's window, waits for it, then takes its place in the
bot-wide window. Each window hands out moments in order (a sliding log: at most `count` in any
`period`), so a chat over its own limit waits without holding anyone else up, and the sends
that may go now share the bot-wide rate first come, first served. A place is taken before the
call leaves and never given back (a place a failed call did not use costs a thirtieth of a
second). Once Telegram's answer is back, the send's moment moves to that answer
(`settle`): Telegram counted the message when it arrived, before it answered, so a window
counted from the answers holds on Telegram's side whatever the call's delay on its way (a busy
event loop, the network), and needs no margin for it.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

# Each window is this much longer than Telegram's: clocks tick in steps.
SAFETY_SECONDS: Final = 0.02
# A message still on its way (no answer yet) may arrive at Telegram this long after it left
# (a busy event loop, the network, a database commit): until its answer is back, it counts as
# if it had arrived then.
IN_FLIGHT_SECONDS: Final = 0.25
OVERALL_KEY: Final = "overall"


@dataclass(frozen=True, slots=True)
class SendLimits:
    """At most `overall` messages in any `overall_period` seconds, at most `per_chat` to one
    private chat in any `per_chat_period` seconds, and at most `per_group` to one group in any
    `per_group_period` (Telegram: 30 a second; 5, then 1 a second; 20 a minute)."""

    overall: int = 30
    overall_period: float = 1.0
    per_chat: int = 5
    per_chat_period: float = 5.0
    per_group: int = 20
    per_group_period: float = 60.0
    # Alert delivery's sends under way at once: enough that a round trip's latency does not
    # cap its rate.
    in_flight: int = 8


TELEGRAM = SendLimits()


@dataclass(frozen=True, slots=True)
class Window:
    """One sliding log: its key, and how many sends it takes in how long."""

    key: str
    count: int
    period: float


def chat_window(chat_id: int | str, limits: SendLimits) -> Window:
    """The window of one chat: a group's (negative ids, @usernames) or a private chat's."""
    group = isinstance(chat_id, str) or chat_id < 0
    if group:
        return Window(
            f"group:{chat_id}", limits.per_group, limits.per_group_period + SAFETY_SECONDS
        )
    return Window(f"chat:{chat_id}", limits.per_chat, limits.per_chat_period + SAFETY_SECONDS)


def overall_window(limits: SendLimits) -> Window:
    """The bot-wide window."""
    return Window(OVERALL_KEY, limits.overall, limits.overall_period + SAFETY_SECONDS)


# A message's moment in a window: when it left or was answered, and whether it is still on
# its way (no answer yet).
Moment = tuple[float, bool]


def counts_until(moment: Moment, window: Window) -> float:
    """Until when a message counts in `window`: a period after it reached Telegram, at the
    latest."""
    when, on_its_way = moment
    return when + window.period + (IN_FLIGHT_SECONDS if on_its_way else 0.0)


def next_slot(log: Sequence[Moment], now: float, window: Window) -> float:
    """The first moment, from `now` and not before the last one handed out, at which one more
    message keeps `window` at most `count` in any `period`, wherever in their allowance the
    messages on their way reach Telegram; `log` is the window's moments in order."""
    slot = max(now, log[-1][0]) if log else now
    if len(log) >= window.count:
        slot = max(slot, sorted(counts_until(m, window) for m in log)[-window.count])
    return slot


@dataclass(frozen=True, slots=True)
class Turn:
    """A message's place: its chat's window and its moment (on the budget's clock)."""

    chat: Window
    moment: float


def recent(log: Sequence[Moment], now: float, window: Window) -> list[Moment]:
    """The moments of `log` that still count at `now` (later ones, handed out, included)."""
    return [moment for moment in log if counts_until(moment, window) > now]


class SendBudget(ABC):
    """Where each send to a chat takes its turn; `wait_for_turn` returns when it may go."""

    def __init__(
        self,
        limits: SendLimits = TELEGRAM,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self._sleep = sleep

    async def wait_for_turn(self, chat_id: int | str) -> Turn:
        """Waits until a message to `chat_id` keeps every window within Telegram's limits;
        its place, to `settle` once Telegram has answered."""
        window = chat_window(chat_id, self.limits)
        slot, wait = await self.take_chat_slot(window)
        if wait > 0:
            await self._sleep(wait)
        slot, wait = await self.take_overall_slot(window, slot)
        if wait > 0:
            await self._sleep(wait)
        return Turn(window, slot)

    @abstractmethod
    async def take_chat_slot(self, window: Window) -> tuple[float, float]:
        """Takes the chat's next moment: (the moment, seconds until it)."""

    @abstractmethod
    async def take_overall_slot(self, chat: Window, chat_slot: float) -> tuple[float, float]:
        """Takes the bot-wide window's next moment from now, and moves the chat's moment
        `chat_slot` to it (the moment the message really leaves): (the moment, seconds until
        it)."""

    @abstractmethod
    async def settle(self, turn: Turn) -> None:
        """Telegram answered the message of `turn`: its moment becomes now in both windows."""


class MemorySendBudget(SendBudget):
    """The budget of a bot that runs as one process."""

    # Chats not written to for this long are forgotten at the next sweep.
    _SWEEP_EVERY: Final = 1024

    def __init__(
        self,
        limits: SendLimits = TELEGRAM,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(limits, sleep=sleep)
        self._clock = clock
        self._logs: dict[str, list[Moment]] = {}
        self._taken = 0

    def __len__(self) -> int:
        """How many windows are remembered (the bot-wide one included)."""
        return len(self._logs)

    def _take(self, window: Window, now: float) -> float:
        log = recent(self._logs.get(window.key, ()), now, window)
        slot = next_slot(log, now, window)
        log.append((slot, True))
        self._logs[window.key] = log
        return slot

    async def take_chat_slot(self, window: Window) -> tuple[float, float]:
        """Takes the chat's next moment."""
        now = self._clock()
        self._taken += 1
        if self._taken % self._SWEEP_EVERY == 0:
            self._sweep(now)
        slot = self._take(window, now)
        return slot, slot - now

    async def take_overall_slot(self, chat: Window, chat_slot: float) -> tuple[float, float]:
        """Takes the bot-wide window's next moment, and moves the chat's to it."""
        now = self._clock()
        slot = self._take(overall_window(self.limits), now)
        move(self._logs.get(chat.key, []), (chat_slot, True), (slot, True))
        return slot, slot - now

    async def settle(self, turn: Turn) -> None:
        """The message's moment becomes now, its answer's."""
        now = self._clock()
        for key in (turn.chat.key, OVERALL_KEY):
            move(self._logs.get(key, []), (turn.moment, True), (max(now, turn.moment), False))

    def _sweep(self, now: float) -> None:
        chats = (self.limits.per_group_period, self.limits.per_chat_period)
        longest = max(chats) + SAFETY_SECONDS + IN_FLIGHT_SECONDS
        for key in [k for k, log in self._logs.items() if not log or log[-1][0] <= now - longest]:
            del self._logs[key]


def move(log: list[Moment], moment: Moment, to: Moment) -> None:
    """Moves `moment` in the ordered `log` to `to`, keeping the order."""
    try:
        log.remove(moment)
    except ValueError:
        return  # forgotten already: nothing to move
    position = len(log)
    while position > 0 and log[position - 1][0] > to[0]:
        position -= 1
    log.insert(position, to)
