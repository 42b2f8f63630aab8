"""What the conversations' steps share: the link offer, the resident's desk, vendor failures
in words, permission checks, albums. The scaffolding of a flow (buttons, presses, showing,
cancel, time-out, drafts) is `conversations.flowkit`'s.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Final, TypeVar

from pydantic import BaseModel
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError

from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from conversations import flowkit
from conversations.context import ConciergeContext
from conversations.ports import ResidentDesk
from conversations.roles import REFUSAL_MESSAGES, Action, Target, decide
from conversations.writes import Outcome, Result

logger = logging.getLogger(__name__)

D = TypeVar("D", bound=BaseModel)

MEDIA_GROUP_MAX: Final = 10  # Telegram's limit for one album


def new_command_id() -> str:
    """A vendor command id: 32 hex characters, chosen once per write and kept in the draft."""
    return uuid.uuid4().hex


def write_refused(context: ConciergeContext, outcome: Outcome) -> str:
    """Why a write was not made, in plain words."""
    if outcome.error is not None:
        return vendor_failure(context, outcome.error)
    if outcome.reason:
        return context.t(outcome.reason)
    return context.t("Akubela could not do that right now. Please try again in a moment.")


async def told_undecided(
    update: Update, context: ConciergeContext, outcome: Outcome, kept: str
) -> bool:
    """A write neither done nor refused: kept to be sent later (`kept`, a message id, unless
    the outcome says why), or its answer lost. The user is told; True then, and the flow ends."""
    if outcome.result is Result.KEPT:
        await flowkit.say(update, context.t(outcome.reason or kept))
        return True
    if outcome.result is Result.UNKNOWN:
        await flowkit.say(update, write_unknown(context))
        return True
    return False


def write_unknown(context: ConciergeContext) -> str:
    """A write whose answer was lost and whose result the vendor cannot show."""
    return context.t(
        "The answer was lost and I cannot see whether your request went through. "
        "Please check before you ask again."
    )


async def typing(update: Update, context: ConciergeContext) -> None:
    """Shows "typing…" while a vendor call runs."""
    chat = update.effective_chat
    if chat is not None:
        try:
            await context.bot.send_chat_action(chat.id, ChatAction.TYPING)
        except TelegramError:
            logger.debug("could not show typing")


def reply_target(update: Update) -> Message | None:
    """Where to answer: the user's message, or the message whose button was pressed."""
    if update.callback_query is not None and isinstance(update.callback_query.message, Message):
        return update.callback_query.message
    return update.effective_message


async def offer_link(update: Update, context: ConciergeContext, *, resume: str | None) -> None:
    """Asks an unlinked user to link their Akubela account, with a one-tap login link."""
    chat = update.effective_chat
    if chat is None:
        return
    url = await context.services.directory.login_url(chat.id, resume=resume)
    button = InlineKeyboardButton(context.t("🔗 Link your Akubela account"), url=url)
    await chat.send_message(
        context.t(
            "To report repairs and book amenities, link your Akubela account. "
            "The link opens Akubela's login page and is valid for a few minutes."
        ),
        reply_markup=InlineKeyboardMarkup([[button]]),
    )


async def resident_desk(
    update: Update, context: ConciergeContext, *, resume: str
) -> ResidentDesk | None:
    """The resident's desk, or None after telling them to link or to pick a residence."""
    user = update.effective_user
    if user is None:
        return None
    desk = await context.services.resident_desk(user.id)
    if desk is not None:
        return desk
    if not await context.services.directory.login_lost(user.id):
        await flowkit.say(update, context.t("Please choose your residence first with /residence."))
    else:
        # Not linked, or Akubela no longer takes the login: either way, sign in.
        await offer_link(update, context, resume=resume)
    return None


def vendor_failure(context: ConciergeContext, error: ApiError) -> str:
    """What happened, in plain words, for a vendor failure (never the raw error)."""
    if isinstance(error, AuthError):
        return context.t(
            "Akubela no longer accepts your login. Please link your account again with /start."
        )
    if isinstance(error, NotFound):
        return context.t("That record no longer exists; it may have been removed meanwhile.")
    if isinstance(error, RateLimited):
        return context.t("Akubela is busy right now. Please try again in a minute.")
    if isinstance(error, Unavailable):
        return context.t("Akubela is not answering right now. Please try again in a moment.")
    if isinstance(error, InvalidRequest):
        return context.t("Akubela refused that: {reason}", reason=error.message)
    return context.t("Akubela could not do that right now. Please try again in a moment.")


async def allowed(
    update: Update, context: ConciergeContext, action: Action, target: Target
) -> bool:
    """Whether the user may do `action` on `target`; when not, they are told politely."""
    if context.user_id is None:
        return False
    actor = await context.services.directory.actor(context.user_id)
    refusal = decide(actor, action, target)
    if refusal is None:
        return True
    logger.warning("user %s refused %s: %s", context.user_id, action.value, refusal.value)
    await flowkit.say(update, context.t(REFUSAL_MESSAGES[refusal]))
    return False


async def send_album(update: Update, media: Sequence[str | bytes], caption: str) -> None:
    """Photos (Telegram file ids or image bytes) as one photo or one album, captioned once."""
    chat = update.effective_chat
    media = list(media)[:MEDIA_GROUP_MAX]
    if chat is None or not media:
        return
    try:
        if len(media) == 1:
            await chat.send_photo(media[0], caption=caption)
        else:
            album = [
                InputMediaPhoto(m, caption=caption if i == 0 else None)
                for i, m in enumerate(media)
            ]
            await chat.send_media_group(album)
    except TelegramError as error:
        # The details follow anyway; a photo Telegram will not take is not worth failing for.
        logger.warning("photos could not be sent: %s", type(error).__name__)
