"""PTB persistence on the database: conversations, user and chat data survive a restart.

Every write touches one row, upserted by its key (`bot/storage/persisted.py` keeps the rows),
so its cost does not grow with the number of stored users; `get_*` read once at start. Services
live in bot_data and are never persisted. Database errors propagate: the Application hands them
to the error handler.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, MutableMapping
from typing import Any

from telegram.ext import BasePersistence, PersistenceInput

from bot.storage.db import Sessions
from bot.storage.persisted import PersistedState

DEFAULT_UPDATE_INTERVAL = 5.0

Data = dict[Any, Any]
# The shapes PTB hands over (telegram.ext._utils.types, which is private).
ConversationKey = tuple[int | str, ...]
ConversationDict = MutableMapping[ConversationKey, object]
CDCData = tuple[list[tuple[str, float, dict[str, Any]]], dict[str, str]]


class PersistenceDataError(TypeError):
    """A value handed to the persistence does not survive a JSON round trip unchanged."""


def dump_json(value: object, what: str) -> str:
    # A value that JSON would quietly change (int keys turned to strings, tuples to lists, a
    # datetime) must fail now, not come back different after a restart.
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PersistenceDataError(f"{what} is not plain JSON: {exc}") from None
    if json.loads(text) != value:
        raise PersistenceDataError(
            f"{what} would change in JSON (use string keys and lists, not tuples)"
        )
    return text


class DatabasePersistence(BasePersistence[Data, Data, Data]):
    """A BasePersistence that keeps user data, chat data and conversations in the database."""

    __slots__ = ("_rows",)

    def __init__(
        self,
        sessions: Sessions,
        *,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
    ) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=False), update_interval=update_interval
        )
        self._rows = PersistedState(sessions)

    # user_data and chat_data

    async def get_user_data(self) -> dict[int, Data]:
        """Every stored user_data, read once at start."""
        return {
            user_id: json.loads(data) for user_id, data in (await self._rows.user_data()).items()
        }

    async def get_chat_data(self) -> dict[int, Data]:
        """Every stored chat_data, read once at start."""
        return {
            chat_id: json.loads(data) for chat_id, data in (await self._rows.chat_data()).items()
        }

    async def update_user_data(self, user_id: int, data: Data) -> None:
        """Stores one user's data (one row)."""
        await self._rows.store_user_data(user_id, dump_json(data, f"user_data of user {user_id}"))

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        """Stores one chat's data (one row)."""
        await self._rows.store_chat_data(chat_id, dump_json(data, f"chat_data of chat {chat_id}"))

    async def drop_user_data(self, user_id: int) -> None:
        """Forgets one user's data."""
        await self._rows.drop_user_data(user_id)

    async def drop_chat_data(self, chat_id: int) -> None:
        """Forgets one chat's data."""
        await self._rows.drop_chat_data(chat_id)

    async def refresh_user_data(self, user_id: int, user_data: Data) -> None:
        """Nothing to do: this process is the only writer, so memory is never stale."""

    async def refresh_chat_data(self, chat_id: int, chat_data: Data) -> None:
        """Nothing to do: this process is the only writer, so memory is never stale."""

    # bot_data: services, never persisted

    async def get_bot_data(self) -> Data:
        """Always empty: bot_data holds services, which are built at start, not stored."""
        return {}

    async def update_bot_data(self, data: Data) -> None:
        """Stores nothing: bot_data is not persisted."""

    async def refresh_bot_data(self, bot_data: Data) -> None:
        """Nothing to do: bot_data is not persisted."""

    # callback data (only used when the bot runs with arbitrary_callback_data)

    async def get_callback_data(self) -> CDCData | None:
        """The stored callback data cache, or None."""
        text = await self._rows.callback_data()
        if text is None:
            return None
        buttons, queries = json.loads(text)
        return [(uuid, when, markup) for uuid, when, markup in buttons], queries

    async def update_callback_data(self, data: CDCData) -> None:
        """Stores the callback data cache (one row)."""
        buttons, queries = data
        plain = [[[uuid, when, markup] for uuid, when, markup in buttons], queries]
        await self._rows.store_callback_data(dump_json(plain, "callback data"))

    # conversations

    async def get_conversations(self, name: str) -> ConversationDict:
        """The stored states of one ConversationHandler, by conversation key."""
        conversations: dict[ConversationKey, object] = {}
        for key, state in await self._rows.conversations(name):
            conversations[tuple(json.loads(key))] = json.loads(state)
        return conversations

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        """Stores one conversation's state (one row); None ends it and deletes the row."""
        key_text = dump_json(list(key), f"conversation key of {name}")
        if new_state is None:
            await self._rows.drop_conversation(name, key_text)
            return
        if not isinstance(new_state, Hashable):
            raise PersistenceDataError(f"conversation state of {name} is not hashable")
        # A StrEnum state is written as its value and read back as that string, which compares
        # equal to the member, so ConversationHandler still finds its handlers.
        state_text = dump_json(new_state, f"conversation state of {name}")
        await self._rows.store_conversation(name, key_text, state_text)

    async def flush(self) -> None:
        """Nothing is buffered: every update is written when the Application hands it over."""
