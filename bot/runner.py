"""Runs the bot for real: polling or webhook, the web server beside it, one clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from typing import Any

import uvicorn
from telegram import Update
from telegram.error import TelegramError

from bot.alert_watcher import watcher_of
from bot.app import build_application
from bot.app_type import ConciergeApp
from bot.cluster import SHARED_WORK_KEY, ClusterDispatcher, ClusterPersistence, SharedWork
from bot.gate import ALLOWED_UPDATES
from bot.persistence import DatabasePersistence
from bot.services import Services
from bot.settings import Settings
from bot.storage.inbound import ALERT_DELIVERY_LOCK, AdvisoryLocks, InboundUpdates, held_everywhere
from bot.storage.migrate import upgrade
from bot.storage.send_windows import SharedSendBudget
from bot.telegram_limiter import BudgetRateLimiter
from bot.web import WEBHOOK_PATH, create_web_app

logger = logging.getLogger(__name__)


class EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling of its own: the bot owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM set `stop`, so the caller shuts everything down in order."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run_bot(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Migrates, starts the bot and its web server, and runs until `stop` (or a signal)."""
    stop = stop or asyncio.Event()
    stop_on_signals(stop)
    await upgrade(settings.database_url)
    services = Services.open(settings)
    persistence_class = ClusterPersistence if settings.cluster else DatabasePersistence
    persistence = persistence_class(
        services.storage.sessions, update_interval=settings.persistence_update_interval
    )
    application = build_application(settings, services, persistence=persistence)
    webhook = settings.run_mode == "webhook"
    cluster = _join_cluster(application, services, settings) if settings.cluster else None

    async def health() -> bool:
        return await services.storage.reachable() and application.running

    async def on_update(payload: dict[str, Any]) -> None:
        if cluster is not None:
            await cluster[0].receive(payload)
        else:
            await application.update_queue.put(Update.de_json(payload, application.bot))

    async def metrics() -> tuple[bytes, str]:
        return await services.metrics.render(services.storage.sessions, services.clock())

    def polling_failed(error: TelegramError) -> None:
        # PTB polls again after a pause by itself; each failure is one retry, told in one line.
        services.metrics.polling_failed(error)
        logger.warning("polling Telegram failed (%s); trying again", type(error).__name__)

    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    web = create_web_app(
        on_oauth_callback=services.linker.complete,
        on_oauth_confirm=services.linker.confirm,
        health=health,
        on_update=on_update if webhook else None,
        webhook_secret=secret,
        metrics=metrics,
        metrics_allow_from=settings.metrics_allow_from,
    )
    server = EmbeddedServer(
        uvicorn.Config(
            web,
            host=settings.web_host,
            port=settings.web_port,
            log_level="warning",
            access_log=False,  # access lines would carry OAuth codes and states
            lifespan="off",
        )
    )
    try:
        async with application:
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
            if webhook:
                await application.bot.set_webhook(
                    settings.public_base_url.rstrip("/") + WEBHOOK_PATH,
                    secret_token=secret,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
            else:
                assert application.updater is not None
                await application.updater.start_polling(
                    allowed_updates=list(ALLOWED_UPDATES), error_callback=polling_failed
                )
            if cluster is not None:
                cluster[0].start()
            serving = asyncio.create_task(server.serve())
            logger.info(
                "Concierge is running (%s); web server on %s:%s",
                settings.run_mode,
                settings.web_host,
                settings.web_port,
            )
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await serving
            stopped.cancel()
            # A delivery round under way stops pacing a backlog; what is left stays pending.
            watcher_of(application).close()
            if cluster is not None:
                # The web server takes no more updates; the chats in hand finish their current
                # one and are given back to the other processes.
                await cluster[0].stop()
                await cluster[1].close()
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await application.stop()
    finally:
        if cluster is not None:
            await cluster[1].close()
        await services.aclose()
    logger.info("Concierge stopped")


def _join_cluster(
    application: ConciergeApp, services: Services, settings: Settings
) -> tuple[ClusterDispatcher, AdvisoryLocks]:
    """Cluster mode's parts: the dispatcher, the shared-work lock, and alert delivery one
    process at a time (see bot/cluster.py)."""
    engine = services.storage.engine
    inbound = InboundUpdates(engine)
    locks = AdvisoryLocks(engine)
    dispatcher = ClusterDispatcher(
        application,
        inbound,
        locks,
        clock=services.clock,
        max_running=settings.max_concurrent_updates,
        metrics=services.metrics,
    )
    limiter = application.bot.rate_limiter
    budget = limiter.budget if isinstance(limiter, BudgetRateLimiter) else None
    application.bot_data[SHARED_WORK_KEY] = SharedWork(
        locks,
        inbound,
        services.clock,
        services.metrics,
        send_budget=budget if isinstance(budget, SharedSendBudget) else None,
    )
    watcher_of(application).deliver_one_at_a_time_with(
        lambda: held_everywhere(engine, ALERT_DELIVERY_LOCK)
    )
    return dispatcher, locks
