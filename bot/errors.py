"""The one error handler: log with context (never secrets or what the user typed), apologise."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden, TelegramError

from conversations.context import ConciergeContext
from conversations.notify import mark_blocked

logger = logging.getLogger(__name__)


async def on_error(update: object, context: ConciergeContext) -> None:
    """Logs an unhandled failure and tells the user, in their language, that it was ours."""
    error = context.error
    where = "job" if update is None else type(update).__name__
    update_id = update.update_id if isinstance(update, Update) else None
    user_id = (
        update.effective_user.id if isinstance(update, Update) and update.effective_user else None
    )
    logger.error(
        "unhandled %s in %s (update %s, user %s)",
        type(error).__name__,
        where,
        update_id,
        user_id,
        exc_info=error,
    )
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        await context.bot.send_message(
            update.effective_chat.id,
            context.t("Sorry, something went wrong on our side. Please try again in a moment."),
        )
    except Forbidden:
        logger.info("user %s has blocked the bot; no apology sent", user_id)
        if user_id is not None:
            await mark_blocked(context.application, context.services, user_id)
    except TelegramError as exc:
        logger.warning("could not apologise to user %s: %s", user_id, type(exc).__name__)
