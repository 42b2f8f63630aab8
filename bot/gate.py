"""What reaches the conversations: new messages and presses in private chats, nothing else.

Telegram is asked only for the update types the bot handles (`ALLOWED_UPDATES`), and the gate
below drops, before any other handler runs, whatever comes anyway:

- an edited message never answers a prompt or re-runs a command (a reopen reason, a booking
  code, `/start` edited in an old message): it is dropped here, for every flow at once;
- channel posts, member and reaction updates the bot did not ask for;
- in a group, the bot takes part in no flow and posts nothing personal: a command there gets
  one short answer in the sender's language with a button that opens the private chat, and
  everything else is ignored (a press there is answered quietly by `bot.presses`);
- `my_chat_member` in a private chat says the user blocked (`kicked`) or unblocked the bot;
  alerts skip a blocked user until then.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from telegram import ChatMemberUpdated, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, MessageEntityType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, BaseHandler, TypeHandler

from conversations.account import FROM_GROUP
from conversations.context import ConciergeContext
from conversations.i18n import N_
from conversations.notify import BLOCKED_KEY, mark_blocked

logger = logging.getLogger(__name__)

GATE_GROUP: Final = -3  # before flood control (-2) and first contact (-1)
ALLOWED_UPDATES: Final = (Update.MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER)
IN_PRIVATE: Final = N_(
    "I keep repairs, bookings and accounts to our private chat. Tap below to continue there."
)
OPEN_PRIVATE: Final = N_("💬 Open the private chat")


def _command(message: Message, username: str) -> str | None:
    """The command a message starts with, if it is addressed to this bot (or to every bot)."""
    entity = next(iter(message.entities), None)
    if entity is None or entity.type != MessageEntityType.BOT_COMMAND or entity.offset != 0:
        return None
    command, _, addressee = message.parse_entity(entity)[1:].partition("@")
    if addressee and addressee.lower() != username.lower():
        return None
    return command


async def _answer_in_group(message: Message, context: ConciergeContext) -> None:
    """One short answer to a command in a group: the way to the private chat."""
    username = context.bot.username
    if _command(message, username) is None:
        return
    url = f"https://t.me/{username}?start={FROM_GROUP}"
    button = InlineKeyboardButton(context.t(OPEN_PRIVATE), url=url)
    try:
        await message.reply_text(
            context.t(IN_PRIVATE),
            reply_markup=InlineKeyboardMarkup([[button]]),
            do_quote=False,
        )
    except TelegramError as error:
        logger.info("could not answer a command in group %s: %s", message.chat_id, error)


async def _member_changed(change: ChatMemberUpdated, context: ConciergeContext) -> None:
    """A private chat's member update: the user blocked or unblocked the bot."""
    if change.chat.type != ChatType.PRIVATE:
        return
    user_id = change.chat.id
    services = context.services
    if change.new_chat_member.status == ChatMemberStatus.BANNED:
        logger.info("user %s blocked the bot", user_id)
        await mark_blocked(context.application, services, user_id)
    elif change.old_chat_member.status == ChatMemberStatus.BANNED:
        logger.info("user %s unblocked the bot", user_id)
        await services.people.set_blocked(user_id, None)
        data = context.application.user_data.get(user_id)
        if data is not None:
            data.pop(BLOCKED_KEY, None)


async def gate(update: Update, context: ConciergeContext) -> None:
    """Lets through only what the flows handle; see the module's docstring."""
    if update.my_chat_member is not None:
        await _member_changed(update.my_chat_member, context)
        raise ApplicationHandlerStop
    chat = update.effective_chat
    if update.message is None and update.callback_query is None:
        raise ApplicationHandlerStop  # edits, channel posts, reactions, members...
    if chat is None or chat.type != ChatType.PRIVATE:
        if update.message is not None:
            await _answer_in_group(update.message, context)
        raise ApplicationHandlerStop


def build_handlers() -> list[BaseHandler[Any, ConciergeContext, Any]]:
    """The gate, for a group of its own before every other."""
    return [TypeHandler(Update, gate)]
