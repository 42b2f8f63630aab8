"""Every press answered exactly once, within a second, before any vendor call.

Telegram keeps a button's spinner turning until the bot answers the press, and accepts one
answer only, within a short while. Handlers answer where they know what to say; this module
makes sure of the rest, in one place rather than in every handler:

- `ConciergeApplication.process_update` notes each press with the bot (so a second answer is
  never sent), drops a double tap (the same button of the same view again within
  `DOUBLE_TAP_SECONDS`, after the first tap already changed that message) quietly, answers
  with a short "one moment" toast if the handler has not answered within `ANSWER_WITHIN`
  seconds, and answers quietly when the handler never did (a press that flood control or a
  filter dropped, a handler that failed).
- `AnswerPressFirst` wraps the vendor clients' transport: a vendor call made while the press
  that caused it is unanswered answers it first (the same toast), so the spinner never waits for
  a vendor that may take 15 s.
- In cluster mode a press may wait in a queue before any process starts it; the process that
  stored it answers it meanwhile (`answer_waiting`, called by `bot.cluster`), its stored row
  being the one owner of "answered" across processes, and one that starts later than
  `ANSWERABLE_FOR` after it arrived gets no answer that Telegram would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import httpx
from telegram import CallbackQuery, Message, Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot.metrics import ObservedApplication
from bot.telegram_bot import ConciergeBot
from conversations.context import LANGUAGE_KEY
from conversations.i18n import N_, pick_language, tr

logger = logging.getLogger(__name__)

ANSWER_WITHIN: Final = 0.8  # seconds: Telegram users expect the spinner gone within a second
# Telegram takes a press's answer for about 15 s after the press. One that starts later than
# this after it arrived gets none: the handler's answer would come too late and be refused,
# and the text it carried would be lost.
ANSWERABLE_FOR: Final = timedelta(seconds=12)
DOUBLE_TAP_SECONDS: Final = 3.0
ONE_MOMENT: Final = N_("⏳ One moment…")


@dataclass(slots=True)
class Press:
    """A press being handled: answered at most once, whoever answers first."""

    bot: ConciergeBot
    query: CallbackQuery
    toast: str
    pending: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def answered(self) -> bool:
        return self.bot.answered(self.query.id)

    async def answer(self, text: str | None = None) -> None:
        """Answers unless someone already did (the bot sends nothing the second time)."""
        if not self.answered:
            await self.bot.answer_callback_query(self.query.id, text)

    def answer_soon(self) -> None:
        """The timer's side: the handler is still busy, so tell the user it is coming."""
        if not self.answered:
            task = asyncio.get_running_loop().create_task(self.answer(self.toast))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)


CURRENT_PRESS: contextvars.ContextVar[Press | None] = contextvars.ContextVar(
    "concierge_press", default=None
)


async def answer_waiting(
    bot: ConciergeBot, query: CallbackQuery, chat_id: int | None, chosen_language: str | None
) -> None:
    """Answers a press that waits behind other work (cluster mode: its chat's earlier updates,
    or every process busy) with the "one moment" toast in the presser's language, so the
    spinner stops now; the handler's own words come as a message when it runs."""
    bot.note_press(query.id, chat_id)
    language = pick_language(chosen_language, query.from_user.language_code)
    try:
        await bot.answer_callback_query(query.id, tr(language, ONE_MOMENT))
    except TelegramError as error:
        logger.info("a waiting press could not be answered: %s", error)


def _language(application: Application[Any, Any, Any, Any, Any, Any], update: Update) -> str:
    user = update.effective_user
    chosen = None
    if user is not None:
        data = application.user_data.get(user.id)
        chosen = data.get(LANGUAGE_KEY) if data else None
    return pick_language(chosen, user.language_code if user else None)


def _tap_key(query: CallbackQuery) -> tuple[Any, ...]:
    message = query.message
    content: tuple[Any, ...] = ()
    if isinstance(message, Message):
        markup = message.reply_markup.to_json() if message.reply_markup else ""
        content = (message.edit_date, message.text, message.caption, markup)
    return (query.from_user.id, message.message_id if message else None, query.data, content)


class ConciergeApplication(ObservedApplication):
    """PTB's Application, counted for the metrics, that sees to every press's one answer (see
    the module's docstring)."""

    __slots__ = ("_recent_taps",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recent_taps: OrderedDict[tuple[Any, ...], float] = OrderedDict()

    async def process_update(self, update: object) -> None:
        """Processes an update; a press is answered exactly once, within a second."""
        bot = self.bot
        if (
            not isinstance(update, Update)
            or update.callback_query is None
            or not isinstance(bot, ConciergeBot)
        ):
            await super().process_update(update)
            return
        query = update.callback_query
        chat = update.effective_chat
        bot.note_press(query.id, chat.id if chat is not None else None)
        press = Press(bot, query, tr(_language(self, update), ONE_MOMENT))
        token = CURRENT_PRESS.set(press)
        timer = asyncio.get_running_loop().call_later(ANSWER_WITHIN, press.answer_soon)
        try:
            if self._double_tap(query, bot):
                logger.info("double tap by user %s ignored", query.from_user.id)
            else:
                await super().process_update(update)
        finally:
            timer.cancel()
            CURRENT_PRESS.reset(token)
            with contextlib.suppress(TelegramError):
                for task in list(press.pending):
                    await task
                await press.answer()

    def _double_tap(self, query: CallbackQuery, bot: ConciergeBot) -> bool:
        """The same button of the same view again, within seconds, after the bot already
        changed that message: the second tap of a double tap."""
        now = time.monotonic()
        while self._recent_taps:
            oldest, at = next(iter(self._recent_taps.items()))
            if now - at < DOUBLE_TAP_SECONDS and len(self._recent_taps) < 10_000:
                break
            del self._recent_taps[oldest]
        key = _tap_key(query)
        if key in self._recent_taps:
            message = query.message
            return isinstance(message, Message) and bot.outdated(message)
        self._recent_taps[key] = now
        return False


async def answer_press_first() -> None:
    """Answers the press being handled, if it is still unanswered (before a vendor call)."""
    press = CURRENT_PRESS.get()
    if press is not None and not press.answered:
        await press.answer(press.toast)


class AnswerPressFirst(httpx.AsyncBaseTransport):
    """A vendor transport that answers the press in hand before its request leaves."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            await answer_press_first()
        except TelegramError as error:
            # A toast must never stop the vendor call it precedes.
            logger.info("could not answer a press before a vendor call: %s", error)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
