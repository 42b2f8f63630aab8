"""Background jobs on PTB's JobQueue: delivering deferred writes."""

from __future__ import annotations

import logging
from typing import Any

from bot.alerts import watch_vendors
from bot.services import Services
from bot.settings import Settings
from conversations.context import SERVICES_KEY, ConciergeContext
from conversations.notify import tell

logger = logging.getLogger(__name__)


async def deliver_outbox(context: ConciergeContext) -> None:
    """Sends what the vendor could not take earlier, and tells each user how it went."""
    services: Services = context.bot_data[SERVICES_KEY]

    async def notify(telegram_id: int, message: str, values: dict[str, Any]) -> None:
        await tell(
            context.application, services, telegram_id, message, translate_values=True, **values
        )

    await services.outbox.deliver_due(desk_for=services.desk_for_residence, notify=notify)


def schedule_jobs(application: Any, settings: Settings) -> None:
    """Registers the repeating jobs."""
    application.job_queue.run_repeating(
        deliver_outbox,
        interval=settings.outbox_interval_seconds,
        first=settings.outbox_interval_seconds,
        name="outbox",
    )
    application.job_queue.run_repeating(
        watch_vendors,
        interval=settings.alert_poll_seconds,
        first=settings.alert_poll_seconds,
        name="alerts",
    )
