"""When alert delivery may send its next message: Telegram's limits, chat by chat, in turn.

Telegram refuses a bot that sends more than about 30 messages a second overall, or more than a
short burst and then about one a second to one private chat; beyond either it answers 429 with
`retry_after`. Every send waits for its turn in the bot's send budget (bot.send_budget), but
delivery keeps only a few sends under way at once: were they all a manager's seventh, eighth
and ninth alerts, each waiting a second in its chat's window, everyone else's would wait behind
them. Delivery therefore chooses its next send here, per chat and overall. Among the chats that
may send now, the one whose next alert is oldest goes first; a chat that must wait steps aside
and the others go on, so no chat's alert waits behind another chat's limit. (Strict round-robin
would be fair too, but it pushes every second alert of a recipient to the end of a large round,
where the per-chat limit then leaves the whole round waiting on those few chats.) The budget
stays the one owner of Telegram's limits across processes; the pacing here only chooses which
alert goes next.

A send counts in a window from the moment its answer came back, never from when it left: the
answer arrives after Telegram counted the message, so windows measured that way hold on
Telegram's side whatever the network's jitter.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from bot.send_budget import TELEGRAM, SendLimits


@dataclass(slots=True)
class _Chat:
    answered: deque[float] = field(default_factory=deque)  # when recent sends were answered
    held_until: float = 0.0  # a 429's retry_after


class SendPacer:
    """Which chat may be sent to next, and when; the caller tells it every send and answer.

    A chat that wants to send gives the age of its next message (any increasing number, the
    alert's id); of the chats that may send now, the oldest message goes first. A chat that
    must wait (its own window is full, or Telegram asked it to retry later) waits aside until
    it may send, and the others go on meanwhile.
    """

    def __init__(self, limits: SendLimits = TELEGRAM) -> None:
        self.limits = limits
        self._chats: dict[int, _Chat] = {}
        self._overall: deque[float] = deque()
        self._under_way = 0
        self._ready: list[tuple[int, int]] = []  # (age, chat): may send now, oldest first
        self._later: list[tuple[float, int, int]] = []  # (may send at, age, chat)

    def __len__(self) -> int:
        """How many chats wait for a turn (ready now or later)."""
        return len(self._ready) + len(self._later)

    @property
    def under_way(self) -> int:
        """Sends started and not answered yet."""
        return self._under_way

    def want(self, chat_id: int, age: int, now: float) -> None:
        """`chat_id` has a message to send, `age` old: it may go now, or waits until it may."""
        ready_at = self._ready_at(chat_id, now)
        if ready_at <= now:
            heapq.heappush(self._ready, (age, chat_id))
        else:
            heapq.heappush(self._later, (ready_at, age, chat_id))

    def take(self, now: float) -> int | None:
        """The chat whose turn it is now, counted as under way; None when none may send yet."""
        self._wake(now)
        if not self._ready or self._under_way >= self.limits.in_flight:
            return None
        if self._overall_wait(now) > 0:
            return None
        _, chat_id = heapq.heappop(self._ready)
        self._under_way += 1
        return chat_id

    def answered(self, chat_id: int, now: float) -> None:
        """Telegram answered the send to `chat_id` (a refusal counts too: it errs on the safe
        side)."""
        self._under_way -= 1
        self._chats.setdefault(chat_id, _Chat()).answered.append(now)
        self._overall.append(now)

    def hold(self, chat_id: int, until: float) -> None:
        """Telegram asked `chat_id` to wait (a 429's `retry_after`)."""
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.held_until = max(chat.held_until, until)

    def next_moment(self, now: float) -> float | None:
        """When `take` may next give a chat without a send being answered first; None when
        only an answer can free one."""
        self._wake(now)
        if self._under_way >= self.limits.in_flight:
            return None
        overall = now + self._overall_wait(now)
        if self._ready:
            return overall
        if self._later:
            return max(overall, self._later[0][0])
        return None

    def _wake(self, now: float) -> None:
        while self._later and self._later[0][0] <= now:
            _, age, chat_id = heapq.heappop(self._later)
            self.want(chat_id, age, now)

    def _ready_at(self, chat_id: int, now: float) -> float:
        chat = self._chats.get(chat_id)
        if chat is None:
            return now
        limits = self.limits
        _forget(chat.answered, now, limits.per_chat_period)
        ready_at = max(now, chat.held_until)
        if len(chat.answered) >= limits.per_chat:
            ready_at = max(ready_at, chat.answered[-limits.per_chat] + limits.per_chat_period)
        if not chat.answered and chat.held_until <= now:
            del self._chats[chat_id]  # nothing to remember: keeps the map small
        return ready_at

    def _overall_wait(self, now: float) -> float:
        limits = self.limits
        _forget(self._overall, now, limits.overall_period)
        # Sends under way will be counted when answered: they take their places now.
        over = len(self._overall) + self._under_way - limits.overall + 1
        if over <= 0:
            return 0.0
        if over > len(self._overall):
            return 0.0 if not self._overall else limits.overall_period
        return self._overall[over - 1] + limits.overall_period - now


def _forget(times: deque[float], now: float, period: float) -> None:
    while times and now - times[0] >= period:
        times.popleft()
