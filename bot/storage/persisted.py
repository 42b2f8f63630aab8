"""The rows behind PTB's persistence: user_data, chat_data, conversation states and the
callback data cache, each stored as JSON text under its key.

Every write touches the rows it names, upserted by their keys, so its cost does not grow with
the number of stored users; what one periodic flush changed is written in a few short
transactions of at most `SLICE` rows (`write`). Nothing is read whole at start: `stored_ids`
says whose state is stored and `load` reads one chat's. The JSON itself (and the refusal of
values JSON would change) is the persistence's business (`bot/persistence.py`); this module
only keeps the text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.sql import Executable

from bot.storage.columns import utcnow
from bot.storage.db import Sessions, upsert, upsert_one
from bot.storage.inbound import ChatState, read_chat_state
from bot.storage.models import CallbackData, ChatData, ConversationState, UserData

_CALLBACK_ROW = 1
# Keys per read's ... IN: well under SQLite's limit on bound values.
_CHUNK = 500
# Rows per transaction of a flush. Binding a row's parameters costs the event loop 10-30 µs,
# so a slice holds it (and SQLite's one writer) a millisecond or so. A flush after a busy
# interval has a row per active user and conversation: a thousand or more.
SLICE = 50
# The flush is background work: after each slice it lets the handlers run this long, so that
# an update running meanwhile (a few milliseconds) meets one slice, not every one of them.
SLICE_PAUSE_SECONDS = 0.005


@dataclass(slots=True)
class Changes:
    """What one flush writes: JSON text by key, None where the row goes."""

    user_data: dict[int, str | None] = field(default_factory=dict)
    chat_data: dict[int, str | None] = field(default_factory=dict)
    conversations: dict[tuple[str, str], str | None] = field(default_factory=dict)
    callback_data: str | None = None

    def __bool__(self) -> bool:
        return bool(
            self.user_data
            or self.chat_data
            or self.conversations
            or self.callback_data is not None
        )

    def updated_by(self, newer: Changes) -> Changes:
        """These changes with `newer`'s over them (what a failed write kept, under what came
        since)."""
        return Changes(
            user_data=self.user_data | newer.user_data,
            chat_data=self.chat_data | newer.chat_data,
            conversations=self.conversations | newer.conversations,
            callback_data=self.callback_data
            if newer.callback_data is None
            else newer.callback_data,
        )


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# A statement of a flush, its rows (an upsert's parameters; None when they are in the
# statement) and how many rows or keys it touches.
Step = tuple[Executable, list[dict[str, Any]] | None, int]


def _transactions(steps: Iterable[Step]) -> Iterator[list[Step]]:
    """`steps` in transactions of at most `SLICE` rows or keys (a step is never split)."""
    batch: list[Step] = []
    size = 0
    for step in steps:
        if batch and size + step[2] > SLICE:
            yield batch
            batch, size = [], 0
        batch.append(step)
        size += step[2]
    if batch:
        yield batch


def _slices(dialect: str, changes: Changes, now: datetime) -> Iterator[Step]:
    """The statements that write `changes`, each with at most `SLICE` rows (an upsert's
    parameters) or keys (a delete's, in the statement)."""
    for model, column, data in (
        (UserData, "user_id", changes.user_data),
        (ChatData, "chat_id", changes.chat_data),
    ):
        stored = [
            {column: key, "data": text, "updated_at": now}
            for key, text in data.items()
            if text is not None
        ]
        if stored:
            statement = upsert_one(
                dialect,
                model,
                (column, "data", "updated_at"),
                key=(column,),
                when_changed=("data",),
            )
            for rows in _chunks(stored, SLICE):
                yield statement, list(rows), len(rows)
        dropped = [key for key, text in data.items() if text is None]
        key_column = model.__table__.c[column]
        for keys in _chunks(dropped, SLICE):
            yield delete(model).where(key_column.in_(keys)), None, len(keys)
    states = [
        {"name": name, "key": key, "state": state, "updated_at": now}
        for (name, key), state in changes.conversations.items()
        if state is not None
    ]
    if states:
        statement = upsert_one(
            dialect,
            ConversationState,
            ("name", "key", "state", "updated_at"),
            key=("name", "key"),
        )
        for rows in _chunks(states, SLICE):
            yield statement, list(rows), len(rows)
    ended: dict[str, list[str]] = {}
    for (name, key), state in changes.conversations.items():
        if state is None:
            ended.setdefault(name, []).append(key)
    for name, keys in ended.items():
        for part in _chunks(keys, SLICE):
            yield (
                delete(ConversationState).where(
                    ConversationState.name == name, ConversationState.key.in_(part)
                ),
                None,
                len(part),
            )
    if changes.callback_data is not None:
        row = {"id": _CALLBACK_ROW, "data": changes.callback_data, "updated_at": now}
        yield upsert(dialect, CallbackData, row, key=["id"]), None, 1


class PersistedState:
    """One row per user's data, chat's data and conversation, plus the callback data cache."""

    __slots__ = ("_dialect", "_sessions", "_sqlite_writes")

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._dialect: str | None = None
        # The Application writes every changed row at once; SQLite has one writer at a time,
        # so queue them here instead of having them fight over the file lock.
        self._sqlite_writes = asyncio.Lock()

    async def _write(self, build: Callable[[str], Executable]) -> None:
        dialect = await self._dialect_name()
        statement = build(dialect)
        if dialect == "sqlite":
            async with self._sqlite_writes, self._sessions.begin() as session:
                await session.execute(statement)
            return
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def _dialect_name(self) -> str:
        if self._dialect is None:
            async with self._sessions.begin() as session:
                self._dialect = session.get_bind().dialect.name
        return self._dialect

    async def write(self, changes: Changes) -> None:
        """Writes everything one flush changed in transactions of at most `SLICE` rows, a
        statement per table and kind of change in each. The statements are built once; a
        transaction's rows are bound on the event loop, so a flush of a thousand rows never
        holds the loop (or SQLite's one writer, which the handlers' own writes wait for) for
        more than one slice at a time, and the handlers run between slices. A user_data or
        chat_data row that would not change is not rewritten."""
        if not changes:
            return
        dialect = await self._dialect_name()
        for number, transaction in enumerate(_transactions(_slices(dialect, changes, utcnow()))):
            if number:
                await asyncio.sleep(SLICE_PAUSE_SECONDS)
            async with self._sqlite_writes, self._sessions.begin() as session:
                connection = await session.connection()
                for statement, rows, _ in transaction:
                    if rows is None:
                        await connection.execute(statement)
                    else:
                        await connection.execute(statement, rows)

    # reading one chat's state when it is needed

    async def stored_ids(self) -> set[int]:
        """Every user and chat with stored state: user_data, chat_data, or a conversation
        (each id in its key)."""
        ids: set[int] = set()
        async with self._sessions.begin() as session:
            ids.update(await session.scalars(select(UserData.user_id)))
            ids.update(await session.scalars(select(ChatData.chat_id)))
            for key in await session.scalars(select(ConversationState.key).distinct()):
                ids.update(part for part in json.loads(key) if isinstance(part, int))
        return ids

    async def load(
        self, user_id: int | None, chat_id: int | None, conversation_keys: Sequence[str]
    ) -> ChatState:
        """The stored user_data, chat_data and conversation states of one update's chat and
        user, in one statement."""
        async with self._sessions.begin() as session:
            return await read_chat_state(session, user_id, chat_id, conversation_keys)

    async def conversations(self, name: str) -> list[tuple[str, str]]:
        """Every stored (key, state) pair of one ConversationHandler (to inspect what is
        stored; the bot itself reads one chat's at a time)."""
        async with self._sessions.begin() as session:
            rows = await session.execute(
                select(ConversationState.key, ConversationState.state).where(
                    ConversationState.name == name
                )
            )
            return [(key, state) for key, state in rows.all()]

    async def user_data(self) -> dict[int, str]:
        """Every stored user_data, by user (to inspect what is stored)."""
        async with self._sessions.begin() as session:
            rows = await session.execute(select(UserData.user_id, UserData.data))
            return {key: data for key, data in rows.all()}

    async def chat_data(self) -> dict[int, str]:
        """Every stored chat_data, by chat (to inspect what is stored)."""
        async with self._sessions.begin() as session:
            rows = await session.execute(select(ChatData.chat_id, ChatData.data))
            return {key: data for key, data in rows.all()}

    async def users_data(self, user_ids: Sequence[int]) -> dict[int, str]:
        """The stored user_data of these users (those that have one)."""
        found: dict[int, str] = {}
        async with self._sessions.begin() as session:
            for ids in _chunks(list(user_ids)):
                rows = await session.execute(
                    select(UserData.user_id, UserData.data).where(UserData.user_id.in_(ids))
                )
                found.update({key: data for key, data in rows.all()})
        return found

    # user_data and chat_data

    async def store_user_data(self, user_id: int, text: str) -> None:
        """Keeps one user's data."""
        row = {"user_id": user_id, "data": text, "updated_at": utcnow()}
        await self._write(lambda dialect: upsert(dialect, UserData, row, key=["user_id"]))

    async def store_chat_data(self, chat_id: int, text: str) -> None:
        """Keeps one chat's data."""
        row = {"chat_id": chat_id, "data": text, "updated_at": utcnow()}
        await self._write(lambda dialect: upsert(dialect, ChatData, row, key=["chat_id"]))

    async def drop_user_data(self, user_id: int) -> None:
        """Forgets one user's data."""
        await self._write(lambda _: delete(UserData).where(UserData.user_id == user_id))

    async def drop_chat_data(self, chat_id: int) -> None:
        """Forgets one chat's data."""
        await self._write(lambda _: delete(ChatData).where(ChatData.chat_id == chat_id))

    # callback data

    async def callback_data(self) -> str | None:
        """The stored callback data cache, or None."""
        async with self._sessions.begin() as session:
            row = await session.get(CallbackData, _CALLBACK_ROW)
            return None if row is None else row.data

    async def store_callback_data(self, text: str) -> None:
        """Keeps the callback data cache (one row)."""
        row = {"id": _CALLBACK_ROW, "data": text, "updated_at": utcnow()}
        await self._write(lambda dialect: upsert(dialect, CallbackData, row, key=["id"]))

    # conversations

    async def store_conversation(self, name: str, key: str, state: str) -> None:
        """Keeps one conversation's state."""
        row = {"name": name, "key": key, "state": state, "updated_at": utcnow()}
        await self._write(
            lambda dialect: upsert(dialect, ConversationState, row, key=["name", "key"])
        )

    async def drop_conversation(self, name: str, key: str) -> None:
        """Forgets one conversation (it ended)."""
        await self._write(
            lambda _: delete(ConversationState).where(
                ConversationState.name == name, ConversationState.key == key
            )
        )
