"""The watcher's hands: alerts are recorded once (the dedupe key) and sent when they are due.

Every alert is first kept in `sent_alerts` (`storage.alerts`) with what it says, so one that
failed, or waited out the recipient's quiet hours, goes out on a later round. A round queues
each recipient's due alerts in the order they were recorded and sends them at Telegram's
limits, paced by `bot.alert_pacing`: the oldest alert of the chats that may send goes first, a
few sends under way at once and one per chat, so a recipient with many alerts (or one Telegram
asked to wait) holds up nobody else.
One round at a time per process (in cluster mode, across processes); a user who blocked the
bot is marked and skipped; every outcome is logged and kept. Non-urgent alerts wait while the
recipient is in their quiet hours.

Telegram has no idempotency key, so a send whose answer never came back (the process was
killed after the send left, the answer timed out) has an unknown outcome. As in the write
journal, each send is marked `maybe_sent` (committed) before it leaves; an alert still pending
with that mark is sent again, headed as a possible repeat in the reader's language: an alert is
never lost, and a copy the recipient may already have says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto
from telegram.error import Forbidden, RetryAfter, TelegramError, TimedOut

from bot.alert_kinds import Alert, in_quiet_hours, local_time, wanted
from bot.alert_pacing import SendPacer
from bot.app_type import ConciergeApp
from bot.persistence import load_users
from bot.send_budget import TELEGRAM, SendLimits
from bot.services import Services
from bot.storage.models import SentAlert, TelegramUser
from conversations import notify
from conversations.alert_settings import SWITCHED_OFF_KEY
from conversations.context import LANGUAGE_KEY
from conversations.i18n import N_, pick_language, tr

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# 429s one alert may get in one round before it waits for the next poll instead.
MAX_REFUSALS = 3
PAGE_SIZE = 200
# Heads an alert to someone who serves several communities.
COMMUNITY_LINE = N_("🏘 {community}")
# Heads an alert sent again after a send whose outcome is unknown.
MAYBE_REPEAT = N_("🔁 Possibly a repeat: the bot could not confirm this alert reached you.")


def render(
    alert: Alert, lang: str, zone: ZoneInfo, *, maybe_repeat: bool = False
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The alert's text and buttons in `lang`, its times in `zone`; `maybe_repeat` heads it as
    a possible repeat."""
    values = {
        name: tr(lang, value)
        if name in alert.translated
        else local_time(value, zone)
        if name in alert.moments
        else value
        for name, value in alert.values.items()
    }
    text = tr(lang, alert.message, **values)
    community = alert.community_name(lang)
    if community:
        text = tr(lang, COMMUNITY_LINE, community=community) + "\n" + text
    if maybe_repeat:
        text = tr(lang, MAYBE_REPEAT) + "\n" + text
    if not alert.buttons:
        return text, None
    rows = [
        [InlineKeyboardButton(tr(lang, label), callback_data=data)]
        for label, data in alert.buttons
    ]
    return text, InlineKeyboardMarkup(rows)


class AlertDelivery:
    """Records alerts and sends the pending ones; one per watcher."""

    def __init__(
        self, services: Services, *, page_size: int = PAGE_SIZE, limits: SendLimits = TELEGRAM
    ) -> None:
        self.services = services
        self.page_size = page_size
        self.limits = limits
        # A poll and an announcement may deliver at the same moment: one at a time, so a
        # pending alert is never picked up and sent by both.
        self._delivering = asyncio.Lock()
        # Cluster mode: a lock all processes share, so a pending alert is sent by one of them.
        self._delivering_everywhere: Callable[[], AbstractAsyncContextManager[None]] | None = None
        self._closing = asyncio.Event()

    def deliver_one_at_a_time_with(
        self, lock: Callable[[], AbstractAsyncContextManager[None]]
    ) -> None:
        """Cluster mode: deliveries also wait for `lock`, which every process shares."""
        self._delivering_everywhere = lock

    async def record(self, alert: Alert, now: datetime) -> bool:
        """Keeps the alert as pending; False when its key was recorded before."""
        return await self.services.storage.alerts.record(
            alert.key,
            recipient=alert.recipient,
            kind=alert.kind.value,
            now=now,
            payload=alert.payload(),
        )

    async def record_wanted(
        self, alerts: Iterable[Alert], user_data: Mapping[int, Any], now: datetime
    ) -> None:
        """Records each alert its recipient has not switched off."""
        for alert in alerts:
            switched_off = (user_data.get(alert.recipient) or {}).get(SWITCHED_OFF_KEY) or ()
            if not wanted(alert, switched_off):
                continue
            if await self.record(alert, now):
                logger.info("alert %s for user %s recorded", alert.kind.value, alert.recipient)

    def close(self) -> None:
        """The process is stopping: no round starts, and one under way ends once its sends in
        flight are settled. A round paces each chat to Telegram's limits, so a manager's backlog
        would hold a stop (an upgrade's SIGTERM) for minutes; what is left stays pending for
        the next round, on this process after its restart or on another one."""
        self._closing.set()

    async def deliver(self, application: ConciergeApp, now: datetime) -> None:
        """Sends every pending alert that is due; failed ones stay for the next poll."""
        async with self._delivering:
            if self._closing.is_set():
                return
            if self._delivering_everywhere is None:
                await self._deliver_pending(application, now)
                return
            async with contextlib.AsyncExitStack() as held:
                # Another process's round may hold the lock for minutes: a stop does not wait.
                taking = asyncio.ensure_future(
                    held.enter_async_context(self._delivering_everywhere())
                )
                closing = asyncio.ensure_future(self._closing.wait())
                await asyncio.wait({taking, closing}, return_when=asyncio.FIRST_COMPLETED)
                closing.cancel()
                if not taking.done():
                    taking.cancel()
                    await asyncio.gather(taking, return_exceptions=True)
                    return
                taking.result()  # a failure to take the lock is raised
                await self._deliver_pending(application, now)

    async def _deliver_pending(self, application: ConciergeApp, now: datetime) -> None:
        # Page through by id: alerts held by quiet hours must not hide the ones behind them.
        # Each recipient's alerts queue in id order; the pacer says whose turn it is, so a
        # recipient with many alerts, or one Telegram asked to wait, holds up no one else.
        round_ = _Round(self, application, now)
        try:
            await self._send_round(round_)
        finally:
            await round_.aclose()

    async def _send_round(self, round_: _Round) -> None:
        while True:
            if self._closing.is_set():
                # Each send under way is settled (recorded sent, or left pending).
                await asyncio.gather(*round_.sending, return_exceptions=True)
                return
            if round_.wants_more():
                await round_.load_page()
                continue
            chat_id = round_.pacer.take(time.monotonic())
            if chat_id is not None:
                round_.start(chat_id)
                continue
            if not round_.sending and not len(round_.pacer):
                if round_.exhausted:
                    return
                await round_.load_page()
                continue
            await round_.wait()

    async def prepare(
        self,
        row: SentAlert,
        user: TelegramUser | None,
        blocked: set[int],
        now: datetime,
    ) -> _Send | None:
        """The send this pending alert needs now; None when it is settled or waits (quiet)."""
        storage = self.services.storage
        if user is None or row.payload is None:
            await storage.alerts.mark_attempt_failed(row.dedupe_key, "nothing to send", final=True)
            return None
        if row.recipient in blocked:
            await storage.alerts.mark_attempt_failed(row.dedupe_key, "blocked", final=True)
            logger.info("alert %s skipped: user %s blocked the bot", row.kind, row.recipient)
            return None
        alert = Alert.from_payload(row.dedupe_key, row.kind, row.recipient, row.payload)
        zone = reading_zone(user, alert, self.services.settings.zone)
        if not alert.urgent and in_quiet_hours(
            now.astimezone(zone).time(), user.quiet_hours_start, user.quiet_hours_end
        ):
            return None
        if row.maybe_sent:
            # No personal data here: the kind only.
            logger.info(
                "alert %s: an earlier send may have arrived; sent as a possible repeat", row.kind
            )
            self.services.metrics.alert_maybe_sent(row.kind)
        return _Send(row, alert, user)

    async def send(self, application: ConciergeApp, send: _Send, round_: _Round) -> None:
        """Sends one message of an alert and settles what came back."""
        row, storage = send.row, self.services.storage
        if send.photos_only:
            with round_.answer_of(row.recipient):
                await _send_photos(application.bot, row.recipient, send.alert.photos)
            return
        if row.recipient in round_.blocked:
            await storage.alerts.mark_attempt_failed(row.dedupe_key, "blocked", final=True)
            return
        chosen = (application.user_data.get(row.recipient) or {}).get(LANGUAGE_KEY)
        zone = reading_zone(send.user, send.alert, self.services.settings.zone)
        language = pick_language(chosen or send.user.language, None)
        # An earlier send may have reached the recipient (see the module): say so.
        earlier = row.maybe_sent
        text, markup = render(send.alert, language, zone, maybe_repeat=earlier)
        await storage.alerts.sending(row.dedupe_key)
        try:
            with round_.answer_of(row.recipient):
                await application.bot.send_message(row.recipient, text, reply_markup=markup)
        except Forbidden:
            round_.blocked.add(row.recipient)
            await notify.mark_blocked(application, self.services, row.recipient)
            await storage.alerts.mark_attempt_failed(
                row.dedupe_key, "Forbidden", final=True, maybe_sent=earlier
            )
            logger.info("alert %s: user %s has blocked the bot; marked", row.kind, row.recipient)
        except RetryAfter:
            # Refused, so not sent; the round holds the chat and sends this one again.
            await storage.alerts.sending(row.dedupe_key, maybe_sent=earlier)
            raise
        except TelegramError as exc:
            final = row.attempts + 1 >= MAX_ATTEMPTS
            # A time-out came after the send left: it may have arrived all the same.
            await storage.alerts.mark_attempt_failed(
                row.dedupe_key,
                type(exc).__name__,
                final=final,
                maybe_sent=earlier or isinstance(exc, TimedOut),
            )
            logger.warning(
                "alert %s for user %s failed (%s)%s",
                row.kind,
                row.recipient,
                type(exc).__name__,
                "; giving up" if final else "; retried next poll",
            )
        else:
            await storage.alerts.mark_sent(row.dedupe_key, round_.now)
            self.services.metrics.alert_sent(row.kind)
            logger.info("alert %s sent to user %s", row.kind, row.recipient)
            if send.alert.photos:
                # The photos are a message of their own, paced as one, next in this chat.
                round_.queue_first(dataclasses.replace(send, photos_only=True))


def reading_zone(user: TelegramUser, alert: Alert, fallback: ZoneInfo) -> ZoneInfo:
    """Where the reader reads the alert's times: their own zone if they chose one, else the
    zone of the alert's community (`fallback` for an alert stored before alerts kept one)."""
    for name in (user.time_zone, alert.time_zone):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                logger.debug("alert %s: unknown time zone %r", alert.kind, name)
    return fallback


async def _send_photos(bot: Bot, chat_id: int, photos: Sequence[str]) -> None:
    # The text went out and is marked sent: a photo that fails is logged, not retried, so the
    # text is never sent twice.
    try:
        if len(photos) == 1:
            await bot.send_photo(chat_id, photos[0])
        else:
            await bot.send_media_group(chat_id, [InputMediaPhoto(p) for p in photos[:10]])
    except TelegramError as exc:
        logger.warning("photos of an alert to user %s failed (%s)", chat_id, type(exc).__name__)


@dataclass(frozen=True, slots=True)
class _Send:
    """One message an alert needs: its text, or (after the text went) its photos."""

    row: SentAlert
    alert: Alert
    user: TelegramUser
    photos_only: bool = False
    refusals: int = 0  # 429s this send had in this round


class _Round:
    """One delivery round: the due alerts queued per chat in id order, the pacer that gives the
    chats their turns, and the sends under way."""

    def __init__(self, delivery: AlertDelivery, application: ConciergeApp, now: datetime) -> None:
        self._delivery = delivery
        self._application = application
        self.now = now
        self.pacer = SendPacer(delivery.limits)
        self.blocked: set[int] = set()
        self.sending: set[asyncio.Task[None]] = set()
        self.exhausted = False
        self._after = 0
        self._queues: dict[int, deque[_Send]] = {}
        self._queued = 0
        self._busy: set[int] = set()  # chats with a send under way: one at a time keeps order
        self._answered: set[int] = set()  # busy chats whose send Telegram answered already
        self._changed = asyncio.Event()
        self._error: BaseException | None = None

    def wants_more(self) -> bool:
        """Whether the next page should be read before sending on."""
        return not self.exhausted and self._queued < self._delivery.page_size

    async def load_page(self) -> None:
        """Queues the next page of pending alerts that are due."""
        storage = self._delivery.services.storage
        rows = await storage.alerts.pending(after=self._after, limit=self._delivery.page_size)
        if not rows:
            self.exhausted = True
            return
        self._after = rows[-1].id
        users = await storage.users.get_many(row.recipient for row in rows)
        # Their chosen language, and where a refusal marks them blocked.
        await load_users(self._application, users)
        self.blocked |= {tid for tid, user in users.items() if user.blocked_at is not None}
        for row in rows:
            send = await self._delivery.prepare(
                row, users.get(row.recipient), self.blocked, self.now
            )
            if send is not None:
                self._queue(send, first=False)

    def queue_first(self, send: _Send) -> None:
        """Puts `send` first in its chat's queue (its photos, or a send Telegram refused)."""
        self._queue(send, first=True)

    def _queue(self, send: _Send, *, first: bool) -> None:
        chat_id = send.row.recipient
        queue = self._queues.setdefault(chat_id, deque())
        waiting = bool(queue) or chat_id in self._busy
        if first:
            queue.appendleft(send)
        else:
            queue.append(send)
        self._queued += 1
        if not waiting:
            self.pacer.want(chat_id, queue[0].row.id, time.monotonic())

    def start(self, chat_id: int) -> None:
        """Starts the next send of the chat whose turn it is."""
        send = self._queues[chat_id].popleft()
        self._queued -= 1
        self._busy.add(chat_id)
        self.sending.add(asyncio.create_task(self._run(send)))

    async def wait(self) -> None:
        """Until a send ends or the pacer lets the next chat go; a send's crash is raised."""
        self._changed.clear()
        moment = self.pacer.next_moment(time.monotonic())
        try:
            async with asyncio.timeout(None if moment is None else moment - time.monotonic()):
                await self._changed.wait()
        except TimeoutError:
            pass
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        """Stops the sends still under way (after a crash); the alerts stay pending."""
        for task in list(self.sending):
            task.cancel()
        await asyncio.gather(*self.sending, return_exceptions=True)

    @contextmanager
    def answer_of(self, chat_id: int) -> Iterator[None]:
        """Around the one Telegram call of a send: its answer counts in the pacer's windows
        the moment it comes back, before the send is recorded."""
        try:
            yield
        finally:
            self._answered.add(chat_id)
            self.pacer.answered(chat_id, time.monotonic())

    async def _run(self, send: _Send) -> None:
        chat_id = send.row.recipient
        try:
            await self._delivery.send(self._application, send, self)
        except RetryAfter as exc:
            retry_after = _seconds(exc.retry_after)
            self.pacer.hold(chat_id, time.monotonic() + retry_after)
            if send.refusals + 1 < MAX_REFUSALS:
                self.queue_first(dataclasses.replace(send, refusals=send.refusals + 1))
            else:
                storage = self._delivery.services.storage
                await storage.alerts.mark_attempt_failed(
                    send.row.dedupe_key, "RetryAfter", final=False, maybe_sent=send.row.maybe_sent
                )
            logger.info("alert to user %s: Telegram asked to wait %.0f s", chat_id, retry_after)
        except BaseException as exc:
            # The round raises it from `wait`. The task, gone from `sending` below, is gathered
            # by nobody, so an error raised here too would only log "exception never
            # retrieved"; a cancellation or an exit still ends the task.
            self._error = self._error or exc
            if not isinstance(exc, Exception):
                raise
        finally:
            if chat_id not in self._answered:  # it ended before it reached Telegram
                self.pacer.answered(chat_id, time.monotonic())
            self._answered.discard(chat_id)
            self._busy.discard(chat_id)
            # Gone from `sending` before the round looks again (a done-callback would be late).
            self.sending.discard(cast("asyncio.Task[None]", asyncio.current_task()))
            if queue := self._queues.get(chat_id):
                self.pacer.want(chat_id, queue[0].row.id, time.monotonic())
            else:
                self._queues.pop(chat_id, None)
            self._changed.set()


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
