"""The running bot's type for the wiring (named beside the context, in conversations/context.py,
so the flows can be handed it too), and the one cast that recovers it from a context."""

from __future__ import annotations

from typing import cast

from conversations.context import ConciergeApp, ConciergeContext

__all__ = ["ConciergeApp", "application_of"]


def application_of(context: ConciergeContext) -> ConciergeApp:
    """The running bot a handler's or a job's context belongs to."""
    # PTB types `CallbackContext.application` with a context type variable it never binds, so
    # the type checker cannot tell it back; every context this bot makes is a ConciergeContext.
    return cast("ConciergeApp", context.application)
