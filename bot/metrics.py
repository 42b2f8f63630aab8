"""Prometheus metrics: what an operator watches, served at /metrics on the bot's web server.

Counters and histograms move as the bot works (updates, handlers, vendor requests, alerts,
Telegram retries); the gauges of backlogs are read from the database when scraped, so they are
right whichever process did the work. Each Application has its own registry (tests run several).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from telegram import Update
from telegram.error import NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, BaseHandler, ConversationHandler

from bot.storage.db import Sessions
from bot.storage.gauges import read_backlog

# Handler and vendor times: a few milliseconds for a menu up to the vendors' read time-out.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class _UpdateOutcome:
    outcome: str = "ok"


# The outcome of the update being processed; the error handler and the flood gate set it.
_current_update: ContextVar[_UpdateOutcome | None] = ContextVar("_current_update", default=None)


def mark_update(outcome: str) -> None:
    """Says how the update being processed ended ("error", "throttled"), for its count."""
    current = _current_update.get()
    if current is not None:
        current.outcome = outcome


def update_kind(update: object) -> str:
    """What an update carries: "message", "callback_query", ... ("job" when it is none)."""
    if not isinstance(update, Update):
        return "other"
    for kind in Update.ALL_TYPES:
        if getattr(update, kind, None) is not None:
            return kind
    return "other"


# Where an error was raised (flow, step), kept on the exception for the error handler, which
# runs after the handler has unwound.
_WHERE = "_concierge_where"


def where_of(error: BaseException | None) -> tuple[str, str] | None:
    """The flow and step (handler) an error came from, when a timed handler saw it."""
    where = getattr(error, _WHERE, None)
    return where if isinstance(where, tuple) else None


class Metrics:
    """Every metric of one bot, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.updates = Counter(
            "concierge_updates",
            "Updates from Telegram, by what they carry and how handling ended "
            "(ok, error, throttled).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "concierge_handler_seconds",
            "Time a handler took, vendor calls included, by flow.",
            ["flow"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.vendor_requests = Counter(
            "concierge_vendor_requests",
            "Requests to the vendors, by vendor, operation and outcome (ok, or the error).",
            ["vendor", "operation", "outcome"],
            registry=registry,
        )
        self.vendor_seconds = Histogram(
            "concierge_vendor_request_seconds",
            "Time a vendor took to answer one request.",
            ["vendor", "operation"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "concierge_outbox_pending",
            "Writes a vendor could not take yet, waiting to be sent again.",
            registry=registry,
        )
        self.outbox_oldest = Gauge(
            "concierge_outbox_oldest_pending_seconds",
            "Age of the oldest write waiting in the outbox (0 when none waits).",
            registry=registry,
        )
        self.alerts_pending = Gauge(
            "concierge_alerts_pending",
            "Alerts recorded but not delivered yet (quiet hours, failed attempts).",
            registry=registry,
        )
        self.alerts_sent = Counter(
            "concierge_alerts_sent",
            "Alerts delivered, by kind.",
            ["kind"],
            registry=registry,
        )
        self.alerts_maybe_sent = Counter(
            "concierge_alerts_maybe_sent",
            "Alerts sent again after a send whose outcome is unknown (the process died or "
            "Telegram's answer was lost after it left), marked as a possible repeat, by kind.",
            ["kind"],
            registry=registry,
        )
        self.conversations_active = Gauge(
            "concierge_conversations_active",
            "Conversations in progress (stored, not yet finished or timed out).",
            registry=registry,
        )
        # Cluster mode (bot/cluster.py): what this process did, and the shared queue's backlog.
        self.cluster_updates = Counter(
            "concierge_cluster_updates",
            "Cluster mode: updates this process took from the webhook (stored, or redelivered: "
            "a copy of one stored before) and updates it handled; presses it answered while "
            "they waited (press_answered_waiting) and presses that started too late for any "
            "answer (press_too_late).",
            ["event"],
            registry=registry,
        )
        for event in (
            "stored",
            "redelivered",
            "handled",
            "press_answered_waiting",
            "press_too_late",
        ):
            self.cluster_updates.labels(event)  # each shown from 0, not from its first event
        self.cluster_wait = Histogram(
            "concierge_cluster_update_wait_seconds",
            "Cluster mode: time from an update being stored to this process starting it "
            "(waiting for its chat's lock and the chat's earlier updates).",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.cluster_chats = Gauge(
            "concierge_cluster_chats_running",
            "Cluster mode: chats this process holds and is handling now.",
            registry=registry,
        )
        self.cluster_shared_work = Gauge(
            "concierge_cluster_shared_work_owner",
            "Cluster mode: 1 while this process runs the cluster's shared jobs, else 0.",
            registry=registry,
        )
        self.inbound_waiting = Gauge(
            "concierge_inbound_updates_waiting",
            "Cluster mode: updates stored and not handled yet, by any process.",
            registry=registry,
        )
        self.inbound_oldest = Gauge(
            "concierge_inbound_oldest_waiting_seconds",
            "Cluster mode: age of the oldest update not handled yet (0 when none waits).",
            registry=registry,
        )
        self.telegram_retries = Counter(
            "concierge_telegram_retries",
            "Bot API calls made again, by reason (429: flood control, network).",
            ["reason"],
            registry=registry,
        )

    # ---- recording ---------------------------------------------------------------------------

    def vendor_request(self, vendor: str, operation: str, outcome: str, seconds: float) -> None:
        """One request to a vendor (the hook the vendor clients call)."""
        self.vendor_requests.labels(vendor, operation, outcome).inc()
        self.vendor_seconds.labels(vendor, operation).observe(seconds)

    def telegram_retry(self, reason: str) -> None:
        """One Bot API call made again."""
        self.telegram_retries.labels(reason).inc()

    def polling_failed(self, error: TelegramError) -> None:
        """getUpdates failed and PTB will poll again: a retry, by its reason."""
        if isinstance(error, RetryAfter):
            self.telegram_retry("429")
        elif isinstance(error, NetworkError):
            self.telegram_retry("network")

    def alert_sent(self, kind: str) -> None:
        """One alert delivered."""
        self.alerts_sent.labels(kind).inc()

    def alert_maybe_sent(self, kind: str) -> None:
        """One alert sent again after a send of unknown outcome (marked a possible repeat)."""
        self.alerts_maybe_sent.labels(kind).inc()

    async def count_update(self, update: object, handle: Awaitable[Any]) -> None:
        """Runs the handling of one update and counts it with its outcome."""
        outcome = _UpdateOutcome()
        token = _current_update.set(outcome)
        try:
            await handle
        finally:
            _current_update.reset(token)
            self.updates.labels(update_kind(update), outcome.outcome).inc()

    def timed(
        self, flow: str, callback: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """`callback`, its time observed under `flow`; an error it raises learns where it was."""
        histogram = self.handler_seconds.labels(flow)
        step = getattr(callback, "__name__", "handler")

        async def timed_callback(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await callback(*args, **kwargs)
            except Exception as error:
                if where_of(error) is None:
                    # Some exceptions refuse new attributes; they are reported without a place.
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(error, _WHERE, (flow, step))
                raise
            finally:
                histogram.observe(time.perf_counter() - started)

        return timed_callback

    def instrument(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Times every handler of `application` by flow: a conversation's handlers under its
        name, any other under its module ("account", "alerts", "flood")."""
        seen: set[int] = set()

        def visit(handler: BaseHandler[Any, Any, Any], flow: str | None) -> None:
            if id(handler) in seen:
                return
            seen.add(id(handler))
            if isinstance(handler, ConversationHandler):
                name = handler.name or flow or "conversation"
                inner = [*handler.entry_points, *handler.fallbacks]
                inner += [h for handlers in handler.states.values() for h in handlers]
                for child in inner:
                    visit(child, name)
                return
            callback = getattr(handler, "callback", None)
            if callback is None:
                return
            module = str(getattr(callback, "__module__", "") or "bot").rsplit(".", 1)[-1]
            handler.callback = self.timed(flow or module, callback)  # type: ignore[assignment]

        for handlers in application.handlers.values():
            for handler in handlers:
                visit(handler, None)

    # ---- reading -----------------------------------------------------------------------------

    async def render(self, sessions: Sessions, now: datetime) -> tuple[bytes, str]:
        """The exposition text, the database gauges read first."""
        backlog = await read_backlog(sessions, now)
        self.outbox_pending.set(backlog.outbox_pending)
        self.outbox_oldest.set(backlog.outbox_oldest_seconds)
        self.alerts_pending.set(backlog.alerts_pending)
        self.conversations_active.set(backlog.conversations_active)
        self.inbound_waiting.set(backlog.inbound_waiting)
        self.inbound_oldest.set(backlog.inbound_oldest_seconds)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ObservedApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application, counting every update it processes with how it ended."""

    metrics: Metrics | None = None

    async def process_update(self, update: object) -> None:
        """Processes `update` as PTB does, counted in concierge_updates_total."""
        if self.metrics is None:
            await super().process_update(update)
            return
        await self.metrics.count_update(update, super().process_update(update))
