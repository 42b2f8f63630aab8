"""The update processor: chats run side by side, each chat's updates stay in order."""

from __future__ import annotations

import asyncio
import time

import pytest
from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, TypeHandler

from bot.concurrency import PerChatUpdateProcessor
from tests.support_telegram import FakeTelegram


def _update(update_id: int, chat_id: int, user_id: int | None = None, text: str = "x") -> Update:
    user = user_id if user_id is not None else chat_id
    return Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private" if chat_id == user else "group"},
                "from": {"id": user, "is_bot": False, "first_name": "U"},
                "text": text,
            },
        },
        None,
    )


class Recorder:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.events: list[tuple[str, int, int]] = []  # (start|end, chat, update_id)
        self.running = 0
        self.most_running = 0

    async def __call__(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        chat = update.effective_chat.id
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.events.append(("start", chat, update.update_id))
        # The first update of a chat is the slow one: later ones must still wait for it.
        await asyncio.sleep(self.delay if update.update_id % 10 == 0 else 0)
        self.events.append(("end", chat, update.update_id))
        self.running -= 1


async def _run(
    updates: list[Update], recorder: Recorder, processor: PerChatUpdateProcessor
) -> float:
    app = (
        ApplicationBuilder()
        .token("1:T")
        .request(FakeTelegram())
        .get_updates_request(FakeTelegram())
        .concurrent_updates(processor)
        .build()
    )
    app.add_handler(TypeHandler(Update, recorder))
    started = time.monotonic()
    async with app:
        await app.start()
        for update in updates:
            await app.update_queue.put(update)
        for _ in range(500):
            if sum(1 for e in recorder.events if e[0] == "end") == len(updates):
                break
            await asyncio.sleep(0.01)
        await app.stop()
    return time.monotonic() - started


def _order_in(recorder: Recorder, chat: int) -> list[tuple[str, int]]:
    return [(kind, uid) for kind, c, uid in recorder.events if c == chat]


async def test_one_chat_is_strictly_sequential_and_in_arrival_order() -> None:
    recorder = Recorder(delay=0.05)
    updates = [_update(10, 1), _update(11, 1), _update(12, 1)]
    await _run(updates, recorder, PerChatUpdateProcessor())
    assert _order_in(recorder, 1) == [
        ("start", 10),
        ("end", 10),
        ("start", 11),
        ("end", 11),
        ("start", 12),
        ("end", 12),
    ]


async def test_a_slow_chat_does_not_hold_up_the_others() -> None:
    recorder = Recorder(delay=0.3)
    updates = [_update(10 * n, n) for n in range(1, 6)] + [
        _update(10 * n + 1, n) for n in range(1, 6)
    ]
    await _run(updates, recorder, PerChatUpdateProcessor())
    assert recorder.most_running == 5
    for chat in range(1, 6):
        assert _order_in(recorder, chat) == [
            ("start", 10 * chat),
            ("end", 10 * chat),
            ("start", 10 * chat + 1),
            ("end", 10 * chat + 1),
        ]


async def test_work_in_flight_is_bounded() -> None:
    recorder = Recorder(delay=0.05)
    updates = [_update(10 * n, n) for n in range(1, 9)]
    await _run(updates, recorder, PerChatUpdateProcessor(max_running=3))
    assert recorder.most_running == 3
    assert len([e for e in recorder.events if e[0] == "end"]) == 8


async def test_one_user_across_two_chats_is_ordered_too() -> None:
    recorder = Recorder(delay=0.1)
    # The same user writes in a group (chat -5) and then privately (chat 7).
    updates = [_update(10, -5, user_id=7), _update(11, 7, user_id=7)]
    await _run(updates, recorder, PerChatUpdateProcessor())
    kinds = [(kind, uid) for kind, _c, uid in recorder.events]
    assert kinds == [("start", 10), ("end", 10), ("start", 11), ("end", 11)]


async def test_idle_chats_are_forgotten() -> None:
    processor = PerChatUpdateProcessor()
    await _run([_update(10, 1), _update(20, 2)], Recorder(delay=0), processor)
    assert processor.waiting_chats == 0


def test_keys_of_non_updates_and_bad_bounds() -> None:
    assert PerChatUpdateProcessor.keys("not an update") == []
    with pytest.raises(ValueError, match="at least 1"):
        PerChatUpdateProcessor(max_running=0)
