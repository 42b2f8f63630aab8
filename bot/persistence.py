"""PTB persistence on the database: conversations, user and chat data survive a restart.

Every write touches the rows it names, upserted by their keys (`bot/storage/persisted.py` keeps
the rows), so its cost does not grow with the number of stored users. What an update or a job
changed is taken in as JSON text when it ends (`keep`, from `PersistentApplication`'s override
of PTB's private `_mark_for_persistence_update`), so the periodic flush copies nothing on the
event loop and writes only text, a few short transactions at a time (`flushing`). Services live
in bot_data and are never persisted. Database errors propagate: the Application hands them to
the error handler.

Nothing is read whole at start. PTB would hold every stored conversation, user_data and
chat_data in memory from the first second, so memory and start-up grew with everyone who ever
wrote. At start only the ids with stored state are read; a chat's state is read into the
Application's memory when that chat's first update comes (`load_for`, through the same
`ChatStateBridge` cluster mode loads every update with), and a user's data when something
outside their updates needs it (`load_users`: alert settings, the blocked flag). PTB has
supported hooks for the first part only: `refresh_user_data` and `refresh_chat_data` run per
update, but a ConversationHandler reads its states from the dict `get_conversations` filled at
start and asks nothing per update, so the bridge writes into that dict.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Hashable, Iterable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar

from telegram import Update
from telegram.ext import Application, BasePersistence, Job, PersistenceInput
from telegram.ext._handlers.conversationhandler import PendingState
from telegram.ext._utils.trackingdict import TrackingDict

from bot.storage.db import Sessions
from bot.storage.persisted import Changes, PersistedState

if TYPE_CHECKING:
    from bot.cluster import ChatStateBridge

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


def conversation_key(key: ConversationKey) -> str:
    """A conversation key as it is stored: its JSON list."""
    return dump_json(list(key), "conversation key")


def _plain_text(data: Data) -> str | None:
    """`data` as `dump_json` would write it, unchecked (to compare, not to store); None when
    JSON cannot say it."""
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


# The changes of the flush running in this task (and the tasks PTB gathers it into), if any.
_FLUSHING: ContextVar[Changes | None] = ContextVar("concierge_flushing", default=None)
# The user_data and chat_data of the update this task handles as they were before its handlers
# ran: (user id, JSON text), (chat id, JSON text).
Before = tuple[tuple[int, str | None] | None, tuple[int, str | None] | None]
_BEFORE: ContextVar[tuple[Update, Before] | None] = ContextVar("concierge_before", default=None)


def _keep_data(
    pending: dict[int, str | None],
    data: Mapping[int, Data],
    key: int | None,
    was: tuple[int, str | None] | None,
    what: str,
) -> list[int]:
    """Puts `data[key]` in `pending` as JSON text unless it is still `was`; returns [key] when
    JSON cannot hold it."""
    if key is None:
        return []
    current = data[key]
    if was is not None and was[0] == key and was[1] is not None and _plain_text(current) == was[1]:
        return []
    try:
        pending[key] = dump_json(current, f"{what} of {key}")
    except PersistenceDataError:
        return [key]
    return []


class DatabasePersistence(BasePersistence[Data, Data, Data]):
    """A BasePersistence that keeps user data, chat data and conversations in the database."""

    # Whether what an update or a job left is taken in as JSON text when it ends (`keep`) and
    # written at the next periodic flush. Cluster mode's dispatcher writes each update's state
    # itself, and its persistence writes nothing on a timer.
    keeps_changes: ClassVar[bool] = True

    __slots__ = ("_bridge", "_pending", "_rows", "_unloaded_chats", "_unloaded_users")

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
        # Whose stored state is not in memory yet: chats (their chat_data and conversations)
        # and users (their user_data). Filled at start, emptied as they come.
        self._unloaded_chats: set[int] = set()
        self._unloaded_users: set[int] = set()
        self._bridge: ChatStateBridge | None = None
        # What updates and jobs left since the last flush, as JSON text (`keep`).
        self._pending = Changes()

    @property
    def rows(self) -> PersistedState:
        """The stored rows (what `ChatStateBridge` loads a chat from)."""
        return self._rows

    # loading when needed

    async def load_for(
        self, update: Update, application: Application[Any, Any, Any, Any, Any, Any]
    ) -> None:
        """Reads the stored state of the update's chat and user into the Application's memory
        the first time either comes (one statement); afterwards memory is the truth, as this
        process is the only writer."""
        chat, user = update.effective_chat, update.effective_user
        chat_new = chat is not None and chat.id in self._unloaded_chats
        user_new = user is not None and user.id in self._unloaded_users
        if not (chat_new or user_new):
            return
        # Taken off first: another update of the same user must not load over this one's.
        if chat is not None:
            self._unloaded_chats.discard(chat.id)
        if user is not None:
            self._unloaded_users.discard(user.id)
        if self._bridge is None:
            # Built at the first update, when every flow is registered; the cluster module
            # builds on this one, hence the late import.
            from bot.cluster import ChatStateBridge

            self._bridge = ChatStateBridge(application, self._rows)
        kept = None if user_new or user is None else dict(application.user_data[user.id])
        await self._bridge.load(update)
        if kept is not None and user is not None:
            # The user's data was loaded before (for an alert) and may have changed since.
            data = application.user_data[user.id]
            data.clear()
            data.update(kept)

    async def load_users(
        self, application: Application[Any, Any, Any, Any, Any, Any], user_ids: Iterable[int]
    ) -> None:
        """Reads the stored user_data of these users into memory where it is not yet."""
        wanted = sorted({user_id for user_id in user_ids if user_id in self._unloaded_users})
        if not wanted:
            return
        stored = await self._rows.users_data(wanted)
        self._unloaded_users.difference_update(wanted)
        for user_id, text in stored.items():
            application.user_data[user_id].update(json.loads(text))

    # what an update or a job left, taken in when it ends

    def before(
        self, update: Update, application: Application[Any, Any, Any, Any, Any, Any]
    ) -> Before:
        """The update's user_data and chat_data before its handlers run, as text: what `keep`
        compares with, so that an update that changed neither writes neither."""
        user, chat = update.effective_user, update.effective_chat
        return (
            None if user is None else (user.id, _plain_text(application.user_data[user.id])),
            None if chat is None else (chat.id, _plain_text(application.chat_data[chat.id])),
        )

    def keep(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        *,
        user_id: int | None,
        chat_id: int | None,
        before: Before | None,
    ) -> tuple[list[int], list[int]]:
        """Takes in what an update or a job left for its user and chat: their data as JSON
        text, where it differs from `before` (for a job, unknown: always). Text does not change
        after, so nothing is deep-copied, and the work is the ending update's own few
        microseconds instead of a thousand updates' at once at the flush. Returns the user and
        chat ids whose data JSON cannot hold unchanged, for PTB's flush to hand over: it fails
        there, to the error handler, as every persistence error does."""
        was_user, was_chat = before if before is not None else (None, None)
        failed_users = _keep_data(
            self._pending.user_data, application.user_data, user_id, was_user, "user_data"
        )
        failed_chats = _keep_data(
            self._pending.chat_data, application.chat_data, chat_id, was_chat, "chat_data"
        )
        return failed_users, failed_chats

    def keep_conversations(
        self, states: Mapping[str, TrackingDict[ConversationKey, object]]
    ) -> None:
        """Takes in every conversation state written since the last call (PTB's dicts note
        each write). A state JSON cannot hold, or a non-blocking handler's unresolved one, is
        noted again for PTB's flush, which resolves it and hands it over."""
        for name, conversations in states.items():
            for key, state in conversations.pop_accessed_write_items():
                if state is TrackingDict.DELETED:
                    self._pending.conversations[(name, conversation_key(key))] = None
                    continue
                if isinstance(state, PendingState) or not isinstance(state, Hashable):
                    conversations.mark_as_accessed(key)
                    continue
                try:
                    text = dump_json(state, f"conversation state of {name}")
                except PersistenceDataError:
                    conversations.mark_as_accessed(key)
                    continue
                self._pending.conversations[(name, conversation_key(key))] = text

    # what is stored, whole (for checks and tools; the bot reads a chat at a time)

    async def stored_user_data(self) -> dict[int, Data]:
        """Every stored user_data."""
        return {key: json.loads(text) for key, text in (await self._rows.user_data()).items()}

    async def stored_chat_data(self) -> dict[int, Data]:
        """Every stored chat_data."""
        return {key: json.loads(text) for key, text in (await self._rows.chat_data()).items()}

    async def stored_conversations(self, name: str) -> ConversationDict:
        """Every stored state of one ConversationHandler, by conversation key."""
        return {
            tuple(json.loads(key)): json.loads(state)
            for key, state in await self._rows.conversations(name)
        }

    # user_data and chat_data

    async def get_user_data(self) -> dict[int, Data]:
        """Nothing at start: notes whose state is stored, to read it when they come."""
        stored = await self._rows.stored_ids()
        self._unloaded_chats = set(stored)
        self._unloaded_users = stored
        return {}

    async def get_chat_data(self) -> dict[int, Data]:
        """Nothing at start: a chat's data is read with its first update."""
        return {}

    async def update_user_data(self, user_id: int, data: Data) -> None:
        """Stores one user's data (one row)."""
        text = dump_json(data, f"user_data of user {user_id}")
        changes = _FLUSHING.get()
        if changes is not None:
            changes.user_data[user_id] = text
            return
        await self._rows.store_user_data(user_id, text)

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        """Stores one chat's data (one row)."""
        text = dump_json(data, f"chat_data of chat {chat_id}")
        changes = _FLUSHING.get()
        if changes is not None:
            changes.chat_data[chat_id] = text
            return
        await self._rows.store_chat_data(chat_id, text)

    async def drop_user_data(self, user_id: int) -> None:
        """Forgets one user's data."""
        changes = _FLUSHING.get()
        if changes is not None:
            changes.user_data[user_id] = None
            return
        await self._rows.drop_user_data(user_id)

    async def drop_chat_data(self, chat_id: int) -> None:
        """Forgets one chat's data."""
        changes = _FLUSHING.get()
        if changes is not None:
            changes.chat_data[chat_id] = None
            return
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
        text = dump_json(plain, "callback data")
        changes = _FLUSHING.get()
        if changes is not None:
            changes.callback_data = text
            return
        await self._rows.store_callback_data(text)

    # conversations

    async def get_conversations(self, name: str) -> ConversationDict:
        """Nothing at start: a chat's conversations are read with its first update."""
        return {}

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        """Stores one conversation's state (one row); None ends it and deletes the row."""
        key_text = conversation_key(key)
        changes = _FLUSHING.get()
        if new_state is None:
            if changes is not None:
                changes.conversations[(name, key_text)] = None
                return
            await self._rows.drop_conversation(name, key_text)
            return
        if not isinstance(new_state, Hashable):
            raise PersistenceDataError(f"conversation state of {name} is not hashable")
        # A StrEnum state is written as its value and read back as that string, which compares
        # equal to the member, so ConversationHandler still finds its handlers.
        state_text = dump_json(new_state, f"conversation state of {name}")
        if changes is not None:
            changes.conversations[(name, key_text)] = state_text
            return
        await self._rows.store_conversation(name, key_text, state_text)

    @asynccontextmanager
    async def flushing(self) -> AsyncIterator[None]:
        """Collects what updates and jobs left since the last flush (`keep`) and every write
        the Application hands over inside the block (PTB's periodic flush gathers them; they
        are newer, so they win), and writes them when it ends. Should the write fail, what it
        held is kept for the next flush, under anything newer."""
        changes = self._pending
        self._pending = Changes()
        token = _FLUSHING.set(changes)
        try:
            yield
        finally:
            _FLUSHING.reset(token)
        try:
            await self._rows.write(changes)
        except BaseException:
            self._pending = changes.updated_by(self._pending)
            raise

    async def flush(self) -> None:
        """Writes what updates and jobs left after the Application's last flush."""
        async with self.flushing():
            pass


class PersistentApplication(Application[Any, Any, Any, Any, Any, Any]):
    """An Application whose `DatabasePersistence` reads a chat's stored state when the chat's
    first update comes (before any handler looks at it) and writes each periodic flush in one
    transaction. With another persistence it is PTB's Application."""

    __slots__ = ()

    async def process_update(self, update: object) -> None:
        """Processes `update` with its chat's stored state in memory."""
        persistence = self.persistence
        if not (isinstance(persistence, DatabasePersistence) and isinstance(update, Update)):
            await super().process_update(update)
            return
        await persistence.load_for(update, self)
        if not persistence.keeps_changes:
            await super().process_update(update)
            return
        token = _BEFORE.set((update, persistence.before(update, self)))
        try:
            await super().process_update(update)
        finally:
            _BEFORE.reset(token)

    def _mark_for_persistence_update(
        self, *, update: object | None = None, job: Job[Any] | None = None
    ) -> None:
        """PTB calls this private method when an update's handlers or a job have ended. It
        marks their user and chat, so that the next flush deep-copies the whole user_data and
        chat_data of every one marked, on the event loop, all at once: a handler waiting then
        waited for a thousand copies. Here what they left is taken in as JSON text at once
        instead, only what changed, and the flush has only text to write (see
        docs/architecture.md, "PTB's persistence")."""
        persistence = self.persistence
        if not (isinstance(persistence, DatabasePersistence) and persistence.keeps_changes):
            super()._mark_for_persistence_update(update=update, job=job)
            return
        user_id = chat_id = None
        before: Before | None = None
        if isinstance(update, Update):
            user, chat = update.effective_user, update.effective_chat
            user_id = None if user is None else user.id
            chat_id = None if chat is None else chat.id
            handling = _BEFORE.get()
            if handling is not None and handling[0] is update:
                before = handling[1]
        elif job is not None:
            user_id, chat_id = job.user_id, job.chat_id
            timed_out = getattr(job.data, "update", None)
            if user_id is None and chat_id is None and isinstance(timed_out, Update):
                # A conversation's time-out: its handlers ran on the update that began the
                # wait, and may have changed that user's data (a prompt's buttons taken off).
                user, chat = timed_out.effective_user, timed_out.effective_chat
                user_id = None if user is None else user.id
                chat_id = None if chat is None else chat.id
        failed_users, failed_chats = persistence.keep(
            self, user_id=user_id, chat_id=chat_id, before=before
        )
        if failed_users or failed_chats:
            self.mark_data_for_update_persistence(chat_ids=failed_chats, user_ids=failed_users)
        persistence.keep_conversations(self._conversation_handler_conversations)

    async def update_persistence(self) -> None:
        """Writes what updates and jobs left since the last flush, with what the Application
        hands over itself (data marked by hand, dropped data, the callback data cache)."""
        persistence = self.persistence
        if not isinstance(persistence, DatabasePersistence):
            await super().update_persistence()
            return
        try:
            async with persistence.flushing():
                await super().update_persistence()
        except Exception as error:  # as PTB does with each write's error
            await self.process_error(update=None, error=error)


async def load_users(
    application: Application[Any, Any, Any, Any, Any, Any], user_ids: Iterable[int]
) -> None:
    """Makes sure these users' stored data is in the Application's memory before something
    outside their own updates reads or changes it (alert settings, the blocked flag)."""
    persistence = application.persistence
    if isinstance(persistence, DatabasePersistence):
        await persistence.load_users(application, user_ids)
