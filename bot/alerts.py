"""/alerts: managers switch their own alert kinds on and off (kept in their user_data, read by
`bot.alert_delivery`); everyone sets quiet hours (`/alerts quiet 22:00-07:00`,
`/alerts quiet off`). The watcher itself is `bot.alert_watcher`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import time
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot.account import actor_of, answer_stale
from bot.alert_kinds import MANAGER_KINDS, SWITCHED_OFF_KEY
from conversations import callbacks
from conversations.context import ConciergeContext
from conversations.i18n import N_, tr
from conversations.roles import REFUSAL_MESSAGES, Action, decide

logger = logging.getLogger(__name__)

# ---- /alerts ---------------------------------------------------------------------------------

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


def switches_markup(switched_off: Iterable[str], lang: str) -> InlineKeyboardMarkup:
    """One button per manager kind, showing whether it is on."""
    off = set(switched_off)
    rows = [
        [
            InlineKeyboardButton(
                ("🔕 " if kind.value in off else "✅ ") + tr(lang, label),
                callback_data=callbacks.build(JOB, "toggle", kind.value),
            )
        ]
        for kind, label in MANAGER_KINDS.items()
    ]
    return InlineKeyboardMarkup(rows)


def _switched_off(context: ConciergeContext) -> list[str]:
    data = context.user_data if context.user_data is not None else {}
    return [str(kind) for kind in data.get(SWITCHED_OFF_KEY) or ()]


async def _quiet_line(context: ConciergeContext, telegram_id: int) -> str:
    user = await context.services.storage.users.get(telegram_id)
    if user is None or user.quiet_hours_start is None or user.quiet_hours_end is None:
        return context.t(MSG_QUIET_OFF)
    return context.t(
        MSG_QUIET_ON,
        start=user.quiet_hours_start.strftime("%H:%M"),
        end=user.quiet_hours_end.strftime("%H:%M"),
    )


async def show_alert_settings(update: Update, context: ConciergeContext) -> None:
    """Shows the manager's switches and everyone's quiet hours; `quiet ...` sets those."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None:
        return
    args = context.args or []
    if args and args[0].lower() in {"quiet", "静音"}:
        rest = " ".join(args[1:])
        storage = context.services.storage
        if rest.strip().lower() in {"off", "关", "关闭"}:
            await storage.users.set_quiet_hours(user.id, None, None)
        else:
            hours = parse_quiet_hours(rest)
            if hours is None:
                await message.reply_text(context.t(MSG_QUIET_BAD))
                return
            await storage.users.set_quiet_hours(user.id, *hours)
    actor = await actor_of(update, context)
    quiet = await _quiet_line(context, user.id)
    if decide(actor, Action.ALERTS_CONFIGURE) is not None:
        await message.reply_text(quiet)
        return
    await message.reply_text(
        context.t(MSG_SWITCHES) + "\n" + quiet,
        reply_markup=switches_markup(_switched_off(context), context.lang),
    )


async def toggle_alert_kind(update: Update, context: ConciergeContext) -> None:
    """Switches one kind on or off for the manager who pressed, and redraws the buttons."""
    query = update.callback_query
    if query is None:
        return
    press = callbacks.parse(query.data, job=JOB)
    kinds = {kind.value for kind in MANAGER_KINDS}
    if press is None or press.action != "toggle" or press.arg not in kinds:
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
        await query.edit_message_reply_markup(reply_markup=switches_markup(off, context.lang))
    except BadRequest:
        # The message may be too old to edit; the switch itself is saved.
        logger.debug("could not redraw the alert switches")


def build_handlers() -> list[BaseHandler[Any, ConciergeContext, Any]]:
    """/alerts and its buttons."""
    return [
        CommandHandler("alerts", show_alert_settings),
        CallbackQueryHandler(toggle_alert_kind, pattern=callbacks.pattern(JOB)),
    ]
