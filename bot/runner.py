"""Runs the bot for real: polling or webhook, the web server beside it, one clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from typing import Any

import uvicorn
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from telegram import Update
from telegram.error import TelegramError

from bot.app import build_application
from bot.gate import ALLOWED_UPDATES
from bot.persistence import DatabasePersistence
from bot.services import Services
from bot.settings import Settings
from bot.storage.migrate import upgrade
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
    persistence = DatabasePersistence(
        services.storage.sessions, update_interval=settings.persistence_update_interval
    )
    application = build_application(settings, services, persistence=persistence)
    webhook = settings.run_mode == "webhook"

    async def health() -> bool:
        try:
            async with services.storage.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return application.running

    async def on_update(payload: dict[str, Any]) -> None:
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
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await application.stop()
    finally:
        await services.aclose()
    logger.info("Concierge stopped")
