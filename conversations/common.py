"""What every conversation shares: cancel, time-out, drafts, the link offer, vendor failures.

Drafts are pydantic models kept in one place only, the drafts table: written in the same step
the user typed and read back at each update, so a crash loses no input and nothing older can
overwrite it. `user_data` holds no draft (it is flushed to the database only now and then, and
held in memory for every stored user from the start).
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited, Unavailable
from conversations import callbacks
from conversations.context import ConciergeContext
from conversations.i18n import N_
from conversations.oneflow import Flow
from conversations.ports import ResidentDesk
from conversations.roles import REFUSAL_MESSAGES, Action, Target, decide
from conversations.writes import Outcome

logger = logging.getLogger(__name__)

D = TypeVar("D", bound=BaseModel)

CANCEL_LABEL = N_("✖ Cancel")
MEDIA_GROUP_MAX: Final = 10  # Telegram's limit for one album


def new_command_id() -> str:
    """A vendor command id: 32 hex characters, chosen once per write and kept in the draft."""
    return uuid.uuid4().hex


def cancel_button(job: str, context: ConciergeContext) -> InlineKeyboardButton:
    """The Cancel button every step shows."""
    return InlineKeyboardButton(
        context.t(CANCEL_LABEL), callback_data=callbacks.build(job, "cancel")
    )


def with_cancel(
    rows: list[list[InlineKeyboardButton]], job: str, context: ConciergeContext
) -> InlineKeyboardMarkup:
    """A keyboard with the Cancel button as its last row."""
    return InlineKeyboardMarkup([*rows, [cancel_button(job, context)]])


async def save_draft(context: ConciergeContext, job: str, draft: BaseModel) -> None:
    """Keeps the draft in the database at once (one upsert, committed before returning)."""
    if context.user_id is not None:
        await context.services.storage.drafts.save(
            context.user_id, job, draft.model_dump(mode="json")
        )


async def load_draft(context: ConciergeContext, job: str, model: type[D]) -> D | None:
    """The user's saved draft of `job`, read from the database, or None."""
    if context.user_id is None:
        return None
    data = await context.services.storage.drafts.load(context.user_id, job)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        # A draft from an older version of the flow: start afresh rather than fail.
        logger.info("discarded an unreadable %s draft", job)
        return None


async def clear_draft(context: ConciergeContext, job: str) -> None:
    """Forgets the draft."""
    if context.user_id is not None:
        await context.services.storage.drafts.clear(context.user_id, job)


def write_refused(context: ConciergeContext, outcome: Outcome) -> str:
    """Why a write was not made, in plain words."""
    if outcome.error is not None:
        return vendor_failure(context, outcome.error)
    if outcome.reason:
        return context.t(outcome.reason)
    return context.t("Akubela could not do that right now. Please try again in a moment.")


def write_unknown(context: ConciergeContext) -> str:
    """A write whose answer was lost and whose result the vendor cannot show."""
    return context.t(
        "The answer was lost and I cannot see whether your request went through. "
        "Please check before you ask again."
    )


async def remove_buttons(update: Update) -> None:
    """Takes the keyboard off the message whose button was pressed."""
    query = update.callback_query
    if query is None or query.message is None:
        return
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except TelegramError:
        # Too old to edit, or already without buttons: nothing to undo.
        logger.debug("buttons already gone")


async def answer_press(update: Update) -> None:
    """Acknowledges a button press so the client stops its spinner."""
    if update.callback_query is not None:
        await update.callback_query.answer()


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


async def say(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Sends a new message in the chat the update came from."""
    chat = update.effective_chat
    if chat is None:
        return
    await chat.send_message(text, reply_markup=markup)


async def offer_link(update: Update, context: ConciergeContext, *, resume: str | None) -> None:
    """Asks an unlinked user to link their Akubela account, with a one-tap login link."""
    chat = update.effective_chat
    if chat is None:
        return
    url = await context.services.linker.login_url(chat.id, resume=resume)
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
    link = await context.services.accounts.resident(user.id)
    if link is not None and link.relink_required_at is None:
        await say(update, context.t("Please choose your residence first with /residence."))
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


async def cancel(update: Update, context: ConciergeContext, job: str) -> int:
    """Leaves the conversation and forgets its draft."""
    await answer_press(update)
    await remove_buttons(update)
    await clear_draft(context, job)
    await say(update, context.t("Cancelled. Nothing was sent."))
    return ConversationHandler.END


async def timed_out(update: Update, context: ConciergeContext, *, command: str) -> None:
    """Says the conversation ended for silence; the draft stays for `command` to resume."""
    await say(
        update,
        context.t(
            "I stopped waiting after a while without an answer. Your draft is kept: "
            "send {command} to pick up where you left off.",
            command=command,
        ),
    )


async def allowed(
    update: Update, context: ConciergeContext, action: Action, target: Target
) -> bool:
    """Whether the user may do `action` on `target`; when not, they are told politely."""
    if context.user_id is None:
        return False
    actor = await context.services.accounts.actor(
        context.user_id, admin_ids=frozenset(context.services.settings.admin_telegram_ids)
    )
    refusal = decide(actor, action, target)
    if refusal is None:
        return True
    logger.warning("user %s refused %s: %s", context.user_id, action.value, refusal.value)
    await say(update, context.t(REFUSAL_MESSAGES[refusal]))
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


Handlers = list[BaseHandler[Update, ConciergeContext, object]]
Callback = Callable[[Update, ConciergeContext], Coroutine[Any, Any, object]]


def browse_conversation(
    *,
    job: str,
    command: str,
    start: Callback,
    states: dict[object, Handlers],
    timeout: timedelta,
    aside: str,
    entry_points: Handlers | None = None,
) -> ConversationHandler[ConciergeContext]:
    """A conversation driven by buttons only (a list, a detail, a confirmation).

    Every state is a read-only view: typed text goes on to whatever it belongs to, and `aside`
    is said when another flow puts this one aside.

    It starts on `/<command>` or the menu's button for `job` (or any of `entry_points`, such as
    an alert's button); `/cancel` and the Cancel button leave it; an unexpected press gets a
    notice, typed text a hint, and silence the time-out.
    """

    async def press_stale(update: Update, context: ConciergeContext) -> None:
        logger.info("stale %s button pressed by user %s", job, context.user_id)
        query = update.callback_query
        if query is not None:
            await query.answer(context.t("That button is no longer active."), show_alert=True)
        await remove_buttons(update)

    async def receive_other(update: Update, context: ConciergeContext) -> None:
        await say(update, context.t("Please use the buttons above, or send /cancel to stop."))

    async def leave(update: Update, context: ConciergeContext) -> int:
        return await cancel(update, context, job)

    async def idle(update: Update, context: ConciergeContext) -> None:
        await timed_out(update, context, command=f"/{command}")

    # per_message stays False so /cancel and typed text reach the conversation; PTB warns that
    # buttons are then tracked per chat rather than per message, which is what these flows want
    # (every press is checked against the step it arrives in and what the user may see).
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="If 'per_message=False'", category=PTBUserWarning
        )
        return Flow(
            aside=aside,
            views=states.keys(),
            entry_points=[
                CommandHandler(command, start),
                CallbackQueryHandler(start, pattern=rf"^{callbacks.build('menu', job)}$"),
                *(entry_points or []),
            ],
            states={**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, idle)]},
            fallbacks=[
                CommandHandler("cancel", leave),
                CallbackQueryHandler(leave, pattern=rf"^{callbacks.build(job, 'cancel')}(:|$)"),
                CallbackQueryHandler(press_stale, pattern=callbacks.pattern(job)),
                MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, receive_other),
            ],
            name=job,
            persistent=True,
            conversation_timeout=timeout,
            allow_reentry=True,
        )
