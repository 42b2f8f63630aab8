"""Cluster mode: many `concierge run` processes behind a load balancer, one bot.

PTB keeps conversation states, user_data and chat_data in memory, loads them once at start and
only ever writes them out, so two processes would each act on their own stale copy. Here every
process may take any webhook, and:

- the webhook stores the update (`inbound_updates`, keyed by `update_id`) and only then answers
  200, so a Telegram retry or a second delivery is a no-op and nothing acknowledged is lost;
- a dispatcher per process takes a chat with waiting updates under a PostgreSQL advisory lock
  (one process per chat at a time, different chats side by side on every process) and handles
  its updates one by one in `update_id` order;
- before each update the chat's and user's stored state is loaded into the Application's
  in-memory dicts, and after it what the handler left is written in the same transaction that
  marks the update handled, so the chat's next update, on whatever process, starts from it;
- a process that dies loses its database connection and with it its locks: another process
  takes its chats at its next look (`POLL_SECONDS`) and handles the update that was cut off
  again. Vendor writes are idempotent through the write journal, so a re-run does not create
  a second record.

Shared jobs (the write journal's retries, the alert watcher) run on the one process holding the
shared-work lock; see `SharedWork`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from telegram import Update
from telegram.ext import ConversationHandler

from bot.app_type import ConciergeApp
from bot.metrics import Metrics
from bot.persistence import DatabasePersistence, PersistenceDataError, dump_json
from bot.storage.inbound import (
    AdvisoryLocks,
    ChatState,
    ChatStateChange,
    InboundUpdates,
    Waiting,
    conversation_key_text,
)
from bot.writes import reported_by_handler

logger = logging.getLogger(__name__)

# How often a process looks for chats nobody is handling (a dead process's, or ones whose
# lock was busy when their update came): the time a dead process's chats wait at most.
POLL_SECONDS = 0.5
# Handled updates are kept this long to recognise Telegram's late retries of them.
KEEP_HANDLED = timedelta(days=1)
# How often the shared work forgets them: a day's margin needs no DELETE at every run of every
# shared job (the write journal's may run every second).
PRUNE_EVERY = timedelta(minutes=10)
NO_CHAT = 0  # the order key of an update without chat or user (none the bot asks for today)


def order_key(update: Update) -> int:
    """What an update is ordered with: its chat, else its user (private chats: the same id)."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return NO_CHAT


async def store_update(inbound: InboundUpdates, payload: dict[str, Any], now: datetime) -> bool:
    """Keeps one update as the webhook took it; a second copy (a retry) changes nothing and
    returns False."""
    update = Update.de_json(payload, None)
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if not await inbound.store(update.update_id, order_key(update), text, now):
        logger.info("update %s came again; it was stored before", update.update_id)
        return False
    return True


class ClusterPersistence(DatabasePersistence):
    """The persistence of a cluster process: PTB's own load at start and its timed writes are
    off, because the dispatcher loads and stores each chat's state around each update; a timed
    write of this process's copy could overwrite what another process stored since."""

    __slots__ = ()

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        """Nothing at start: each update loads its user's data."""
        return {}

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        """Nothing at start: each update loads its chat's data."""
        return {}

    async def get_conversations(self, name: str) -> dict[tuple[int | str, ...], object]:
        """Nothing at start: each update loads its chat's conversations."""
        return {}

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        """Written by the dispatcher with the update that changed it."""

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        """Written by the dispatcher with the update that changed it."""

    async def update_conversation(
        self, name: str, key: tuple[int | str, ...], new_state: object | None
    ) -> None:
        """Written by the dispatcher with the update that changed it."""


def _flows(application: ConciergeApp) -> list[ConversationHandler[Any]]:
    found: list[ConversationHandler[Any]] = []
    for group in application.handlers.values():
        for handler in group:
            if isinstance(handler, ConversationHandler) and handler.persistent:
                found.append(handler)
    return found


def _key_of(flow: ConversationHandler[Any], update: Update) -> tuple[int | str, ...] | None:
    # ConversationHandler's own key rule (per chat, per user); per-message flows are refused
    # at start, so this is all of it.
    key: list[int | str] = []
    if flow.per_chat:
        if update.effective_chat is None:
            return None
        key.append(update.effective_chat.id)
    if flow.per_user:
        if update.effective_user is None:
            return None
        key.append(update.effective_user.id)
    return tuple(key)


class ChatStateSource(Protocol):
    """Where a chat's stored state is read from (`InboundUpdates` here; the single process's
    `PersistedState` when it reads a chat's state at its first update)."""

    async def load(
        self, user_id: int | None, chat_id: int | None, conversation_keys: Sequence[str]
    ) -> ChatState:
        """The stored user_data, chat_data and conversation states of one update's chat."""
        ...


class ChatStateBridge:
    """Moves one update's chat state between the database and the Application's memory.

    PTB offers no public way to set a ConversationHandler's state from outside; the
    conversations dict is reached here and nowhere else.
    """

    def __init__(self, application: ConciergeApp, inbound: ChatStateSource) -> None:
        self._application = application
        self._inbound = inbound
        self._flows = _flows(application)
        for flow in self._flows:
            if flow.per_message:
                raise ValueError(f"cluster mode cannot order per-message flow {flow.name}")

    def keys(self, update: Update) -> list[tuple[ConversationHandler[Any], str, Any]]:
        """Each persistent flow with the update's conversation key (as stored, and as PTB's)."""
        keys = []
        for flow in self._flows:
            key = _key_of(flow, update)
            if key is not None:
                keys.append((flow, conversation_key_text(key), key))
        return keys

    async def load(self, update: Update) -> ChatState:
        """Puts the stored state of the update's chat and user in memory, as last left; returns
        it as stored, for `change` to write only what differs."""
        user = update.effective_user
        chat = update.effective_chat
        keys = self.keys(update)
        stored = await self._inbound.load(
            user.id if user else None, chat.id if chat else None, sorted({k for _, k, _ in keys})
        )
        if user is not None:
            _replace(self._application.user_data[user.id], stored.user_data)
        if chat is not None:
            _replace(self._application.chat_data[chat.id], stored.chat_data)
        for flow, text, key in keys:
            conversations = flow._conversations
            state = stored.conversations.get((str(flow.name), text))
            if state is None:
                conversations.pop(key, None)
            else:
                conversations[key] = json.loads(state)
        return stored

    def change(self, update: Update, stored: ChatState) -> ChatStateChange:
        """What the handler left for the update's chat and user that differs from `stored`.
        An open conversation is always written: its time stamp says the chat moved on (see
        `ClusterDispatcher._guard_time_outs`)."""
        user = update.effective_user
        chat = update.effective_chat
        conversations: dict[tuple[str, str], str | None] = {}
        for flow, text, key in self.keys(update):
            state = flow._conversations.get(key)
            name = str(flow.name)
            if state is not None:
                conversations[(name, text)] = dump_json(state, f"conversation state of {name}")
            elif (name, text) in stored.conversations:
                conversations[(name, text)] = None
        user_data = (
            dump_json(self._application.user_data[user.id], f"user_data of user {user.id}")
            if user
            else None
        )
        chat_data = (
            dump_json(self._application.chat_data[chat.id], f"chat_data of chat {chat.id}")
            if chat
            else None
        )
        return ChatStateChange(
            user_id=user.id if user else None,
            user_data=None if user_data == (stored.user_data or "{}") else user_data,
            chat_id=chat.id if chat else None,
            chat_data=None if chat_data == (stored.chat_data or "{}") else chat_data,
            conversations=conversations,
        )


def _replace(target: dict[Any, Any], stored: str | None) -> None:
    target.clear()
    if stored is not None:
        target.update(json.loads(stored))


class ClusterDispatcher:
    """Takes the webhook's updates into the database and handles them chat by chat."""

    def __init__(
        self,
        application: ConciergeApp,
        inbound: InboundUpdates,
        locks: AdvisoryLocks,
        *,
        clock: Callable[[], datetime],
        max_running: int,
        poll_seconds: float = POLL_SECONDS,
        metrics: Metrics | None = None,
    ) -> None:
        self._application = application
        self._metrics = metrics
        self._inbound = inbound
        self._locks = locks
        self._bridge = ChatStateBridge(application, inbound)
        self._clock = clock
        self._max_running = max_running
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self._loop: asyncio.Task[None] | None = None
        if metrics is not None:
            metrics.cluster_chats.set_function(lambda: len(self._running))

    # ---- the webhook's side ----------------------------------------------------------------

    async def receive(self, payload: dict[str, Any]) -> None:
        """Stores one webhook update; returns once it is committed (then Telegram hears 200)."""
        stored = await store_update(self._inbound, payload, self._clock())
        if self._metrics is not None:
            self._metrics.cluster_updates.labels("stored" if stored else "redelivered").inc()
        self._wake.set()

    # ---- the handling side -----------------------------------------------------------------

    def start(self) -> None:
        """Starts looking for chats to handle."""
        self._loop = asyncio.create_task(self._run(), name="cluster-dispatcher")

    async def stop(self) -> None:
        """Takes no new chat, lets each running chat finish its current update, and gives every
        chat back (their other updates go to the other processes)."""
        self._stopping = True
        self._wake.set()
        if self._loop is not None:
            await self._loop
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._take_chats()
            except Exception:
                logger.exception("looking for chats to handle failed; trying again")
                await asyncio.sleep(self._poll_seconds)

    async def _take_chats(self) -> None:
        room = self._max_running - len(self._running)
        if room <= 0:
            return
        for key in await self._locks.take_waiting_chats(room, skip=self._running):
            if self._stopping:
                await self._locks.release_chat(key)
                continue
            task = asyncio.create_task(self._drain(key), name=f"cluster-chat-{key}")
            self._running[key] = task

    async def _drain(self, key: int) -> None:
        try:
            waiting = await self._inbound.next_for(key)
            while waiting is not None and not self._stopping:
                waiting = await self._handle(waiting)
        except Exception:
            logger.exception("handling a chat's updates failed; they wait for the next look")
        finally:
            self._running.pop(key, None)
            with contextlib.suppress(Exception):
                await self._locks.release_chat(key)
            # An update may have come for this chat while it was still held: look again now.
            self._wake.set()

    async def _handle(self, waiting: Waiting) -> Waiting | None:
        """Handles one update; returns the chat's next one (read with the storing)."""
        if self._metrics is not None:
            waited = (self._clock() - waiting.received_at).total_seconds()
            self._metrics.cluster_wait.observe(max(0.0, waited))
        update = Update.de_json(json.loads(waiting.payload), self._application.bot)
        stored = await self._bridge.load(update)
        # The writes that end in this update count as told in the transaction that stores it:
        # killed before that, the update runs again without their drafts, and the journal
        # tells them instead.
        with reported_by_handler() as reports:
            await self._application.process_update(update)
        now = self._clock()
        following = await self._inbound.finish(
            waiting.update_id,
            self._change(update, stored),
            now,
            reported=reports.row_ids if reports is not None else (),
            next_of=waiting.order_key,
        )
        if self._metrics is not None:
            self._metrics.cluster_updates.labels("handled").inc()
        self._guard_time_outs(update, now)
        return following

    def _change(self, update: Update, stored: ChatState) -> ChatStateChange | None:
        try:
            return self._bridge.change(update, stored)
        except PersistenceDataError:
            # A handler left something JSON cannot keep; the state it had stays stored.
            logger.exception("update %s left state that cannot be stored", update.update_id)
            return None

    # ---- conversation time-outs ------------------------------------------------------------

    def _guard_time_outs(self, update: Update, stored_at: datetime) -> None:
        """PTB times a conversation out with a job in the process that handled its last update.
        Here that job first checks that no process touched the conversation since: the chat's
        next update may have gone to another process, which then owns the time-out."""
        for flow, text, key in self._bridge.keys(update):
            job = flow.timeout_jobs.get(key)
            if job is not None and not getattr(job.callback, "_cluster_guarded", False):
                job.callback = self._guarded(job.callback, update, str(flow.name), text, stored_at)

    def _guarded(
        self,
        callback: Callable[[Any], Coroutine[Any, Any, Any]],
        update: Update,
        name: str,
        key: str,
        stored_at: datetime,
    ) -> Callable[[Any], Coroutine[Any, Any, None]]:
        chat = order_key(update)

        async def time_out(context: Any) -> None:
            if chat in self._running or not await self._locks.try_chat(chat):
                return  # an update of the chat is being handled; it starts a new time-out
            try:
                if not await self._inbound.conversation_unchanged_since(
                    name, key, stored_at, chat
                ):
                    return  # moved on (here or on another process), or ended
                stored = await self._bridge.load(update)
                await callback(context)
                await self._inbound.finish(None, self._change(update, stored), self._clock())
            finally:
                await self._locks.release_chat(chat)

        time_out._cluster_guarded = True  # type: ignore[attr-defined]
        return time_out

    @property
    def running_chats(self) -> int:
        """How many chats this process is handling now."""
        return len(self._running)


class SharedWork:
    """Whether this process runs the jobs the cluster runs once (the write journal's retries,
    the alert watcher): the one holding the shared-work lock does. If it dies, its lock goes
    with its connection and the next process to look takes it, within one job interval."""

    def __init__(
        self,
        locks: AdvisoryLocks,
        inbound: InboundUpdates,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._locks = locks
        self._inbound = inbound
        self._clock = clock
        self._metrics = metrics
        self._pruned_at: datetime | None = None

    async def mine(self) -> bool:
        """Whether this process does the shared work now (taking it over if nobody does)."""
        try:
            held = await self._locks.try_shared_work()
        except Exception:
            logger.warning("could not reach the database for the shared-work lock")
            held = False
        if self._metrics is not None:
            self._metrics.cluster_shared_work.set(1 if held else 0)
        now = self._clock()
        if held and (self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY):
            await self._inbound.prune(now - KEEP_HANDLED)
            self._pruned_at = now
        return held


SHARED_WORK_KEY = "cluster.shared_work"


def shared_job(callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A job callback that runs only on the process doing the cluster's shared work (every
    time in single-process mode, where there is no `SharedWork`)."""

    @functools.wraps(callback)
    async def run(context: Any) -> None:
        shared = context.bot_data.get(SHARED_WORK_KEY)
        if isinstance(shared, SharedWork) and not await shared.mine():
            return
        await callback(context)

    return run
