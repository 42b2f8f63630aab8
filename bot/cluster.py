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
from bot.presses import ANSWER_WITHIN, ANSWERABLE_FOR, answer_waiting
from bot.storage.inbound import (
    AdvisoryLocks,
    ChatState,
    ChatStateChange,
    InboundUpdates,
    Stored,
    Waiting,
    conversation_key_text,
)
from bot.storage.send_windows import SharedSendBudget
from bot.telegram_bot import ConciergeBot
from bot.writes import reported_by_handler
from conversations.context import LANGUAGE_KEY

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


async def store_update(
    inbound: InboundUpdates, payload: dict[str, Any], now: datetime
) -> tuple[Update, Stored] | None:
    """Keeps one update as the webhook took it; a second copy (a retry) changes nothing and
    returns None."""
    update = Update.de_json(payload, None)
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    press = update.callback_query is not None
    stored = await inbound.store(update.update_id, order_key(update), text, now, press=press)
    if stored is None:
        logger.info("update %s came again; it was stored before", update.update_id)
        return None
    return update, stored


class ClusterPersistence(DatabasePersistence):
    """The persistence of a cluster process: PTB's own load at start and its timed writes are
    off, because the dispatcher loads and stores each chat's state around each update; a timed
    write of this process's copy could overwrite what another process stored since."""

    keeps_changes = False

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
        answer_within: float = ANSWER_WITHIN,
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
        # Presses stored here that no process started yet: each waits `answer_within`, then is
        # answered if still waiting (the timers by update id, then the answers under way).
        self._answer_within = answer_within
        self._press_timers: dict[int, asyncio.TimerHandle] = {}
        self._presses: set[asyncio.Task[None]] = set()
        # Presses this process started (bounded): its own waiting presses need no look.
        self._started_presses: set[int] = set()
        if metrics is not None:
            metrics.cluster_chats.set_function(lambda: len(self._running))

    # ---- the webhook's side ----------------------------------------------------------------

    async def receive(self, payload: dict[str, Any]) -> None:
        """Stores one webhook update; returns once it is committed (then Telegram hears 200)."""
        received_at = self._clock()
        stored = await store_update(self._inbound, payload, received_at)
        if self._metrics is not None:
            self._metrics.cluster_updates.labels("stored" if stored else "redelivered").inc()
        if stored is not None and stored[0].callback_query is not None:
            update, kept = stored
            # A press is answered promptly whatever queue it waits in: at once when its chat's
            # earlier updates hold it up (its row was stored answered), else once no process
            # started it within `answer_within` (every process busy).
            if kept.answer_now:
                self._answer_soon(update, taken=True)
            elif not self._stopping:
                self._press_timers[update.update_id] = asyncio.get_running_loop().call_later(
                    self._answer_within, self._answer_soon, update, False
                )
        self._wake.set()

    def _answer_soon(self, update: Update, taken: bool) -> None:
        self._press_timers.pop(update.update_id, None)
        task = asyncio.create_task(self._answer_if_waiting(update, taken))
        self._presses.add(task)
        task.add_done_callback(self._presses.discard)

    async def _answer_if_waiting(self, update: Update, taken: bool) -> None:
        """Answers a waiting press; unless already `taken` at receipt, its row must say that no
        process started it and nobody answered it. The row is the one owner of "answered", so
        the process that handles the press never sends a second answer."""
        try:
            if not taken:
                if update.update_id in self._started_presses:
                    self._started_presses.discard(update.update_id)
                    return  # started here: its handler answers
                now = self._clock()
                if not await self._inbound.answer_waiting_press(
                    update.update_id, now, now - ANSWERABLE_FOR
                ):
                    return  # started elsewhere (its handler answers), or too late
            await self._answer_waiting(update)
        except Exception:
            logger.exception("answering a waiting press failed")

    async def _answer_waiting(self, update: Update) -> None:
        query = update.callback_query
        bot = self._application.bot
        if query is None or not isinstance(bot, ConciergeBot):
            return
        stored = await self._inbound.load(query.from_user.id, None, ())
        chosen = json.loads(stored.user_data).get(LANGUAGE_KEY) if stored.user_data else None
        chat = update.effective_chat
        await answer_waiting(bot, query, chat.id if chat else None, chosen)
        if self._metrics is not None:
            self._metrics.cluster_updates.labels("press_answered_waiting").inc()

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
        # A press this process took an answer for is answered before it goes; the ones still
        # timed are left to the process that handles them.
        for timer in self._press_timers.values():
            timer.cancel()
        self._press_timers.clear()
        await asyncio.gather(*self._presses, return_exceptions=True)

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
            waiting = await self._inbound.next_for(key, self._clock())
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
        self._note_press(update, waiting)
        stored = await self._bridge.load(update)
        # The writes that end in this update count as told in the transaction that stores it:
        # killed before that, the update runs again without their drafts, and the journal
        # tells them instead.
        async with reported_by_handler() as reports:
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

    def _note_press(self, update: Update, waiting: Waiting) -> None:
        """Tells the bot's press bookkeeping what the stored row knows: a press answered at
        receipt, or one too old for any answer (counted from its receipt, not from now), has
        no answer sent; what its handler answers comes as a message."""
        query = update.callback_query
        bot = self._application.bot
        if query is None or not isinstance(bot, ConciergeBot):
            return
        if len(self._started_presses) > 10_000:
            self._started_presses.clear()
        self._started_presses.add(update.update_id)
        late = self._clock() - waiting.received_at >= ANSWERABLE_FOR
        if waiting.press_answered or late:
            chat = update.effective_chat
            bot.note_press(query.id, chat.id if chat else None, answered=True)
        if late and not waiting.press_answered:
            logger.info("a press started too late for an answer; its handler's words go as text")
            if self._metrics is not None:
                self._metrics.cluster_updates.labels("press_too_late").inc()

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
        send_budget: SharedSendBudget | None = None,
    ) -> None:
        self._locks = locks
        self._inbound = inbound
        self._send_budget = send_budget
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
            if self._send_budget is not None:
                await self._send_budget.forget_before(now - PRUNE_EVERY)
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
