"""Cluster mode's SQL: the updates taken from the webhook, the per-chat state a handler sees,
and the PostgreSQL advisory locks that give one process a chat (or the shared jobs) at a time.

Locks are session-level advisory locks on one connection per process: a process that dies
loses its connection, and PostgreSQL frees every lock it held at that moment, so its chats and
its jobs move on without waiting for a lease to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, exists, func, literal, select, text, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.storage.db import make_session_factory, upsert
from bot.storage.models import ChatData, ConversationState, InboundUpdate, UserData
from bot.storage.writes import reported_statement

# The two-int advisory lock space (separate from the one-bigint space chats use): the class
# of lock, then which one.
SHARED_WORK_LOCK = (19, 1)
ALERT_DELIVERY_LOCK = (19, 2)


@dataclass(frozen=True, slots=True)
class Waiting:
    """One stored update not yet handled."""

    update_id: int
    payload: str
    received_at: datetime
    order_key: int
    press_answered: bool = False  # a press answered at receipt, while it waited


@dataclass(frozen=True, slots=True)
class Stored:
    """An update the webhook stored for the first time."""

    # A press stored behind unhandled updates of its chat: it had its one answer at receipt,
    # and the process that stored it gives that answer.
    answer_now: bool


@dataclass(frozen=True, slots=True)
class ChatState:
    """What a handler of one chat's update starts from, as JSON text (None: nothing stored)."""

    user_data: str | None
    chat_data: str | None
    conversations: dict[tuple[str, str], str]  # (handler name, key JSON) -> state JSON


@dataclass(frozen=True, slots=True)
class ChatStateChange:
    """What a handled update leaves behind, written with its `handled_at` in one transaction."""

    user_id: int | None
    user_data: str | None
    chat_id: int | None
    chat_data: str | None
    conversations: dict[tuple[str, str], str | None]  # None: the conversation ended


class InboundUpdates:
    """`inbound_updates` and the chat state rows, for the cluster's dispatcher."""

    __slots__ = ("_one_statement", "_sessions")

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions: async_sessionmaker[AsyncSession] = make_session_factory(engine)
        # For the units of work that are one statement, on every update's path: a statement
        # is its own transaction, and BEGIN and COMMIT around it would be two more round trips.
        self._one_statement: async_sessionmaker[AsyncSession] = make_session_factory(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    async def store(
        self, update_id: int, order_key: int, payload: str, now: datetime, *, press: bool = False
    ) -> Stored | None:
        """Keeps an update (committed when this returns); None when it was stored before.

        A press (`press`) that its chat's unhandled updates would keep waiting is stored as
        answered at receipt, in the same statement, so no process handling it answers again."""
        values: dict[str, Any] = {
            "update_id": update_id,
            "order_key": order_key,
            "payload": payload,
            "received_at": now,
        }
        if press:
            ahead = exists().where(
                InboundUpdate.order_key == order_key,
                InboundUpdate.handled_at.is_(None),
                InboundUpdate.update_id < update_id,
            )
            values["press_answered_at"] = case((ahead, now), else_=None)
        async with self._one_statement.begin() as session:
            row = (
                await session.execute(
                    upsert(
                        "postgresql", InboundUpdate, values, key=["update_id"], update=[]
                    ).returning(InboundUpdate.press_answered_at)
                )
            ).first()
            return None if row is None else Stored(answer_now=row[0] is not None)

    async def answer_waiting_press(
        self, update_id: int, now: datetime, received_after: datetime
    ) -> bool:
        """Takes a press's one answer for its receiving process, if no process has started it
        yet, nobody answered it, and it arrived after `received_after` (else an answer would
        come too late): the same row the handling process claims it on decides."""
        async with self._one_statement.begin() as session:
            taken = await session.scalar(
                update(InboundUpdate)
                .where(
                    InboundUpdate.update_id == update_id,
                    InboundUpdate.started_at.is_(None),
                    InboundUpdate.handled_at.is_(None),
                    InboundUpdate.press_answered_at.is_(None),
                    InboundUpdate.received_at > received_after,
                )
                .values(press_answered_at=now)
                .returning(InboundUpdate.update_id)
            )
            return taken is not None

    async def next_for(self, order_key: int, now: datetime) -> Waiting | None:
        """Claims the chat's oldest update not yet handled (see `_next`)."""
        async with self._one_statement.begin() as session:
            return await self._next(session, order_key, now)

    @staticmethod
    async def _next(session: AsyncSession, order_key: int, now: datetime) -> Waiting | None:
        """The chat's oldest update not yet handled, marked started: from here on a press in
        it is answered by the process handling it, and whether it was answered at receipt is
        read in this same statement."""
        oldest = (
            select(InboundUpdate.update_id)
            .where(InboundUpdate.order_key == order_key, InboundUpdate.handled_at.is_(None))
            .order_by(InboundUpdate.update_id)
            .limit(1)
            .scalar_subquery()
        )
        row = (
            await session.execute(
                update(InboundUpdate)
                .where(InboundUpdate.update_id == oldest)
                .values(started_at=now)
                .returning(
                    InboundUpdate.update_id,
                    InboundUpdate.payload,
                    InboundUpdate.received_at,
                    InboundUpdate.press_answered_at,
                )
            )
        ).first()
        if row is None:
            return None
        return Waiting(row[0], row[1], row[2], order_key, press_answered=row[3] is not None)

    async def load(
        self, user_id: int | None, chat_id: int | None, conversation_keys: Sequence[str]
    ) -> ChatState:
        """The stored user_data, chat_data and conversation states of one update's chat, in
        one statement (one round trip before every update: no BEGIN/COMMIT around it)."""
        async with self._one_statement.begin() as session:
            return await read_chat_state(session, user_id, chat_id, conversation_keys)

    async def finish(
        self,
        update_id: int | None,
        change: ChatStateChange | None,
        now: datetime,
        *,
        reported: Sequence[int] = (),
        next_of: int | None = None,
    ) -> Waiting | None:
        """Stores what the handler changed and marks the update handled (None: no update, a
        time-out), with the vendor writes its handler told (`reported`), all or nothing.

        With `next_of`, returns that chat's next waiting update, read in the same transaction
        (one round trip less per update than asking `next_for` afterwards)."""
        async with self._sessions.begin() as session:
            if change is not None:
                await self._write_state(session, change, now)
            if reported:
                await session.execute(reported_statement(reported, now))
            if update_id is not None:
                await session.execute(
                    update(InboundUpdate)
                    .where(InboundUpdate.update_id == update_id)
                    .values(handled_at=now)
                )
            if next_of is None:
                return None
            return await self._next(session, next_of, now)

    async def conversation_unchanged_since(
        self, name: str, key: str, since: datetime, order_key: int
    ) -> bool:
        """Whether a conversation is still as one process left it at `since`: stored, not
        written since, and no update of its chat waiting."""
        async with self._sessions.begin() as session:
            updated = await session.scalar(
                select(ConversationState.updated_at).where(
                    ConversationState.name == name, ConversationState.key == key
                )
            )
            waiting = await session.scalar(
                select(func.count()).where(
                    InboundUpdate.order_key == order_key, InboundUpdate.handled_at.is_(None)
                )
            )
        return updated is not None and updated <= since and not waiting

    @staticmethod
    async def _write_state(session: AsyncSession, change: ChatStateChange, now: datetime) -> None:
        if change.user_id is not None and change.user_data is not None:
            row = {"user_id": change.user_id, "data": change.user_data, "updated_at": now}
            await session.execute(upsert("postgresql", UserData, row, key=["user_id"]))
        if change.chat_id is not None and change.chat_data is not None:
            row = {"chat_id": change.chat_id, "data": change.chat_data, "updated_at": now}
            await session.execute(upsert("postgresql", ChatData, row, key=["chat_id"]))
        for (name, key), state in change.conversations.items():
            if state is None:
                await session.execute(
                    delete(ConversationState).where(
                        ConversationState.name == name, ConversationState.key == key
                    )
                )
            else:
                row = {"name": name, "key": key, "state": state, "updated_at": now}
                await session.execute(
                    upsert("postgresql", ConversationState, row, key=["name", "key"])
                )

    async def prune(self, handled_before: datetime) -> None:
        """Forgets handled updates old enough that Telegram no longer resends them."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(InboundUpdate).where(InboundUpdate.handled_at < handled_before)
            )

    async def counts(self) -> tuple[int, int]:
        """(waiting, handled) updates, for tests and metrics."""
        async with self._sessions.begin() as session:
            waiting = await session.scalar(
                select(func.count()).where(InboundUpdate.handled_at.is_(None))
            )
            handled = await session.scalar(
                select(func.count()).where(InboundUpdate.handled_at.is_not(None))
            )
        return int(waiting or 0), int(handled or 0)


@contextlib.asynccontextmanager
async def held_everywhere(engine: AsyncEngine, lock: tuple[int, int]) -> AsyncIterator[None]:
    """Waits for a cluster-wide lock and holds it for the block (freed with the transaction,
    also when the process dies)."""
    async with engine.connect() as connection, connection.begin():
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": lock[0], "b": lock[1]}
        )
        yield


async def read_chat_state(
    session: AsyncSession,
    user_id: int | None,
    chat_id: int | None,
    conversation_keys: Sequence[str],
) -> ChatState:
    """The stored user_data, chat_data and conversation states of one update's chat and user,
    in one statement (a cluster process reads it for every update, a single process for a
    chat's first)."""
    parts = []
    if user_id is not None:
        parts.append(
            select(literal("user"), literal(""), literal(""), UserData.data).where(
                UserData.user_id == user_id
            )
        )
    if chat_id is not None:
        parts.append(
            select(literal("chat"), literal(""), literal(""), ChatData.data).where(
                ChatData.chat_id == chat_id
            )
        )
    if conversation_keys:
        parts.append(
            select(
                literal("conversation"),
                ConversationState.name,
                ConversationState.key,
                ConversationState.state,
            ).where(ConversationState.key.in_(list(conversation_keys)))
        )
    user = chat = None
    conversations: dict[tuple[str, str], str] = {}
    if not parts:
        return ChatState(user, chat, conversations)
    for kind, name, key, stored in (await session.execute(union_all(*parts))).all():
        if kind == "user":
            user = stored
        elif kind == "chat":
            chat = stored
        else:
            conversations[(name, key)] = stored
    return ChatState(user, chat, conversations)


def conversation_key_text(key: Sequence[int | str]) -> str:
    """A conversation key as `DatabasePersistence` stores it."""
    return json.dumps(list(key), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class AdvisoryLocks:
    """This process's advisory locks, all on one connection of their own (see the module)."""

    __slots__ = ("_connection", "_engine", "_guard")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        # One connection runs one statement at a time.
        self._guard = asyncio.Lock()

    async def _conn(self) -> AsyncConnection:
        if self._connection is None:
            connection = await self._engine.connect()
            # Autocommit: session locks outlive statements, and no transaction stays open.
            self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    async def _scalar(self, statement: str, **values: int) -> bool:
        async with self._guard:
            connection = await self._conn()
            try:
                return bool(await connection.scalar(text(statement), values))
            except Exception:
                # A broken connection has lost every lock it held: start again from none.
                self._connection = None
                await connection.invalidate()
                raise

    async def take_waiting_chats(self, room: int, skip: Iterable[int] = ()) -> list[int]:
        """Takes up to `room` chats with waiting updates that no process holds, the
        longest-waiting first, in one statement: looking at the oldest few and skipping the
        held ones one by one would leave every process looking at the same held chats."""
        if room <= 0:
            return []
        skipped = sorted(set(skip)) or [0]
        async with self._guard:
            connection = await self._conn()
            try:
                rows = await connection.execute(
                    text(
                        "SELECT order_key FROM ("
                        " SELECT order_key, min(update_id) AS first FROM inbound_updates"
                        " WHERE handled_at IS NULL AND order_key <> ALL(:skip)"
                        " GROUP BY order_key ORDER BY first LIMIT :window"
                        ") AS waiting WHERE pg_try_advisory_lock(order_key) LIMIT :room"
                    ),
                    {"skip": skipped, "window": room * 20, "room": room},
                )
                return [int(key) for (key,) in rows]
            except Exception:
                self._connection = None
                await connection.invalidate()
                raise

    async def try_chat(self, order_key: int) -> bool:
        """Takes one chat for this process, unless another process holds it."""
        return await self._scalar("SELECT pg_try_advisory_lock(:key)", key=order_key)

    async def release_chat(self, order_key: int) -> None:
        """Gives a chat back."""
        await self._scalar("SELECT pg_advisory_unlock(:key)", key=order_key)

    async def try_shared_work(self) -> bool:
        """Whether this process runs the cluster's shared jobs (taking them if nobody does)."""
        held = await self._scalar(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND classid = :a AND objid = :b AND objsubid = 2",
            a=SHARED_WORK_LOCK[0],
            b=SHARED_WORK_LOCK[1],
        )
        if held:
            return True
        return await self._scalar(
            "SELECT pg_try_advisory_lock(:a, :b)", a=SHARED_WORK_LOCK[0], b=SHARED_WORK_LOCK[1]
        )

    async def close(self) -> None:
        """Closes the connection, freeing every lock at once."""
        async with self._guard:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None
