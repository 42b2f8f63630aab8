"""/alerts: which alerts a manager gets, and everyone's quiet hours.

The switches are kept in the user's data under `SWITCHED_OFF_KEY`, where the alert watcher
(bot.alert_delivery) reads them before each delivery; quiet hours are kept with the user (People).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import time
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from conversations import callbacks
from conversations.account import actor_of, answer_stale
from conversations.context import ConciergeContext
from conversations.i18n import N_, tr
from conversations.roles import REFUSAL_MESSAGES, Action, decide

logger = logging.getLogger(__name__)

SWITCHED_OFF_KEY = "alerts_off"  # persisted in user data: never rename

JOB = "alerts"
MSG_SWITCHES = N_("🔔 Tap an alert to switch it on or off.")
MSG_QUIET_OFF = N_("Quiet hours: off. Set them with /alerts quiet 22:00-07:00.")
MSG_QUIET_ON = N_(
    "Quiet hours: {start}–{end}; only urgent alerts come then. "
    "Turn them off with /alerts quiet off."
)
MSG_QUIET_BAD = N_(
    "I could not read those hours. Write them like /alerts quiet 22:00-07:00, "
    "or /alerts quiet off."
)
MSG_SAVED = N_("Alert settings saved.")
_HOURS = re.compile(r"^\s*(\d{1,2})[:.：](\d{2})\s*[-–~至到]\s*(\d{1,2})[:.：](\d{2})\s*$")


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """Reads "22:00-07:00" (also "22.00–7.00", "22:00至07:00"); None when it is not that."""
    match = _HOURS.match(text)
    if match is None:
        return None
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        return None
    return time(h1, m1), time(h2, m2)


def switches_markup(
    switches: Mapping[str, str], switched_off: Iterable[str], lang: str
) -> InlineKeyboardMarkup:
    """One button per kind a manager may switch off ({kind: label}), showing whether it is on."""
    off = set(switched_off)
    rows = [
        [
            InlineKeyboardButton(
                ("🔕 " if kind in off else "✅ ") + tr(lang, label),
                callback_data=callbacks.build(JOB, "toggle", kind),
            )
        ]
        for kind, label in switches.items()
    ]
    return InlineKeyboardMarkup(rows)


def _switched_off(context: ConciergeContext) -> list[str]:
    data = context.user_data if context.user_data is not None else {}
    return [str(kind) for kind in data.get(SWITCHED_OFF_KEY) or ()]


async def _quiet_line(context: ConciergeContext, telegram_id: int) -> str:
    hours = await context.services.people.quiet_hours(telegram_id)
    if hours is None:
        return context.t(MSG_QUIET_OFF)
    start, end = hours
    return context.t(MSG_QUIET_ON, start=start.strftime("%H:%M"), end=end.strftime("%H:%M"))


async def show_alert_settings(update: Update, context: ConciergeContext) -> None:
    """Shows the manager's switches and everyone's quiet hours; `quiet ...` sets those."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    args = context.args or []
    if args and args[0].lower() in {"quiet", "静音"}:
        rest = " ".join(args[1:])
        people = context.services.people
        if rest.strip().lower() in {"off", "关", "关闭"}:
            await people.set_quiet_hours(user.id, None, None)
        else:
            hours = parse_quiet_hours(rest)
            if hours is None:
                await message.reply_text(context.t(MSG_QUIET_BAD))
                return
            await people.set_quiet_hours(user.id, *hours)
    actor = await actor_of(update, context)
    quiet = await _quiet_line(context, user.id)
    if decide(actor, Action.ALERTS_CONFIGURE) is not None:
        await message.reply_text(quiet)
        return
    await message.reply_text(
        context.t(MSG_SWITCHES) + "\n" + quiet,
        reply_markup=switches_markup(
            context.services.alert_switches, _switched_off(context), context.lang
        ),
    )


async def toggle_alert_kind(update: Update, context: ConciergeContext) -> None:
    """Switches one kind on or off for the manager who pressed, and redraws the buttons."""
    query = update.callback_query
    if query is None:
        return
    press = callbacks.parse(query.data, job=JOB)
    switches = context.services.alert_switches
    if press is None or press.action != "toggle" or press.arg not in switches:
        await answer_stale(update, context)
        return
    actor = await actor_of(update, context)
    refusal = decide(actor, Action.ALERTS_CONFIGURE)
    if refusal is not None:
        await query.answer(context.t(REFUSAL_MESSAGES[refusal]), show_alert=True)
        return
    off = set(_switched_off(context))
    off ^= {press.arg}
    if context.user_data is not None:
        context.user_data[SWITCHED_OFF_KEY] = sorted(off)
    await query.answer(context.t(MSG_SAVED))
    try:
        await query.edit_message_reply_markup(
            reply_markup=switches_markup(switches, off, context.lang)
        )
    except BadRequest:
        # The message may be too old to edit; the switch itself is saved.
        logger.debug("could not redraw the alert switches")


def build_handlers() -> list[BaseHandler[Any, ConciergeContext, Any]]:
    """/alerts and its buttons."""
    return [
        CommandHandler("alerts", show_alert_settings),
        CallbackQueryHandler(toggle_alert_kind, pattern=callbacks.pattern(JOB)),
    ]
