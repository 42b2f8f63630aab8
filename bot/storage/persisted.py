"""The rows behind PTB's persistence: user_data, chat_data, conversation states and the
callback data cache, each stored as JSON text under its key.

Every write touches one row, upserted by its key, so its cost does not grow with the number of
stored users. The JSON itself (and the refusal of values JSON would change) is the
persistence's business (`bot/persistence.py`); this module only keeps the text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.sql import Executable

from bot.storage.columns import utcnow
from bot.storage.db import Sessions, upsert
from bot.storage.models import CallbackData, ChatData, ConversationState, UserData

_CALLBACK_ROW = 1


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
        if self._dialect is None:
            async with self._sessions.begin() as session:
                self._dialect = session.get_bind().dialect.name
        statement = build(self._dialect)
        if self._dialect == "sqlite":
            async with self._sqlite_writes, self._sessions.begin() as session:
                await session.execute(statement)
            return
        async with self._sessions.begin() as session:
            await session.execute(statement)

    # user_data and chat_data

    async def user_data(self) -> dict[int, str]:
        """Every stored user_data, by user."""
        async with self._sessions.begin() as session:
            rows = await session.execute(select(UserData.user_id, UserData.data))
            return {key: data for key, data in rows.all()}

    async def chat_data(self) -> dict[int, str]:
        """Every stored chat_data, by chat."""
        async with self._sessions.begin() as session:
            rows = await session.execute(select(ChatData.chat_id, ChatData.data))
            return {key: data for key, data in rows.all()}

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

    async def conversations(self, name: str) -> list[tuple[str, str]]:
        """The stored (key, state) pairs of one ConversationHandler."""
        async with self._sessions.begin() as session:
            rows = await session.execute(
                select(ConversationState.key, ConversationState.state).where(
                    ConversationState.name == name
                )
            )
            return [(key, state) for key, state in rows.all()]

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
