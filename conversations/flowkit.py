"""The flow kit: the scaffolding every conversation is built on, written once.

A conversation module holds only its steps (what it asks, what it accepts, what it does, one
function per transition, as PTB's `examples/conversationbot.py` reads) and hands them to
`build`. The kit owns the rest:

- **Building the flow**: the entry points (`/<command>`, the menu's button, any extra), the
  states, the fallbacks, `/cancel` and the exit button in every step, the time-out, the
  persistence name (a stable key from `conversations.keys`), the ConversationHandler options.
- **Buttons**: callback data built one way (`button`, `on`), the exit button's words ("Stop"
  abandons a draft, "Close" leaves a view; neither is a vendor's "Cancel booking").
- **Presses**: answered at once and once (`answer`), an answered prompt's keyboard taken off
  (`take`); a press the step does not expect, old or forged, refused with one notice.
- **Showing**: `show` edits the pressed message in place when answering a press (a list, a
  detail and back stay one message) and sends otherwise; an edit Telegram refuses (older than
  48 h, deleted, a photo) becomes a new message. `notice` is a pop-up for a press.
- **Drafts**: kept only in the drafts table, written the moment the user types.

Keyboards follow the conversation in `conversations.oneflow.Flow`: a superseded, finished,
cancelled, put-aside or timed-out prompt loses its buttons.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import MessageLimit
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

from conversations import callbacks, keys
from conversations.context import ConciergeContext
from conversations.i18n import N_
from conversations.oneflow import Flow, Resumable, take_prompt_off

logger = logging.getLogger(__name__)

D = TypeVar("D", bound=BaseModel)
S = TypeVar("S")
Handlers = list[BaseHandler[Any, ConciergeContext, Any]]
Callback = Callable[[Update, ConciergeContext], Coroutine[Any, Any, object]]
END = ConversationHandler.END

STOP_LABEL = N_("✖ Stop")
"""The exit of a flow that builds something: the draft is abandoned."""
CLOSE_LABEL = N_("✖ Close")
"""The exit of a view: the list or detail goes away, nothing changes."""
STALE = N_("This button is no longer active.")
HINT = N_("Please use the buttons above, or send /cancel to stop.")
CANCELLED = N_("Cancelled. Nothing was sent.")
CLOSED = N_("Closed.")


# ---- buttons ---------------------------------------------------------------------------------


def button(job: str, label: str, action: str, arg: str = "") -> InlineKeyboardButton:
    """A button of `job` (a key of `conversations.keys`) whose press is `action` [`arg`]."""
    return InlineKeyboardButton(label, callback_data=callbacks.build(job, action, arg))


def on(job: str, action: str) -> str:
    """The pattern of `job`'s presses with `action` (a regex alternation allowed), with or
    without an argument."""
    return rf"^{callbacks.VERSION}:{job}:{action}(:|$)"


def exit_label(job: str) -> str:
    """The message id of `job`'s exit button: Stop for a draft, Close for a view."""
    return STOP_LABEL if job in keys.DRAFTING else CLOSE_LABEL


def exit_button(job: str, context: ConciergeContext) -> InlineKeyboardButton:
    """The exit button every step shows."""
    return button(job, context.t(exit_label(job)), "cancel")


def keyboard(
    rows: list[list[InlineKeyboardButton]], job: str, context: ConciergeContext
) -> InlineKeyboardMarkup:
    """A step's keyboard: its rows, then the exit button."""
    return InlineKeyboardMarkup([*rows, [exit_button(job, context)]])


def retry_keyboard(
    job: str, context: ConciergeContext, action: str, arg: str = ""
) -> InlineKeyboardMarkup:
    """Try again (the press that failed, once more), and the exit."""
    return keyboard([[button(job, context.t(N_("🔁 Try again")), action, arg)]], job, context)


def pager(
    job: str, context: ConciergeContext, page: int, pages: int, action: str = "page"
) -> list[list[InlineKeyboardButton]]:
    """The row that turns the pages of a list (none when it has one page); `action` carries
    the page to show."""
    turn = []
    if page > 0:
        turn.append(button(job, context.t(N_("◀ Previous")), action, str(page - 1)))
    if page < pages - 1:
        turn.append(button(job, context.t(N_("Next ▶")), action, str(page + 1)))
    return [turn] if turn else []


def pressed(update: Update, job: str) -> callbacks.Press | None:
    """The press of `job` this update carries, or None (no press, or not this job's)."""
    query = update.callback_query
    return callbacks.parse(query.data if query is not None else None, job=job)


def arg(update: Update, job: str) -> str:
    """The argument of the press of `job` this update carries ("" when none)."""
    press = pressed(update, job)
    return press.arg if press is not None else ""


# ---- presses and what the user sees -----------------------------------------------------------


async def answer(update: Update) -> None:
    """Acknowledges a press so the client stops its spinner (the bot answers once)."""
    if update.callback_query is not None:
        await update.callback_query.answer()


async def remove_buttons(update: Update) -> None:
    """Takes the keyboard off the message whose button was pressed."""
    query = update.callback_query
    if query is None or query.message is None:
        return
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except TelegramError:
        # Too old to edit, or deleted: nothing to undo.
        logger.debug("buttons already gone")


async def take(update: Update) -> None:
    """A press answered and its prompt's buttons taken off (the step moves on below it)."""
    await answer(update)
    await remove_buttons(update)


async def say(update: Update, text: str, markup: Any = None) -> Message | None:
    """Sends a new message in the chat the update came from."""
    chat = update.effective_chat
    if chat is None:
        return None
    return await chat.send_message(text, reply_markup=markup)


async def show(
    update: Update,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    in_place: bool = True,
) -> None:
    """Shows a view: the pressed text message becomes it (list → detail → back is one
    message), else a new message. `in_place=False` keeps the pressed message as it was (an
    alert stays an alert). An edit Telegram refuses becomes a new message."""
    query = update.callback_query
    message = query.message if query is not None else None
    # A text over Telegram's limit goes out in pieces (the bot splits it); one message
    # cannot hold it.
    fits = len(text.encode("utf-16-le")) // 2 <= MessageLimit.MAX_TEXT_LENGTH
    if in_place and fits and isinstance(message, Message) and message.text is not None:
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramError:
            logger.debug("could not edit in place; sending anew")
    if in_place:
        await remove_buttons(update)
    await say(update, text, markup)


async def notice(update: Update, text: str) -> None:
    """A pop-up for a press (a message after anything else); the chat stays as it is."""
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    else:
        await say(update, text)


# ---- drafts ----------------------------------------------------------------------------------


async def save_draft(context: ConciergeContext, job: str, draft: BaseModel) -> None:
    """Keeps the draft in the database at once (one upsert, committed before returning)."""
    if context.user_id is not None:
        await context.services.drafts.save(context.user_id, job, draft.model_dump(mode="json"))


async def load_draft(context: ConciergeContext, job: str, model: type[D]) -> D | None:
    """The user's saved draft of `job`, read from the database, or None."""
    if context.user_id is None:
        return None
    data = await context.services.drafts.load(context.user_id, job)
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
        await context.services.drafts.clear(context.user_id, job)


# ---- what every flow does the same way ----------------------------------------------------------


def leave(job: str) -> Callback:
    """The handler that ends `job`'s flow (/cancel, its exit button, a typed exit label)."""

    async def leave(update: Update, context: ConciergeContext) -> int:
        # The draft is forgotten, and a reply keyboard a step showed goes too. A draft says
        # nothing was sent; a view just closes.
        await take(update)
        await clear_draft(context, job)
        said = CANCELLED if job in keys.DRAFTING else CLOSED
        await say(update, context.t(said), ReplyKeyboardRemove())
        return END

    return leave


async def stale(update: Update, context: ConciergeContext, state: S) -> S:
    """A press the step does not expect, old or forged: one notice, and the flow stays in
    `state`."""
    logger.info("stale button pressed by user %s", context.user_id)
    await notice(update, context.t(STALE))
    return state


async def _refuse(update: Update, context: ConciergeContext) -> None:
    await stale(update, context, None)


async def _hint(update: Update, context: ConciergeContext) -> None:
    """Typing where buttons are expected: a hint, same step."""
    await say(update, context.t(HINT))


def _idle(job: str, resume: Callable[[ConciergeContext], Awaitable[str]]) -> Callback:
    async def idle(update: Update, context: ConciergeContext) -> None:
        """Silence: the prompt's buttons go, and the user is told how to pick up again."""
        await take_prompt_off(context, job)
        await say(
            update,
            context.t(
                "I stopped waiting after a while without an answer. Your draft is kept: "
                "send {command} to pick up where you left off.",
                command=await resume(context),
            ),
        )

    return idle


def build(
    *,
    job: str,
    command: str,
    start: Callback,
    states: Mapping[object, Handlers],
    timeout: timedelta,
    aside: str,
    kept: str | None = None,
    resumable: Resumable | None = None,
    aside_in: Mapping[object, str] | None = None,
    views: Collection[object] = (),
    entry_points: Handlers | None = None,
    fallbacks: Handlers | None = None,
    unexpected: Callback | None = None,
    resume: Callable[[ConciergeContext], Awaitable[str]] | None = None,
    allow_reentry: bool = True,
) -> Flow:
    """One flow: `job` (a key of `conversations.keys`) names it in persistence, its drafts
    and its buttons; `/<command>` and the menu's button start it with `start`.

    Every step gets, before its own handlers, the exit button; after them (as fallbacks)
    `/cancel`, any of `fallbacks`, the refusal of this flow's other presses, and `unexpected`
    (default: a hint to use the buttons) for any other message. Silence ends the flow after
    `timeout`, naming `resume` (default `/<command>`). `aside`, `kept`, `resumable`,
    `aside_in` and `views` are `Flow`'s.
    """
    end = leave(job)
    exit_press = CallbackQueryHandler(end, pattern=on(job, "cancel"))

    async def same_command(context: ConciergeContext) -> str:
        return f"/{command}"

    steps: dict[object, Handlers] = {state: [exit_press, *h] for state, h in states.items()}
    steps[ConversationHandler.TIMEOUT] = [TypeHandler(Update, _idle(job, resume or same_command))]
    # per_message stays False so typed answers and /cancel reach the conversation; PTB warns
    # that buttons are then tracked per chat rather than per message, which is what these
    # flows want (every press is checked against the step it arrives in).
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="If 'per_message=False'", category=PTBUserWarning
        )
        return Flow(
            aside=aside,
            kept=kept,
            resumable=resumable,
            aside_in=aside_in,
            views=views,
            entry_points=[
                CommandHandler(command, start),
                CallbackQueryHandler(start, pattern=rf"^{callbacks.build(keys.MENU, job)}$"),
                *(entry_points or []),
            ],
            states=steps,
            fallbacks=[
                CommandHandler("cancel", end),
                exit_press,
                *(fallbacks or []),
                CallbackQueryHandler(_refuse, pattern=callbacks.pattern(job)),
                MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, unexpected or _hint),
            ],
            name=job,
            persistent=True,
            conversation_timeout=timeout,
            allow_reentry=allow_reentry,
        )
