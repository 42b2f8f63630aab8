"""Background jobs on PTB's JobQueue: delivering deferred writes."""

from __future__ import annotations

import logging
from typing import Any

from telegram.error import Forbidden, TelegramError

from bot.alerts import watch_vendors
from bot.services import Services
from bot.settings import Settings
from conversations.context import LANGUAGE_KEY, SERVICES_KEY, ConciergeContext
from conversations.i18n import pick_language, tr

logger = logging.getLogger(__name__)


async def language_of(application: Any, services: Services, telegram_id: int) -> str:
    """The language a user reads: their choice in the bot, else what we stored for them."""
    chosen = application.user_data.get(telegram_id, {}).get(LANGUAGE_KEY)
    if chosen:
        return pick_language(chosen, None)
    user = await services.storage.users.get(telegram_id)
    return pick_language(user.language if user else None, None)


async def tell(
    context: ConciergeContext, telegram_id: int, message: str, values: dict[str, Any]
) -> None:
    """Sends a message outside any conversation, in the user's language."""
    services = context.services
    lang = await language_of(context.application, services, telegram_id)
    # Values that are message ids themselves (a reason, a state) are translated too.
    shown = {k: tr(lang, v) if isinstance(v, str) else v for k, v in values.items()}
    try:
        await context.bot.send_message(telegram_id, tr(lang, message, **shown))
    except Forbidden:
        logger.info("user %s has blocked the bot; marked", telegram_id)
        await services.storage.users.set_blocked(telegram_id, services.clock())
    except TelegramError as exc:
        logger.warning("could not tell user %s: %s", telegram_id, type(exc).__name__)


async def deliver_outbox(context: ConciergeContext) -> None:
    """Sends what the vendor could not take earlier, and tells each user how it went."""
    services: Services = context.bot_data[SERVICES_KEY]

    async def notify(telegram_id: int, message: str, values: dict[str, Any]) -> None:
        await tell(context, telegram_id, message, values)

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
