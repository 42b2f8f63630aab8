"""Messages to a user outside their own conversation (results of deferred writes, a link that
went through), in that user's language; alerts go through `bot.alert_watcher` instead, which keeps
them until they are due."""

from __future__ import annotations

import logging
from typing import Any

from telegram.error import Forbidden, TelegramError

from conversations.context import LANGUAGE_KEY
from conversations.i18n import pick_language, tr
from conversations.ports import Ports

logger = logging.getLogger(__name__)

BLOCKED_KEY = "blocked"


async def mark_blocked(application: Any, services: Ports, telegram_id: int) -> None:
    """Telegram said this user blocked the bot: stop alerting them until they write again.

    The flag also goes into the user's persisted data, which is what the bot sees first when
    they do write again (and so knows to lift the block).
    """
    await services.people.set_blocked(telegram_id, services.clock())
    data = application.user_data.get(telegram_id)
    if data is not None:
        data[BLOCKED_KEY] = True
        application.mark_data_for_update_persistence(user_ids=telegram_id)


async def language_of(application: Any, services: Ports, telegram_id: int) -> str:
    """The language a user reads: their choice in the bot, else what we stored for them."""
    chosen = application.user_data.get(telegram_id, {}).get(LANGUAGE_KEY)
    if chosen:
        return pick_language(chosen, None)
    return pick_language(await services.people.language(telegram_id), None)


async def tell(
    application: Any,
    services: Ports,
    telegram_id: int,
    message: str,
    /,
    *,
    translate_values: bool = False,
    **values: Any,
) -> bool:
    """Sends `message` (a message id) in the user's language; False when it did not arrive.

    With `translate_values`, string values are message ids too (a reason, a state) and are
    translated; otherwise they are shown as given (names, a reason a manager typed).
    """
    lang = await language_of(application, services, telegram_id)
    if translate_values:
        values = {k: tr(lang, v) if isinstance(v, str) else v for k, v in values.items()}
    try:
        await application.bot.send_message(telegram_id, tr(lang, message, **values))
    except Forbidden:
        logger.info("user %s has blocked the bot; marked", telegram_id)
        await mark_blocked(application, services, telegram_id)
        return False
    except TelegramError as exc:
        logger.warning("could not tell user %s: %s", telegram_id, type(exc).__name__)
        return False
    return True
