"""The alert watcher: tells the right people once per change, at once for the bot's own writes.

It is three parts and this thin round that joins them: `bot.alert_polling` looks at the vendors
and keeps what it saw, `bot.alert_kinds` (pure rules) says what changed and who hears what,
and `bot.alert_delivery` records every alert under its dedupe key and sends it.

Two paths see changes, and both derive alerts with the same rules under the same dedupe keys,
so a record is announced once whichever path saw it first:

- `announce` (the conversations' `Announcer`, and the write journal's settled hook): a write of
  the bot's went through; the record is read back, compared with what `vendor_states` knew, the
  people it concerns are told now (never the one who made it), and its new state is stored.
- `poll`, every ALERT_POLL_SECONDS and once at start before the first update: every source
  compared with what was known; every alert recorded (insert-if-new, with what it says); then
  the new snapshot is stored, only where a record still stands as the poll read it (a write
  announced meanwhile is newer than what the poll saw).

Then whatever is pending is delivered, so an alert that failed, or waited out quiet hours, goes
out later. A source looked at for the first time (no marker yet) takes what nobody knew of as
its baseline; records the bot already knows (it announced them) are compared.

A deployment of several communities is polled one community at a time side by side, each with
the requests a poll of one community makes, and each community's round (poll, record, store,
deliver) stands alone: a community whose vendors are slow or failing delays and stops no other.
Alerts to someone who serves several communities name the community.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Set
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta

from api.tuya_models import TaskStatus
from bot.alert_delivery import PAGE_SIZE, AlertDelivery
from bot.alert_kinds import (
    ACKNOWLEDGE,
    WRITE_STARTS_FROM,
    Alert,
    Observed,
    acknowledgement_alerts,
    booking_alerts,
    booking_lapses,
    booking_reminders,
    diff,
    labelled,
    live,
    own_write,
    repair_alerts,
    repair_escalations,
    stamp,
    task_alerts,
    task_escalations,
)
from bot.alert_polling import VendorPolling
from bot.app_type import ConciergeApp, application_of
from bot.persistence import load_users
from bot.services import Services
from bot.storage.repositories import SeenRecord
from conversations.community import Community
from conversations.context import ANNOUNCER_KEY, SERVICES_KEY, ConciergeContext
from conversations.ports import OwnWrite
from conversations.writes import Outcome

logger = logging.getLogger(__name__)

WATCHER_KEY = ANNOUNCER_KEY


class AlertWatcher:
    """Polls the vendors, takes the bot's own writes as news at once, and delivers alerts; one
    per application, kept in bot_data (it is the conversations' `Announcer`)."""

    def __init__(self, services: Services, *, page_size: int = PAGE_SIZE) -> None:
        self._services = services
        self._polling = VendorPolling(services)
        self._delivery = AlertDelivery(services, page_size=page_size)
        # Cluster mode: delivery runs beside the update or poll that recorded (`_deliver_soon`).
        self._beside: asyncio.Task[None] | None = None
        self._asked_again = False
        self._announce_beside = False

    @property
    def ledger(self) -> AlertDelivery:
        """Where alerts are recorded and delivered from."""
        return self._delivery

    async def poll(self, application: ConciergeApp) -> None:
        """One round of every community side by side; each delivers what is due."""
        polling = self._polling
        now = self._services.clock()
        markers = await polling.markers()
        readers = await polling.readers_of_several()
        communities = self._services.communities()
        rounds = await asyncio.gather(
            *(self._poll(application, c, markers, readers, now) for c in communities),
            return_exceptions=True,
        )
        failures: list[Exception] = []
        for community, result in zip(communities, rounds, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancelled: the job is stopping
                # Its alerts wait for the next round; the other communities' went out.
                logger.error(
                    "alerts: the round of community %s failed (%s); next poll",
                    community.id,
                    type(result).__name__,
                )
                failures.append(result)
        if failures:
            # Once every other community's round is done, the error handler hears of it.
            raise failures[0]

    async def _poll(
        self,
        application: ConciergeApp,
        community: Community,
        markers: Mapping[str, object],
        readers: Set[int],
        now: datetime,
    ) -> None:
        """One community's round: look, record what changed, store the snapshot, deliver."""
        polling = self._polling
        directory = await polling.directory(community)
        alerts: list[Alert] = []
        observed: list[tuple[str, str, Observed]] = []

        repairs = await polling.repairs(community, markers, now)
        if repairs is not None:
            observed.append(("akubela", "repair", repairs))
            photos = await polling.photos(repairs.changes)
            alerts += repair_alerts(repairs.changes, directory, photos)
            alerts += repair_escalations(
                live(repairs.stored),
                directory,
                now=now,
                threshold=community.escalate_repair_after,
            )

        for booking in await polling.bookings(community, directory, markers, now):
            observed.append(("akubela", "booking", booking))
            alerts += booking_alerts(booking.changes, directory)
            current = live(booking.stored)
            alerts += booking_lapses(current, directory, now=now)
            alerts += booking_reminders(
                current,
                directory,
                now=now,
                lead=timedelta(minutes=self._services.settings.booking_reminder_minutes),
            )

        polled = await polling.tasks(community, markers, now)
        if polled is not None:
            tasks, workers = polled
            directory = replace(directory, workers=workers)
            observed.append(("tuya", "task", tasks))
            alerts += task_alerts(tasks.changes, directory)
            waiting = [
                r.record_id for r in tasks.stored if r.state == TaskStatus.PENDING_MAINTENANCE
            ]
            alerts += task_escalations(
                live(tasks.stored),
                await polling.acknowledged(waiting),
                directory,
                now=now,
                threshold=community.escalate_task_after,
            )

        # Alerts first, snapshot second: a crash in between derives the same keys next time.
        await load_users(application, (alert.recipient for alert in alerts))
        alerts = labelled(alerts, community, readers)
        await self._delivery.record_wanted(alerts, application.user_data, now)
        await polling.store(observed, markers, now)
        await self._deliver_recorded(application, now)

    async def announce(self, application: ConciergeApp, write: OwnWrite) -> int:
        """A write of the bot's that went through: the record's new state is looked up, the
        people it concerns are told now (never the one who made it), and that state becomes
        what the watcher knows, so no poll tells it again. How many alerts it made."""
        polling = self._polling
        now = self._services.clock()
        community = await polling.community_of_write(write)
        if community is None:
            return 0  # a home in a project no community of the deployment has: nobody to tell
        readers = await polling.readers_of_several()
        if write.operation == ACKNOWLEDGE:
            # Not a vendor write: the acknowledgement lives in the bot, the task is unchanged.
            (task_id,) = write.record_ids
            alerts = acknowledgement_alerts(
                task_id,
                str(write.payload.get("worker") or ""),
                str(write.payload.get("rooms") or ""),
                now,
                await polling.directory(community),
            )
            return await self._tell(application, write, labelled(alerts, community, readers), now)
        found = await polling.records_after(write, community)
        if found is None:
            return 0  # the next poll will see it
        vendor, kind, current, ids = found
        previous = await polling.previous(vendor, kind, ids, community)
        # A record the watcher has not seen yet was, before this write, in the one state the
        # write can start from.
        before = WRITE_STARTS_FROM.get(write.operation)
        if before is not None:
            for rid in ids:
                previous.setdefault(rid, SeenRecord(rid, before, {}))
        changes = diff(previous, current)
        directory = await polling.directory(community)
        if kind == "repair":
            alerts = repair_alerts(changes, directory, await polling.photos(changes))
        elif kind == "booking":
            alerts = booking_alerts(changes, directory)
        else:
            workers = await polling.linked_workers(community)
            if workers is None:
                return 0
            directory = replace(directory, workers=workers)
            # Why a task was reopened goes with this one alert, not into what is kept.
            reason = str(write.payload.get("reason") or "")
            if reason:
                changes = [replace(c, snapshot={**c.snapshot, "reason": reason}) for c in changes]
            alerts = task_alerts(changes, directory)
        alerts = labelled(alerts, community, readers)
        told = await self._tell(application, write, alerts, now, deliver=False)
        # Alerts first, state second, as in a poll.
        await polling.store_announced(vendor, kind, stamp(previous, current, now), now)
        await self._deliver_recorded(application, now)
        return told

    async def _tell(
        self,
        application: ConciergeApp,
        write: OwnWrite,
        alerts: Iterable[Alert],
        now: datetime,
        *,
        deliver: bool = True,
    ) -> int:
        told = [alert for alert in alerts if alert.recipient != write.telegram_id]
        await load_users(application, (alert.recipient for alert in told))
        await self._delivery.record_wanted(told, application.user_data, now)
        if deliver:
            await self._deliver_recorded(application, now)
        return len(told)

    async def _deliver_recorded(self, application: ConciergeApp, now: datetime) -> None:
        if self._announce_beside:
            self._deliver_soon(application)
        else:
            await self.deliver(application, now)

    def _deliver_soon(self, application: ConciergeApp) -> None:
        """Cluster mode: the recorded alerts go out beside the update or the poll, not inside
        it. Delivery is one round at a time across the cluster, and a round paces each chat to
        Telegram's one message a second, so a manager with a backlog would hold every resident's
        answer ("Repair created"), and a starting process's first poll (before it says it is
        healthy), for as long as the backlog takes. One task per process asks for rounds until
        nothing was recorded during the last one."""
        if not application.running:
            # The first poll at start (bot.app's post_init): the next round sends them, the
            # shared work's next poll at the latest.
            return
        self._asked_again = True
        if self._beside is None or self._beside.done():
            self._beside = application.create_task(
                self._deliver_while_asked(application), name="alerts-after-a-write"
            )

    async def _deliver_while_asked(self, application: ConciergeApp) -> None:
        while self._asked_again:
            self._asked_again = False
            await self.deliver(application, self._services.clock())

    async def deliver(self, application: ConciergeApp, now: datetime) -> None:
        """Sends every pending alert that is due; failed ones stay for the next poll."""
        await self._delivery.deliver(application, now)

    def close(self) -> None:
        """The process is stopping: delivery ends soon (see `AlertDelivery.close`)."""
        self._delivery.close()

    def deliver_one_at_a_time_with(
        self, lock: Callable[[], AbstractAsyncContextManager[None]]
    ) -> None:
        """Cluster mode: deliveries also wait for `lock`, which every process shares, and run
        beside the update or poll that recorded the alerts (`_deliver_soon`)."""
        self._delivery.deliver_one_at_a_time_with(lock)
        self._announce_beside = True


def watcher_of(application: ConciergeApp) -> AlertWatcher:
    """The application's one watcher (made on first use)."""
    watcher = application.bot_data.get(WATCHER_KEY)
    if not isinstance(watcher, AlertWatcher):
        services: Services = application.bot_data[SERVICES_KEY]
        watcher = AlertWatcher(services)
        application.bot_data[WATCHER_KEY] = watcher
    return watcher


async def watch_vendors(context: ConciergeContext) -> None:
    """The repeating job: one poll of every vendor."""
    application = application_of(context)
    await watcher_of(application).poll(application)


def announcing_outcomes(application: ConciergeApp) -> Callable[[Outcome], Awaitable[None]]:
    """The write journal's hook: every write of the bot's that reached the vendor is news at
    once, whichever path settled it (the conversation, a retry, the recovery after a crash)."""
    watcher = watcher_of(application)

    async def announce(outcome: Outcome) -> None:
        write = own_write(outcome)
        if write is not None:
            await watcher.announce(application, write)

    return announce


async def look_before_updates(application: ConciergeApp) -> None:
    """At start, before the first update: one poll, so the watcher knows what is there (the
    baseline on a fresh install, what changed while the bot was down otherwise) and a write in
    the bot's first second is compared with it."""
    await watcher_of(application).poll(application)
