"""The running bot's type, named once for every module that is handed the application."""

from __future__ import annotations

from typing import Any, cast

from telegram.ext import Application, ExtBot

from conversations.context import ConciergeContext

# The bot, the handlers' context and the three dicts of user, chat and bot data; the job
# queue is PTB's default one.
ConciergeApp = Application[
    ExtBot[None],
    ConciergeContext,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    Any,
]


def application_of(context: ConciergeContext) -> ConciergeApp:
    """The running bot a handler's or a job's context belongs to."""
    # PTB types `CallbackContext.application` with a context type variable it never binds, so
    # the type checker cannot tell it back; every context this bot makes is a ConciergeContext.
    return cast("ConciergeApp", context.application)
