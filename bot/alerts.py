"""The alert watcher: tells the right people once per change, at once for the bot's own writes.

Two paths see changes, and both derive alerts with the rules in `bot.alert_kinds`, under the
same dedupe keys, so a record is announced once whichever path saw it first:

- `announce` (the conversations' `Announcer`, and the outbox's delivered hook): a write of the
  bot's went through; the record is read back, compared with what `vendor_states` knew, the
  people it concerns are told now (never the one who made it), and its new state is stored.
- `poll`, every ALERT_POLL_SECONDS and once at start before the first update: the Akubela
  manager list of the project (manager password grant), each linked residence's bookings
  (through a resident's own desk) and the Tuya task list, compared with what was known; every
  alert recorded under its key (insert-if-new, with what it says); then the new snapshot is
  stored, only where a record still stands as the poll read it (a write announced meanwhile
  is newer than what the poll saw).

Then whatever is pending is delivered, so an alert that failed, or waited out quiet hours, goes
out later.

- A source looked at for the first time (no marker in `vendor_states` yet) takes what nobody
  knew of as its baseline; records the bot already knows (it announced them) are compared.
- A source that fails (vendor down, rate-limited, refusing our credentials) is skipped whole
  for that poll: its old snapshot stays, nothing is taken for gone, nothing is alerted.
- Delivery goes through `application.bot` (with the Application's `AIORateLimiter`), one
  delivery at a time per process; a user who blocked the bot is marked and skipped; every
  outcome is logged and kept in `sent_alerts`. Non-urgent alerts wait while the recipient is
  in their quiet hours.
- /alerts: managers switch their own kinds on and off (kept in their user_data); everyone
  sets quiet hours (`/alerts quiet 22:00-07:00`, `/alerts quiet off`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from api.errors import ApiError
from api.tuya_models import TaskStatus, Worker
from bot.account import actor_of, answer_stale
from bot.alert_kinds import (
    GONE,
    MANAGER_KINDS,
    STICKY,
    Alert,
    Change,
    ChangeKind,
    Directory,
    acknowledgement_alerts,
    booking_alerts,
    booking_lapses,
    booking_record,
    booking_reminders,
    diff,
    in_quiet_hours,
    local_time,
    repair_alerts,
    repair_escalations,
    repair_record,
    stamp,
    task_alerts,
    task_escalations,
    task_record,
    wanted,
)
from bot.services import Services
from bot.storage.db import upsert
from bot.storage.models import AlertStatus, SentAlert, TelegramUser
from bot.storage.repositories import SeenRecord
from conversations import callbacks, notify
from conversations.context import ANNOUNCER_KEY, LANGUAGE_KEY, SERVICES_KEY, ConciergeContext
from conversations.i18n import N_, pick_language, tr
from conversations.ports import OwnWrite
from conversations.roles import REFUSAL_MESSAGES, Action, decide
from conversations.writes import Outcome, TaskCreate

logger = logging.getLogger(__name__)

WATCHER_KEY = ANNOUNCER_KEY
SWITCHED_OFF_KEY = "alerts_off"
MAX_ATTEMPTS = 5
PAGE_SIZE = 200
MAX_KEY_LENGTH = 255  # sent_alerts.dedupe_key
# Markers of sources seen at least once live beside the records, under our own name.
MARKER_VENDOR = "concierge"
MARKER_KIND = "scope"
ACKNOWLEDGE = "tuya.task.acknowledge"
# The state a task write leaves its task in.
WRITE_LEADS_TO: dict[str, str] = {
    "tuya.task.create": TaskStatus.PENDING_MAINTENANCE,
    "tuya.task.accept": TaskStatus.ACCEPTANCE_COMPLETE,
    "tuya.task.reopen": TaskStatus.PENDING_MAINTENANCE,
}
# The state a write requires of its record (the vendors refuse it otherwise).
WRITE_STARTS_FROM: dict[str, str] = {
    "tuya.task.accept": TaskStatus.PENDING_ACCEPTANCE,
    "tuya.task.reopen": TaskStatus.PENDING_ACCEPTANCE,
}


@dataclass(slots=True)
class _Observed:
    """One source's poll: its changes and what to store for it."""

    changes: list[Change]
    stored: list[SeenRecord]  # every record as it stands, with since when
    writes: list[SeenRecord]  # only those that are new, moved or gone: the rest is as stored
    expected: dict[str, str | None]  # the state each write replaces (None: none was stored)
    marker: str


class AlertLedger:
    """`sent_alerts` with what each alert says, so a pending one can be sent later."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(self, alert: Alert, now: datetime) -> bool:
        """Keeps the alert as pending; False when its key was recorded before."""
        async with self._sessions() as session:
            inserted = await session.scalar(
                upsert(
                    session.get_bind().dialect.name,
                    SentAlert,
                    {
                        "dedupe_key": storable_key(alert.key),
                        "recipient": alert.recipient,
                        "kind": alert.kind.value,
                        "status": AlertStatus.PENDING,
                        "attempts": 0,
                        "created_at": now,
                        "payload": alert.payload(),
                    },
                    key=["dedupe_key"],
                    update=[],
                ).returning(SentAlert.id)
            )
            await session.commit()
            return inserted is not None

    async def pending(self, *, after: int = 0, limit: int = PAGE_SIZE) -> list[SentAlert]:
        """Alerts not yet delivered, oldest first, from the one after id `after` on."""
        async with self._sessions() as session:
            query = (
                select(SentAlert)
                .where(SentAlert.status == AlertStatus.PENDING, SentAlert.id > after)
                .order_by(SentAlert.id)
                .limit(limit)
            )
            return list(await session.scalars(query))

    async def users(self, telegram_ids: Iterable[int]) -> dict[int, TelegramUser]:
        """The stored users among these ids."""
        ids = sorted(set(telegram_ids))
        if not ids:
            return {}
        async with self._sessions() as session:
            rows = await session.scalars(
                select(TelegramUser).where(TelegramUser.telegram_id.in_(ids))
            )
            return {row.telegram_id: row for row in rows}


def storable_key(key: str) -> str:
    """The key as the column holds it: a vendor's very long state or id is hashed to fit."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return key[: MAX_KEY_LENGTH - len(digest) - 1] + "#" + digest


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
    if not alert.buttons:
        return text, None
    rows = [
        [InlineKeyboardButton(tr(lang, label), callback_data=data)]
        for label, data in alert.buttons
    ]
    return text, InlineKeyboardMarkup(rows)


class AlertWatcher:
    """Polls the vendors, takes the bot's own writes as news at once, and delivers alerts; one
    per application, kept in bot_data (it is the conversations' `Announcer`)."""

    def __init__(self, services: Services, *, page_size: int = PAGE_SIZE) -> None:
        self._services = services
        self._page_size = page_size
        self._ledger = AlertLedger(services.storage.sessions)
        # A poll and an announcement may deliver at the same moment: one at a time, so a
        # pending alert is never picked up and sent by both.
        self._delivering = asyncio.Lock()
        # Cluster mode: a lock all processes share, so a pending alert is sent by one of them.
        self._delivering_everywhere: Callable[[], AbstractAsyncContextManager[None]] | None = None

    @property
    def ledger(self) -> AlertLedger:
        """Where alerts are kept."""
        return self._ledger

    async def poll(self, application: Any) -> None:
        """One round: look, record what changed, store the snapshot, deliver what is due."""
        services = self._services
        settings = services.settings
        now = services.clock()
        directory = await self._directory()
        markers = await services.storage.vendor_states.get_many(MARKER_VENDOR, MARKER_KIND)
        alerts: list[Alert] = []
        observed: list[tuple[str, str, _Observed]] = []

        repairs = await self._poll_repairs(markers, now)
        if repairs is not None:
            observed.append(("akubela", "repair", repairs))
            photos = await self._photos(repairs.changes)
            alerts += repair_alerts(repairs.changes, directory, photos)
            alerts += repair_escalations(
                _live(repairs.stored),
                directory,
                now=now,
                threshold=timedelta(minutes=settings.escalate_repair_after_minutes),
            )

        for booking in await self._poll_bookings(directory, markers, now):
            observed.append(("akubela", "booking", booking))
            alerts += booking_alerts(booking.changes, directory)
            live = _live(booking.stored)
            alerts += booking_lapses(live, directory, now=now)
            alerts += booking_reminders(
                live, directory, now=now, lead=timedelta(minutes=settings.booking_reminder_minutes)
            )

        polled = await self._poll_tasks(markers, now)
        if polled is not None:
            tasks, workers = polled
            directory = replace(directory, workers=workers)
            observed.append(("tuya", "task", tasks))
            alerts += task_alerts(tasks.changes, directory)
            waiting = [
                r.record_id for r in tasks.stored if r.state == TaskStatus.PENDING_MAINTENANCE
            ]
            acknowledged = await services.storage.task_acknowledgements.get_many(waiting)
            alerts += task_escalations(
                _live(tasks.stored),
                set(acknowledged),
                directory,
                now=now,
                threshold=timedelta(minutes=settings.escalate_task_after_minutes),
            )

        # Alerts first, snapshot second: a crash in between derives the same keys next time.
        await self._record(alerts, application.user_data, now)
        for vendor, kind, seen in observed:
            # Only where the record still stands as this poll found it: a write the bot
            # announced meanwhile is newer than what the poll saw, and stays.
            await services.storage.vendor_states.put_many(
                vendor, kind, seen.writes, now, expected=seen.expected
            )
        new_markers = [
            SeenRecord(seen.marker, "seen", {})
            for _, _, seen in observed
            if seen.marker not in markers
        ]
        await services.storage.vendor_states.put_many(MARKER_VENDOR, MARKER_KIND, new_markers, now)
        await self.deliver(application, now)

    # ---- the bot's own writes --------------------------------------------------------------

    async def announce(self, application: Any, write: OwnWrite) -> int:
        """A write of the bot's that went through: the record's new state is looked up, the
        people it concerns are told now (never the one who made it), and that state becomes
        what the watcher knows, so no poll tells it again. How many alerts it made."""
        services = self._services
        now = services.clock()
        if write.operation == ACKNOWLEDGE:
            # Not a vendor write: the acknowledgement lives in the bot, the task is unchanged.
            alerts = await self._acknowledged(write, now)
            return await self._tell(application, write, alerts, now)
        found = await self._records_after(write)
        if found is None:
            return 0  # the next poll will see it
        vendor, kind, current, ids = found
        rows = await services.storage.vendor_states.get_many(vendor, kind, ids)
        previous = {rid: SeenRecord(rid, row.state, row.snapshot) for rid, row in rows.items()}
        # A record the watcher has not seen yet was, before this write, in the one state the
        # write can start from.
        before = WRITE_STARTS_FROM.get(write.operation)
        if before is not None:
            for rid in ids:
                previous.setdefault(rid, SeenRecord(rid, before, {}))
        changes = diff(previous, current)
        directory = await self._directory()
        if kind == "repair":
            alerts = repair_alerts(changes, directory, await self._photos(changes))
        elif kind == "booking":
            alerts = booking_alerts(changes, directory)
        else:
            try:
                workers = await services.task_board.workers()
            except ApiError as exc:
                logger.info("alerts: workers unknown now (%s); next poll", type(exc).__name__)
                return 0
            directory = replace(directory, workers=await self._by_username(workers))
            # Why a task was reopened goes with this one alert, not into what is kept.
            reason = str(write.payload.get("reason") or "")
            if reason:
                changes = [replace(c, snapshot={**c.snapshot, "reason": reason}) for c in changes]
            alerts = task_alerts(changes, directory)
        told = await self._tell(application, write, alerts, now, deliver=False)
        # Alerts first, state second, as in a poll.
        await services.storage.vendor_states.put_many(
            vendor, kind, stamp(previous, current, now), now
        )
        await self.deliver(application, now)
        return told

    async def _tell(
        self,
        application: Any,
        write: OwnWrite,
        alerts: Iterable[Alert],
        now: datetime,
        *,
        deliver: bool = True,
    ) -> int:
        told = [alert for alert in alerts if alert.recipient != write.telegram_id]
        await self._record(told, application.user_data, now)
        if deliver:
            await self.deliver(application, now)
        return len(told)

    async def _acknowledged(self, write: OwnWrite, now: datetime) -> list[Alert]:
        """Managers hear that a worker has seen a new task."""
        (task_id,) = write.record_ids
        worker = str(write.payload.get("worker") or "")
        rooms = str(write.payload.get("rooms") or "")
        return acknowledgement_alerts(task_id, worker, rooms, now, await self._directory())

    async def _records_after(
        self, write: OwnWrite
    ) -> tuple[str, str, list[SeenRecord], list[str]] | None:
        """The written records as they stand now (none for one deleted): vendor, kind,
        records and every id the write touched; None when that cannot be learned now."""
        services = self._services
        payload = write.payload
        ids = [rid for rid in write.record_ids if rid]
        operation = write.operation
        try:
            if operation.startswith("tuya.task."):
                details = [await services.task_board.task(tid) for tid in ids]
                facts = {k: str(payload[k]) for k in STICKY if payload.get(k)}
                current = [
                    SeenRecord(d.task_id, d.status, {**task_record(d).snapshot, **facts})
                    for d in details
                ]
                return "tuya", "task", current, ids
            residence_id = str(payload.get("residence_id") or "")
            desk = await services.desk_for_residence(write.telegram_id, residence_id)
            if desk is None:
                return None
            if operation == "akubela.repair.create":
                current = [repair_record(await desk.repair(rid), residence_id) for rid in ids]
                return "akubela", "repair", current, ids
            if operation.startswith("akubela.repair."):
                return "akubela", "repair", [], ids  # a resident's repair goes by being deleted
            if operation.startswith("akubela.booking."):
                listed = {b.booking_id: b for b in await desk.bookings()}
                current = [
                    booking_record(listed[rid], residence_id) for rid in ids if rid in listed
                ]
                return "akubela", "booking", current, ids
        except ApiError as exc:
            logger.info("alerts: %s could not be read back (%s)", operation, type(exc).__name__)
            return await self._as_written(write, ids)
        logger.warning("alerts: no announcement for %s", operation)
        return None

    async def _as_written(
        self, write: OwnWrite, ids: list[str]
    ) -> tuple[str, str, list[SeenRecord], list[str]] | None:
        """A task that cannot be read back is in the state its write leads to (Tuya refuses
        the write otherwise), with what was known of it, so the worker still hears now (and a
        reopen's reason is not lost); anything else waits for the next poll."""
        after = WRITE_LEADS_TO.get(write.operation)
        if after is None:
            return None
        rows = await self._services.storage.vendor_states.get_many("tuya", "task", ids)
        facts = {k: str(v) for k, v in write.payload.items() if k != "reason" and v}
        current = [
            SeenRecord(rid, after, {**(rows[rid].snapshot if rid in rows else {}), **facts})
            for rid in ids
        ]
        return "tuya", "task", current, ids

    # ---- looking ---------------------------------------------------------------------------

    async def _directory(self) -> Directory:
        """Who lives where, which worker is whom, who manages the community."""
        services = self._services
        residents: dict[str, list[int]] = defaultdict(list)
        flats: dict[str, str] = {}
        for link in await services.accounts.residents():
            for residence in link.residences:
                if isinstance(residence, dict) and residence.get("residence_id"):
                    rid = str(residence["residence_id"])
                    residents[rid].append(link.telegram_id)
                    flat = " ".join(
                        str(residence.get(part) or "").strip()
                        for part in ("building_name", "room_name")
                    ).strip()
                    if flat:
                        flats[rid] = flat
        settings = services.settings
        managers: set[int] = set()
        for project in {settings.akubela_project_id, settings.tuya_project_id}:
            managers.update(await services.accounts.managers_of(project))
        return Directory(
            residents={rid: tuple(ids) for rid, ids in residents.items()},
            managers=tuple(sorted(managers)),
            flats=flats,
        )

    async def _by_username(self, workers: Iterable[Worker]) -> dict[str, tuple[int, ...]]:
        """Linked workers' Telegram accounts by Tuya username: tasks name their worker by
        username, links name the Tuya worker id."""
        linked: dict[str, tuple[int, ...]] = {}
        for worker in workers:
            ids = await self._services.accounts.telegram_ids_of_worker(worker.worker_id)
            if ids and worker.username:
                linked[worker.username] = tuple(ids)
        return linked

    async def _photos(self, changes: Iterable[Change]) -> dict[str, list[str]]:
        """Photos residents sent with new repairs through the bot, by repair id."""
        found: dict[str, list[str]] = {}
        for change in changes:
            if change.kind is not ChangeKind.NEW:
                continue
            residence_id = str(change.snapshot.get("residence_id", ""))
            report = await self._services.repair_reports.get(
                change.record_id, residence_id=residence_id
            )
            if report is not None and report.photo_file_ids:
                found[change.record_id] = [str(p) for p in report.photo_file_ids]
        return found

    def _observe(
        self,
        previous: Mapping[str, SeenRecord],
        current: Sequence[SeenRecord],
        marker: str,
        markers: Mapping[str, Any],
        now: datetime,
    ) -> _Observed:
        # A source looked at for the first time: what nobody knew of is the baseline, not
        # news; a record the bot already knows (it announced its own write) is compared.
        if marker not in markers:
            changes = diff(previous, [r for r in current if r.record_id in previous])
        else:
            changes = diff(previous, current)
        stored = stamp(previous, current, now)
        writes = [
            record
            for record in stored
            if record.record_id not in previous or previous[record.record_id].state != record.state
        ]
        expected = {
            record.record_id: previous[record.record_id].state
            if record.record_id in previous
            else None
            for record in writes
        }
        return _Observed(changes, stored, writes, expected, marker)

    async def _previous(self, vendor: str, kind: str) -> dict[str, SeenRecord]:
        rows = await self._services.storage.vendor_states.get_many(vendor, kind)
        return {rid: SeenRecord(rid, row.state, row.snapshot) for rid, row in rows.items()}

    async def _poll_repairs(self, markers: Mapping[str, Any], now: datetime) -> _Observed | None:
        services = self._services
        try:
            items = [
                item
                async for item in services.akubela.iter_project_maintenance(
                    services.manager_auth, services.settings.akubela_project_id
                )
            ]
        except ApiError as exc:
            logger.warning(
                "alerts: the Akubela manager list failed (%s); next poll", type(exc).__name__
            )
            return None
        current = [repair_record(item) for item in items if item.maintenance_id]
        previous = await self._previous("akubela", "repair")
        return self._observe(previous, current, "akubela.repair", markers, now)

    async def _poll_bookings(
        self, directory: Directory, markers: Mapping[str, Any], now: datetime
    ) -> list[_Observed]:
        services = self._services
        previous_all = await self._previous("akubela", "booking")
        by_residence: dict[str, dict[str, SeenRecord]] = defaultdict(dict)
        for rid, record in previous_all.items():
            by_residence[str(record.snapshot.get("residence_id", ""))][rid] = record
        results: list[_Observed] = []
        for residence_id, people in directory.residents.items():
            bookings = None
            for telegram_id in people:
                desk = await services.desk_for_residence(telegram_id, residence_id)
                if desk is None:
                    continue
                try:
                    bookings = await desk.bookings()
                except ApiError as exc:
                    logger.warning(
                        "alerts: bookings of a residence failed (%s); next poll",
                        type(exc).__name__,
                    )
                    continue
                break
            if bookings is None:
                continue
            current = [booking_record(b, residence_id) for b in bookings if b.booking_id]
            marker = f"akubela.booking.{residence_id}"
            results.append(
                self._observe(by_residence[residence_id], current, marker, markers, now)
            )
        return results

    async def _poll_tasks(
        self, markers: Mapping[str, Any], now: datetime
    ) -> tuple[_Observed, dict[str, tuple[int, ...]]] | None:
        services = self._services
        try:
            tasks = [task async for task in services.tuya.iter_tasks()]
            workers = [worker async for worker in services.tuya.iter_workers()]
        except ApiError as exc:
            logger.warning("alerts: the Tuya task list failed (%s); next poll", type(exc).__name__)
            return None
        linked = await self._by_username(workers)
        current = [task_record(task) for task in tasks if task.task_id]
        previous = await self._previous("tuya", "task")
        if "tuya.task" in markers:
            # The list does not say where a task is: a new one's rooms are looked up once.
            for record in current:
                if record.record_id not in previous:
                    record.snapshot["rooms"] = await self._rooms_of(record.record_id)
        return self._observe(previous, current, "tuya.task", markers, now), linked

    async def _rooms_of(self, task_id: str) -> str:
        """The names of a task's rooms, or "" when they cannot be read now."""
        board = self._services.task_board
        try:
            detail = await board.task(task_id)
            names = {room.room_id: room.room_name for room in await board.rooms()}
        except ApiError as exc:
            logger.info("alerts: rooms of a new task unknown (%s)", type(exc).__name__)
            return ""
        return ", ".join(names.get(r.room_id) or r.room_id for r in detail.room_device_relations)

    # ---- telling ---------------------------------------------------------------------------

    async def _record(
        self, alerts: Iterable[Alert], user_data: Mapping[int, Any], now: datetime
    ) -> None:
        for alert in alerts:
            switched_off = (user_data.get(alert.recipient) or {}).get(SWITCHED_OFF_KEY) or ()
            if not wanted(alert, switched_off):
                continue
            if await self._ledger.record(alert, now):
                logger.info("alert %s for user %s recorded", alert.kind.value, alert.recipient)

    async def deliver(self, application: Any, now: datetime) -> None:
        """Sends every pending alert that is due; failed ones stay for the next poll."""
        async with self._delivering:
            if self._delivering_everywhere is None:
                await self._deliver_pending(application, now)
                return
            async with self._delivering_everywhere():
                await self._deliver_pending(application, now)

    def deliver_one_at_a_time_with(
        self, lock: Callable[[], AbstractAsyncContextManager[None]]
    ) -> None:
        """Cluster mode: deliveries also wait for `lock`, which every process shares."""
        self._delivering_everywhere = lock

    async def _deliver_pending(self, application: Any, now: datetime) -> None:
        # Page through by id: alerts held by quiet hours must not hide the ones behind them.
        after = 0
        blocked: set[int] = set()
        while True:
            rows = await self._ledger.pending(after=after, limit=self._page_size)
            if not rows:
                return
            users = await self._ledger.users(row.recipient for row in rows)
            blocked |= {tid for tid, user in users.items() if user.blocked_at is not None}
            for row in rows:
                await self._deliver_one(application, row, users.get(row.recipient), blocked, now)
            after = rows[-1].id

    async def _deliver_one(
        self,
        application: Any,
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


async def _send_photos(bot: Any, chat_id: int, photos: Sequence[str]) -> None:
    # The text went out and is marked sent: a photo that fails is logged, not retried, so the
    # text is never sent twice.
    try:
        if len(photos) == 1:
            await bot.send_photo(chat_id, photos[0])
        else:
            await bot.send_media_group(chat_id, [InputMediaPhoto(p) for p in photos[:10]])
    except TelegramError as exc:
        logger.warning("photos of an alert to user %s failed (%s)", chat_id, type(exc).__name__)


def _live(records: Iterable[SeenRecord]) -> list[SeenRecord]:
    return [record for record in records if record.state != GONE]


def watcher_of(application: Any) -> AlertWatcher:
    """The application's one watcher (made on first use)."""
    watcher = application.bot_data.get(WATCHER_KEY)
    if not isinstance(watcher, AlertWatcher):
        services: Services = application.bot_data[SERVICES_KEY]
        watcher = AlertWatcher(services)
        application.bot_data[WATCHER_KEY] = watcher
    return watcher


async def watch_vendors(context: ConciergeContext) -> None:
    """The repeating job: one poll of every vendor."""
    await watcher_of(context.application).poll(context.application)


def own_write(outcome: Outcome) -> OwnWrite | None:
    """The write an outcome settled, as the watcher announces it; None when there is nothing
    to announce (not at the vendor, or announced when it was first settled)."""
    if not outcome.done or outcome.settled_before:
        return None
    write = outcome.write
    payload: dict[str, Any] = write.model_dump(mode="json")
    ids: list[str]
    if isinstance(write, TaskCreate):
        payload = {**payload, **write.facts, "rooms": ", ".join(write.room_names)}
        ids = [outcome.record_id] if outcome.record_id else []
    elif outcome.record_id:
        ids = [outcome.record_id]
    else:
        one = [str(payload[k]) for k in ("repair_id", "booking_id", "task_id") if payload.get(k)]
        many = [str(i) for k in ("repair_ids", "booking_ids") for i in payload.get(k) or ()]
        ids = one + many
    if not ids:
        return None
    return OwnWrite(write.kind, outcome.telegram_id, tuple(ids), payload)


def announcing_outcomes(application: Any) -> Callable[[Outcome], Awaitable[None]]:
    """The write journal's hook: every write of the bot's that reached the vendor is news at
    once, whichever path settled it (the conversation, a retry, the recovery after a crash)."""
    watcher = watcher_of(application)

    async def announce(outcome: Outcome) -> None:
        write = own_write(outcome)
        if write is not None:
            await watcher.announce(application, write)

    return announce


async def look_before_updates(application: Any) -> None:
    """At start, before the first update: one poll, so the watcher knows what is there (the
    baseline on a fresh install, what changed while the bot was down otherwise) and a write in
    the bot's first second is compared with it."""
    await watcher_of(application).poll(application)


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
