"""The command menu Telegram shows beside the text box, per role and language.

Everyone starts with the default menu (set at start, per language): what a newcomer can do.
Once a user's role is known (an Akubela account linked, an invite accepted, an account
unlinked, or simply /start), their own chat gets a menu of exactly their commands
(`BotCommandScopeChat`) in the language they chose in the bot: a resident never sees /assign,
a manager sees /assign, /repairs_all and /bookings_pending. The chat's menu is written without a
language code, so it is the one Telegram shows whatever the client's language is; the bot's
language, not the phone's, decides its words, as it does for every reply.
"""

from __future__ import annotations

import logging
from typing import Final

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from conversations.domain import Actor, Role
from conversations.i18n import LANGUAGES, N_, tr

logger = logging.getLogger(__name__)

Entry = tuple[str, str]

_FIRST: Final[tuple[Entry, ...]] = (("start", N_("Menu")),)
_RESIDENT: Final[tuple[Entry, ...]] = (
    ("repair", N_("Report a repair")),
    ("repairs", N_("My repairs")),
    ("book", N_("Book an amenity")),
    ("bookings", N_("My bookings")),
)
_WORKER: Final[tuple[Entry, ...]] = (("tasks", N_("Maintenance tasks")),)
_MANAGER: Final[tuple[Entry, ...]] = (
    ("tasks", N_("Maintenance tasks")),
    ("assign", N_("Assign a task")),
    ("repairs_all", N_("Every repair in the community")),
    ("bookings_pending", N_("Bookings waiting for approval")),
    ("alerts", N_("Choose which alerts you get")),
)
_LAST: Final[tuple[Entry, ...]] = (
    ("help", N_("What I can do")),
    ("language", N_("English / 中文")),
    ("cancel", N_("Leave what you are doing")),
)

DEFAULT_COMMANDS: Final = (*_FIRST, *_RESIDENT, *_LAST)
"""The menu of someone the bot does not know yet: most newcomers are residents."""


def commands_for(actor: Actor) -> tuple[Entry, ...]:
    """The commands this user's role can use, in menu order."""
    entries: list[Entry] = list(_FIRST)
    if actor.residence_ids or actor.role is Role.RESIDENT:
        entries += _RESIDENT
    if actor.role is Role.WORKER:
        entries += _WORKER
    if actor.role in (Role.MANAGER, Role.ADMIN):
        entries += _MANAGER
    return (*entries, *_LAST)


def _menu(entries: tuple[Entry, ...], lang: str) -> list[BotCommand]:
    return [BotCommand(name, tr(lang, text)) for name, text in entries]


async def set_default_commands(bot: Bot) -> None:
    """The menu for everyone without their own, in each language (English when no other)."""
    for lang in LANGUAGES:
        await bot.set_my_commands(
            _menu(DEFAULT_COMMANDS, lang), language_code=None if lang == "en" else lang
        )


async def set_chat_commands(bot: Bot, chat_id: int, actor: Actor, lang: str) -> None:
    """This user's own menu, for their role, in their language.

    A menu that cannot be set is logged and left as it was: it is a convenience, and the step
    that changed the role (a link, an invite) must not fail for it."""
    try:
        await bot.set_my_commands(
            _menu(commands_for(actor), lang), scope=BotCommandScopeChat(chat_id)
        )
    except TelegramError as error:
        logger.warning("could not set the command menu of a chat: %s", type(error).__name__)
