"""The watcher's hands: alerts are recorded once (the dedupe key) and sent when they are due.

Every alert is first kept in `sent_alerts` (`storage.alerts`) with what it says, so one that
failed, or waited out the recipient's quiet hours, goes out on a later round. Delivery goes
through `application.bot` (with the Application's `AIORateLimiter`), one delivery at a time per
process; a user who blocked the bot is marked and skipped; every outcome is logged and kept.
Non-urgent alerts wait while the recipient is in their quiet hours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto
from telegram.error import Forbidden, TelegramError

from bot.alert_kinds import Alert, in_quiet_hours, local_time, wanted
from bot.app_type import ConciergeApp
from bot.services import Services
from bot.storage.models import SentAlert, TelegramUser
from conversations import notify
from conversations.alert_settings import SWITCHED_OFF_KEY
from conversations.context import LANGUAGE_KEY
from conversations.i18n import N_, pick_language, tr

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
PAGE_SIZE = 200
# Heads an alert to someone who serves several communities.
COMMUNITY_LINE = N_("🏘 {community}")


def render(alert: Alert, lang: str, zone: ZoneInfo) -> tuple[str, InlineKeyboardMarkup | None]:
    """The alert's text and buttons in `lang`, its times in `zone`."""
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
    if not alert.buttons:
        return text, None
    rows = [
        [InlineKeyboardButton(tr(lang, label), callback_data=data)]
        for label, data in alert.buttons
    ]
    return text, InlineKeyboardMarkup(rows)


class AlertDelivery:
    """Records alerts and sends the pending ones; one per watcher."""

    def __init__(self, services: Services, *, page_size: int = PAGE_SIZE) -> None:
        self._services = services
        self._page_size = page_size
        # A poll and an announcement may deliver at the same moment: one at a time, so a
        # pending alert is never picked up and sent by both.
        self._delivering = asyncio.Lock()
        # Cluster mode: a lock all processes share, so a pending alert is sent by one of them.
        self._delivering_everywhere: Callable[[], AbstractAsyncContextManager[None]] | None = None

    def deliver_one_at_a_time_with(
        self, lock: Callable[[], AbstractAsyncContextManager[None]]
    ) -> None:
        """Cluster mode: deliveries also wait for `lock`, which every process shares."""
        self._delivering_everywhere = lock

    async def record(self, alert: Alert, now: datetime) -> bool:
        """Keeps the alert as pending; False when its key was recorded before."""
        return await self._services.storage.alerts.record(
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

    async def deliver(self, application: ConciergeApp, now: datetime) -> None:
        """Sends every pending alert that is due; failed ones stay for the next poll."""
        async with self._delivering:
            if self._delivering_everywhere is None:
                await self._deliver_pending(application, now)
                return
            async with self._delivering_everywhere():
                await self._deliver_pending(application, now)

    async def _deliver_pending(self, application: ConciergeApp, now: datetime) -> None:
        # Page through by id: alerts held by quiet hours must not hide the ones behind them.
        storage = self._services.storage
        after = 0
        blocked: set[int] = set()
        while True:
            rows = await storage.alerts.pending(after=after, limit=self._page_size)
            if not rows:
                return
            users = await storage.users.get_many(row.recipient for row in rows)
            blocked |= {tid for tid, user in users.items() if user.blocked_at is not None}
            for row in rows:
                await self._deliver_one(application, row, users.get(row.recipient), blocked, now)
            after = rows[-1].id

    async def _deliver_one(
        self,
        application: ConciergeApp,
        row: SentAlert,
        user: TelegramUser | None,
        blocked: set[int],
        now: datetime,
    ) -> None:
        storage = self._services.storage
        if user is None or row.payload is None:
            await storage.alerts.mark_attempt_failed(row.dedupe_key, "nothing to send", final=True)
            return
        if row.recipient in blocked:
            await storage.alerts.mark_attempt_failed(row.dedupe_key, "blocked", final=True)
            logger.info("alert %s skipped: user %s blocked the bot", row.kind, row.recipient)
            return
        alert = Alert.from_payload(row.dedupe_key, row.kind, row.recipient, row.payload)
        zone = self._zone(user)
        if not alert.urgent and in_quiet_hours(
            now.astimezone(zone).time(), user.quiet_hours_start, user.quiet_hours_end
        ):
            return
        chosen = (application.user_data.get(row.recipient) or {}).get(LANGUAGE_KEY)
        text, markup = render(alert, pick_language(chosen or user.language, None), zone)
        try:
            await application.bot.send_message(row.recipient, text, reply_markup=markup)
        except Forbidden:
            blocked.add(row.recipient)
            await notify.mark_blocked(application, self._services, row.recipient)
            await storage.alerts.mark_attempt_failed(row.dedupe_key, "Forbidden", final=True)
            logger.info("alert %s: user %s has blocked the bot; marked", row.kind, row.recipient)
        except TelegramError as exc:
            final = row.attempts + 1 >= MAX_ATTEMPTS
            await storage.alerts.mark_attempt_failed(
                row.dedupe_key, type(exc).__name__, final=final
            )
            logger.warning(
                "alert %s for user %s failed (%s)%s",
                row.kind,
                row.recipient,
                type(exc).__name__,
                "; giving up" if final else "; retried next poll",
            )
        else:
            await storage.alerts.mark_sent(row.dedupe_key, now)
            self._services.metrics.alert_sent(row.kind)
            logger.info("alert %s sent to user %s", row.kind, row.recipient)
            if alert.photos:
                await _send_photos(application.bot, row.recipient, alert.photos)

    def _zone(self, user: TelegramUser) -> ZoneInfo:
        """The user's own time zone, else the community's."""
        if user.time_zone:
            try:
                return ZoneInfo(user.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                logger.debug("user %s has an unknown time zone", user.telegram_id)
        return self._services.settings.zone


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
