"""The one factory that wires every handler, so tests and production run the same graph."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from telegram.ext import (
    ApplicationBuilder,
    BaseHandler,
    BasePersistence,
    BaseUpdateProcessor,
    ContextTypes,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot import alert_watcher, flood, gate
from bot.app_type import ConciergeApp
from bot.concurrency import PerChatUpdateProcessor
from bot.errors import on_error
from bot.jobs import recover_writes, schedule_jobs
from bot.metrics import ObservedApplication
from bot.persistence import PersistentApplication
from bot.presses import ConciergeApplication
from bot.send_budget import MemorySendBudget
from bot.services import Services
from bot.settings import Settings
from bot.storage import per_update
from bot.storage.send_windows import SharedSendBudget
from bot.telegram_bot import ConciergeBot
from bot.telegram_limiter import BudgetRateLimiter
from bot.tokens import MSG_LINK_AGAIN
from conversations import (
    account,
    alert_settings,
    assign,
    booking,
    commands,
    my_bookings,
    my_repairs,
    notify,
    oneflow,
    pending_bookings,
    project_repairs,
    repair,
    tasks,
)
from conversations.account import tell_linked
from conversations.context import SERVICES_KEY, ConciergeContext
from conversations.domain import Linked

HandlerFactory = Callable[[], Sequence[BaseHandler[Any, ConciergeContext, Any]]]


def file_url_for(base_url: str) -> str:
    """The file download base that goes with a Bot API base (`.../bot` → `.../file/bot`)."""
    root = base_url.rstrip("/")
    if not root.endswith("/bot"):
        raise ValueError("TELEGRAM_BASE_URL must end with /bot")
    return root.removesuffix("/bot") + "/file/bot"


def _handler_factories(settings: Settings) -> list[HandlerFactory]:
    """Every job's handlers, in priority order; the catch-all for stale buttons comes last."""
    timeout = timedelta(minutes=settings.conversation_timeout_minutes)
    return [
        account.build_handlers,
        lambda: [repair.build_conversation(timeout=timeout)],
        lambda: [my_repairs.build_conversation(timeout=timeout)],
        lambda: [my_bookings.build_conversation(timeout=timeout)],
        lambda: [tasks.build_conversation(timeout=timeout)],
        lambda: [assign.build_conversation(timeout=timeout)],
        alert_settings.build_handlers,
        lambda: [project_repairs.build_conversation(timeout=timeout)],
        lambda: [pending_bookings.build_conversation(timeout=timeout)],
        # Last of the flows: a message starting with 预约 opens a booking only when no other
        # conversation is waiting for that text (a repair description, a reopen reason).
        lambda: [booking.build_conversation(timeout=timeout)],
        account.build_fallback_handlers,
    ]


async def _post_init(application: ConciergeApp) -> None:
    await commands.set_default_commands(application.bot)
    # Before any update: what became of the writes a killed process left in flight.
    await recover_writes(application)
    await alert_watcher.look_before_updates(application)


class _Application(PersistentApplication, ConciergeApplication):
    """The bot's Application: each update starts with a fresh scope for the reads storage
    remembers while it is handled (bot.storage.per_update), and with its chat's stored state
    in memory (`PersistentApplication`, first in line so that even a press's first answer
    reads the user's chosen language), before any handler runs; the vendor writes that end in
    it count as told once it was processed (bot.writes)."""

    __slots__ = ()

    async def initialize(self) -> None:
        """Reads the communities before any update or job needs one, then initializes."""
        services: Services = self.bot_data[SERVICES_KEY]
        await services.load_communities()
        await super().initialize()

    async def process_update(self, update: object) -> None:
        """Processes `update` in a scope of its own."""
        per_update.open_scope()
        services: Services = self.bot_data[SERVICES_KEY]
        async with services.writes.told_by_update():
            await super().process_update(update)


def telegram_rate_limiter(services: Services, *, cluster: bool = False) -> BudgetRateLimiter:
    """The bot's guard on Telegram's limits: every message waits for its turn in the send
    budget, which a cluster's processes share in the database (bot.send_budget)."""
    budget = SharedSendBudget(services.storage.engine) if cluster else MemorySendBudget()
    return BudgetRateLimiter(budget, on_retry=services.metrics.telegram_retry)


def build_application(
    settings: Settings,
    services: Services,
    *,
    persistence: BasePersistence[Any, Any, Any] | None,
    request: BaseRequest | None = None,
    update_processor: BaseUpdateProcessor | None = None,
    rate_limiter: bool = True,
) -> ConciergeApp:
    """Builds the bot: every handler, the error handler, persistence and services."""
    # Our own bot class (it splits over-long texts), so the bot's settings are given to it
    # rather than to the builder; the pool sizes are the builder's own defaults.
    bot = ConciergeBot(
        token=settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_base_url,
        base_file_url=file_url_for(settings.telegram_base_url),
        request=request or HTTPXRequest(connection_pool_size=256),
        get_updates_request=request or HTTPXRequest(connection_pool_size=1),
        rate_limiter=(
            telegram_rate_limiter(services, cluster=settings.cluster) if rate_limiter else None
        ),
    )
    # The builder's generic parameters change with each call; the result is typed below.
    builder: Any = (
        ApplicationBuilder()
        .application_class(_Application)
        .bot(bot)
        .context_types(ContextTypes(context=ConciergeContext))
        .post_init(_post_init)
        .post_shutdown(_close_services)
    )
    if persistence is not None:
        builder = builder.persistence(persistence)
    builder = builder.concurrent_updates(
        update_processor or PerChatUpdateProcessor(max_running=settings.max_concurrent_updates)
    )
    application: ConciergeApp = builder.build()
    application.bot_data[SERVICES_KEY] = services

    async def tell(linked: Linked) -> None:
        await tell_linked(application, linked)

    services.linker.on_linked(tell)
    services.writes.on_outcome(alert_watcher.announcing_outcomes(application))

    async def ask_to_link_again(telegram_id: int) -> None:
        await notify.tell(application, services, telegram_id, MSG_LINK_AGAIN)

    services.tokens.on_lost(ask_to_link_again)
    # Group -3 lets through only new messages and presses in private chats (no edits, no
    # groups, no channel posts): no flow ever sees the rest.
    application.add_handlers(gate.build_handlers(), group=gate.GATE_GROUP)
    # Group -2 turns a flood away before anything else (even remembering the user) runs.
    flood_gate = flood.FloodGate(rate=settings.flood_rate, burst=settings.flood_burst)
    application.add_handlers(flood.build_handlers(flood_gate), group=flood.FLOOD_GROUP)
    # Group -1 runs for every update before the jobs' handlers in group 0.
    application.add_handlers(account.build_first_contact_handlers(), group=-1)
    for factory in _handler_factories(settings):
        application.add_handlers(list(factory()))
    # One conversation at a time per user: each flow puts the others aside when it starts.
    oneflow.connect(handler for group in application.handlers.values() for handler in group)
    application.add_error_handler(on_error)
    # Every update counted, every handler timed (and its errors placed) for /metrics.
    if isinstance(application, ObservedApplication):
        application.metrics = services.metrics
    services.metrics.instrument(application)
    schedule_jobs(application, settings)
    return application


async def _close_services(application: ConciergeApp) -> None:
    services = application.bot_data.get(SERVICES_KEY)
    if isinstance(services, Services):
        await services.aclose()
