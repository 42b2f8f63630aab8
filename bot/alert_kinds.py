"""Which alerts follow from what the watcher saw: pure rules, tested without Telegram or vendors.

The watcher turns every vendor record into a `SeenRecord` (id, state, a small JSON snapshot).
`diff` compares one poll with the last, `stamp` carries over since when each record has been in
its state, and the rule functions turn the changes (and, for reminders and escalations, the
records as they stand) into `Alert`s: one per recipient, each with a dedupe key, so an alert
derived twice (after a crash, on the next poll) is still recorded and sent once.

Keys of a state change name the moment the record entered its previous state: that moment is
stored with the previous snapshot, so a change seen again after a crash gives the same key,
while a task that comes back to the same state later (reopened, finished again) gives a new one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from api.akubela_models import Booking, BookingState, MaintenanceState, ManagerMaintenance
from api.tuya_models import TaskStatus, TaskSummary
from bot.storage.repositories import SeenRecord
from conversations import callbacks
from conversations.i18n import N_

# The state stored for a record that disappeared, so it is reported gone only once.
GONE = "~gone"
SINCE = "since"


class AlertKind(StrEnum):
    """Every kind of alert; managers can switch their own kinds off with /alerts."""

    REPAIR_STATE = "repair_state"
    BOOKING_DECIDED = "booking_decided"
    BOOKING_REMINDER = "booking_reminder"
    TASK_ASSIGNED = "task_assigned"
    TASK_REOPENED = "task_reopened"
    REPAIR_NEW = "repair_new"
    BOOKING_PENDING = "booking_pending"
    TASK_AWAITING_ACCEPTANCE = "task_awaiting"
    REPAIR_ESCALATION = "repair_escalation"
    TASK_ESCALATION = "task_escalation"


# What a manager can switch off, in the order /alerts lists them, with its label.
MANAGER_KINDS: dict[AlertKind, str] = {
    AlertKind.REPAIR_NEW: N_("New repairs"),
    AlertKind.BOOKING_PENDING: N_("Bookings waiting for approval"),
    AlertKind.TASK_AWAITING_ACCEPTANCE: N_("Tasks waiting for acceptance"),
    AlertKind.REPAIR_ESCALATION: N_("Repairs left unconfirmed"),
    AlertKind.TASK_ESCALATION: N_("Tasks left unacknowledged"),
}

# The alerts that come with a staff role; they stop, pending ones too, when the role goes.
WORKER_KINDS = frozenset({AlertKind.TASK_ASSIGNED, AlertKind.TASK_REOPENED})

REPAIR_STATE_WORDS: dict[str, str] = {
    MaintenanceState.WAIT_FOR_CONFIRMATION: N_("waiting for the office to confirm"),
    MaintenanceState.IN_PROGRESS: N_("confirmed and being worked on"),
    MaintenanceState.COMPLETED: N_("completed by the technician"),
    MaintenanceState.CLOSED: N_("closed by the office"),
}

MSG_REPAIR_STATE = N_("🔧 Your repair “{description}” is now {state}.")
MSG_REPAIR_STATE_FEEDBACK = N_(
    "🔧 Your repair “{description}” is now {state}.\nFeedback: {feedback}"
)
MSG_BOOKING_APPROVED = N_("✅ Your booking of {amenity} on {when} was approved.")
MSG_BOOKING_REJECTED = N_("❌ Your booking of {amenity} on {when} was rejected.")
MSG_BOOKING_REMINDER = N_("⏰ Reminder: your booking of {amenity} starts at {when}.")
MSG_TASK_ASSIGNED = N_("🧰 A new maintenance task was assigned to you: task #{short_id}.")
MSG_TASK_REOPENED = N_("↩️ Task #{short_id} was reopened by the manager and needs more work.")
MSG_REPAIR_NEW = N_("🆕 New repair from {home}: “{description}”.")
MSG_BOOKING_PENDING = N_("⏳ {home} asks for {amenity} on {when}; the booking waits for approval.")
MSG_TASK_AWAITING = N_("🏁 Task #{short_id} ({worker}) is finished and waits for your acceptance.")
MSG_REPAIR_ESCALATION = N_(
    "⚠️ The repair “{description}” from {home} has waited for confirmation for over {hours} h."
)
MSG_TASK_ESCALATION = N_(
    "⚠️ Task #{short_id} ({worker}) has not been acknowledged for over {hours} h."
)

BUTTON_ALL_REPAIRS = N_("🏠 All repairs")
BUTTON_ASSIGN = N_("➕ Assign a task")
BUTTON_BOOKINGS_WAITING = N_("⏳ Bookings waiting")
BUTTON_MY_TASKS = N_("🧰 My tasks")
BUTTON_TASKS = N_("🧰 Tasks")
BUTTON_ACCEPT = N_("✅ Accept the work")
BUTTON_REOPEN = N_("↩️ Reopen the task")

DECISION_MESSAGES: dict[str, str] = {
    BookingState.SUCCESS: MSG_BOOKING_APPROVED,
    BookingState.REJECTED: MSG_BOOKING_REJECTED,
}

REOPENED_FROM = frozenset({TaskStatus.PENDING_ACCEPTANCE, TaskStatus.ACCEPTANCE_COMPLETE})


class ChangeKind(StrEnum):
    """How a record differs from the last poll."""

    NEW = "new"
    STATE = "state"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Change:
    """One record that is new, changed state or is gone since the last poll."""

    kind: ChangeKind
    record_id: str
    before: str | None
    after: str | None
    snapshot: Mapping[str, Any]
    # When the record entered its previous state (from the stored snapshot), for dedupe keys.
    before_since: str | None = None


@dataclass(frozen=True, slots=True)
class Directory:
    """Who is who, for routing: residents by residence, workers by Tuya username, managers."""

    residents: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    workers: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    managers: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    """One message owed to one person; `message`, labels and `translated` values are msgids."""

    key: str
    kind: AlertKind
    recipient: int
    message: str
    values: Mapping[str, str] = field(default_factory=dict)
    translated: tuple[str, ...] = ()
    buttons: tuple[tuple[str, str], ...] = ()  # (label, callback data), one per row
    urgent: bool = False
    photos: tuple[str, ...] = ()  # Telegram file ids sent after the text
    moments: tuple[str, ...] = ()  # values that are ISO times, shown in the reader's zone

    def payload(self) -> dict[str, Any]:
        """The alert as JSON-plain data, kept until it is delivered."""
        return {
            "message": self.message,
            "values": dict(self.values),
            "translated": list(self.translated),
            "buttons": [list(button) for button in self.buttons],
            "urgent": self.urgent,
            "photos": list(self.photos),
            "moments": list(self.moments),
        }

    @classmethod
    def from_payload(
        cls, key: str, kind: str, recipient: int, payload: Mapping[str, Any]
    ) -> Alert:
        """The alert stored by `payload`."""
        return cls(
            key=key,
            kind=AlertKind(kind),
            recipient=recipient,
            message=str(payload["message"]),
            values={str(k): str(v) for k, v in dict(payload.get("values") or {}).items()},
            translated=tuple(str(v) for v in payload.get("translated") or ()),
            buttons=tuple((str(b[0]), str(b[1])) for b in payload.get("buttons") or ()),
            urgent=bool(payload.get("urgent")),
            photos=tuple(str(p) for p in payload.get("photos") or ()),
            moments=tuple(str(m) for m in payload.get("moments") or ()),
        )


# ---- records ---------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def repair_record(item: ManagerMaintenance) -> SeenRecord:
    """A repair from the manager list as the watcher keeps it."""
    home = " ".join(part for part in (item.building_name, item.family_name) if part)
    return SeenRecord(
        record_id=item.maintenance_id,
        state=item.state,
        snapshot={
            "residence_id": item.residence_id,
            "description": item.description,
            "feedback": item.feedback,
            "home": home,
        },
    )


def booking_record(item: Booking, residence_id: str) -> SeenRecord:
    """A booking of one residence as the watcher keeps it."""
    return SeenRecord(
        record_id=item.booking_id,
        state=item.state,
        snapshot={
            "residence_id": residence_id,
            "amenity": item.amenity_name,
            "home": " ".join(p for p in (item.building_name, item.family_name) if p),
            "start": _iso(item.start_time),
        },
    )


def task_record(item: TaskSummary) -> SeenRecord:
    """A Tuya task as the watcher keeps it."""
    return SeenRecord(
        record_id=item.task_id,
        state=item.status,
        snapshot={
            "worker_username": item.worker_username,
            "worker": item.worker_nickname or item.worker_username,
        },
    )


# ---- changes ---------------------------------------------------------------------------------


def diff(previous: Mapping[str, SeenRecord], current: Iterable[SeenRecord]) -> list[Change]:
    """What is new, what changed state and what is gone, compared with the last poll."""
    changes: list[Change] = []
    present: set[str] = set()
    for record in current:
        present.add(record.record_id)
        old = previous.get(record.record_id)
        if old is None or old.state == GONE:
            changes.append(
                Change(ChangeKind.NEW, record.record_id, None, record.state, record.snapshot)
            )
        elif old.state != record.state:
            changes.append(
                Change(
                    ChangeKind.STATE,
                    record.record_id,
                    old.state,
                    record.state,
                    record.snapshot,
                    before_since=_since_text(old),
                )
            )
    for record_id, old in previous.items():
        if record_id not in present and old.state != GONE:
            changes.append(Change(ChangeKind.GONE, record_id, old.state, None, old.snapshot))
    return changes


def stamp(
    previous: Mapping[str, SeenRecord], current: Iterable[SeenRecord], now: datetime
) -> list[SeenRecord]:
    """What to store: each record with since when it is in its state; vanished ones as gone."""
    stored: list[SeenRecord] = []
    present: set[str] = set()
    for record in current:
        present.add(record.record_id)
        old = previous.get(record.record_id)
        since = _since_text(old) if old is not None and old.state == record.state else None
        snapshot = {**record.snapshot, SINCE: since or now.isoformat()}
        stored.append(SeenRecord(record.record_id, record.state, snapshot))
    stored.extend(
        SeenRecord(record_id, GONE, dict(old.snapshot))
        for record_id, old in previous.items()
        if record_id not in present and old.state != GONE
    )
    return stored


def _since_text(record: SeenRecord) -> str | None:
    value = record.snapshot.get(SINCE)
    return str(value) if value else None


def since_of(record: SeenRecord) -> datetime | None:
    """Since when the record has been in its state, as stamped."""
    text = _since_text(record)
    return datetime.fromisoformat(text) if text else None


def _mark(since: str | None) -> str:
    """A compact, stable token of a moment for dedupe keys."""
    if not since:
        return "0"
    return str(int(datetime.fromisoformat(since).timestamp()))


# ---- rules -----------------------------------------------------------------------------------


def _short(record_id: str) -> str:
    return record_id[-6:]


def local_time(value: str, zone: ZoneInfo) -> str:
    """An ISO moment as the reader's local date and time; "?" when there is none."""
    if not value:
        return "?"
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _text(snapshot: Mapping[str, Any], name: str) -> str:
    return str(snapshot.get(name) or "")


def repair_alerts(
    changes: Iterable[Change],
    directory: Directory,
    photos: Mapping[str, Sequence[str]] | None = None,
) -> list[Alert]:
    """Residents hear of their repair's new state; managers of every new repair, with the
    photos a resident sent through the bot (`photos` by repair id)."""
    photos = photos or {}
    alerts: list[Alert] = []
    for change in changes:
        snap = change.snapshot
        rid = change.record_id
        if change.kind is ChangeKind.NEW:
            alerts.extend(
                Alert(
                    key=f"repair:{rid}:new:{manager}",
                    kind=AlertKind.REPAIR_NEW,
                    recipient=manager,
                    message=MSG_REPAIR_NEW,
                    values={
                        "home": _text(snap, "home"),
                        "description": _text(snap, "description"),
                    },
                    buttons=(
                        (BUTTON_ALL_REPAIRS, callbacks.build("menu", "repairs_all")),
                        (BUTTON_ASSIGN, callbacks.build("menu", "assign")),
                    ),
                    photos=tuple(photos.get(rid, ())),
                )
                for manager in directory.managers
            )
        elif change.kind is ChangeKind.STATE and change.after is not None:
            feedback = _text(snap, "feedback")
            word = REPAIR_STATE_WORDS.get(change.after)
            alerts.extend(
                Alert(
                    key=f"repair:{rid}:{change.after}:{_mark(change.before_since)}:{resident}",
                    kind=AlertKind.REPAIR_STATE,
                    recipient=resident,
                    message=MSG_REPAIR_STATE_FEEDBACK if feedback else MSG_REPAIR_STATE,
                    values={
                        "description": _text(snap, "description"),
                        "state": word or change.after,
                        "feedback": feedback,
                    },
                    translated=("state",) if word else (),
                )
                for resident in directory.residents.get(_text(snap, "residence_id"), ())
            )
    return alerts


def booking_alerts(changes: Iterable[Change], directory: Directory) -> list[Alert]:
    """Residents hear whether a booking was approved; managers of bookings that wait."""
    alerts: list[Alert] = []
    for change in changes:
        snap = change.snapshot
        rid = change.record_id
        when = _text(snap, "start")
        values = {"amenity": _text(snap, "amenity"), "when": when, "home": _text(snap, "home")}
        mark = _mark(change.before_since)
        if change.kind is ChangeKind.STATE and change.before == BookingState.PENDING:
            message = DECISION_MESSAGES.get(change.after or "")
            if message is not None:
                alerts.extend(
                    Alert(
                        key=f"booking:{rid}:{change.after}:{mark}:{resident}",
                        kind=AlertKind.BOOKING_DECIDED,
                        recipient=resident,
                        message=message,
                        values=values,
                        moments=("when",),
                    )
                    for resident in directory.residents.get(_text(snap, "residence_id"), ())
                )
        if change.kind is not ChangeKind.GONE and change.after == BookingState.PENDING:
            alerts.extend(
                Alert(
                    key=f"booking:{rid}:pending:{mark}:{manager}",
                    kind=AlertKind.BOOKING_PENDING,
                    recipient=manager,
                    message=MSG_BOOKING_PENDING,
                    values=values,
                    moments=("when",),
                    buttons=(
                        (BUTTON_BOOKINGS_WAITING, callbacks.build("menu", "bookings_pending")),
                    ),
                )
                for manager in directory.managers
            )
    return alerts


def task_alerts(changes: Iterable[Change], directory: Directory) -> list[Alert]:
    """Workers hear of tasks given to them or reopened; managers of tasks awaiting acceptance."""
    alerts: list[Alert] = []
    for change in changes:
        snap = change.snapshot
        tid = change.record_id
        mark = _mark(change.before_since)
        short = {"short_id": _short(tid)}
        workers = directory.workers.get(_text(snap, "worker_username"), ())
        to_tasks = ((BUTTON_MY_TASKS, callbacks.build("menu", "tasks")),)
        if change.kind is ChangeKind.NEW:
            alerts.extend(
                Alert(
                    key=f"task:{tid}:assigned:{worker}",
                    kind=AlertKind.TASK_ASSIGNED,
                    recipient=worker,
                    message=MSG_TASK_ASSIGNED,
                    values=short,
                    buttons=to_tasks,
                )
                for worker in workers
            )
        if (
            change.kind is ChangeKind.STATE
            and change.after == TaskStatus.PENDING_MAINTENANCE
            and change.before in REOPENED_FROM
        ):
            alerts.extend(
                Alert(
                    key=f"task:{tid}:reopened:{mark}:{worker}",
                    kind=AlertKind.TASK_REOPENED,
                    recipient=worker,
                    message=MSG_TASK_REOPENED,
                    values=short,
                    buttons=to_tasks,
                )
                for worker in workers
            )
        if change.kind is not ChangeKind.GONE and change.after == TaskStatus.PENDING_ACCEPTANCE:
            alerts.extend(
                Alert(
                    key=f"task:{tid}:awaiting:{mark}:{manager}",
                    kind=AlertKind.TASK_AWAITING_ACCEPTANCE,
                    recipient=manager,
                    message=MSG_TASK_AWAITING,
                    values={**short, "worker": _text(snap, "worker")},
                    buttons=(
                        (BUTTON_ACCEPT, callbacks.build("tasks", "accept", tid)),
                        (BUTTON_REOPEN, callbacks.build("tasks", "reopen", tid)),
                    ),
                )
                for manager in directory.managers
            )
    return alerts


def not_told_yet(
    changes: Iterable[Change],
    created_here: Set[str],
    reopened_here: Mapping[str, datetime],
) -> list[Change]:
    """Task changes the bot has not announced itself: /assign tells the worker of a task it
    created (`created_here`), the task board tells them why it reopened one (when, by id)."""
    kept: list[Change] = []
    for change in changes:
        if change.kind is ChangeKind.NEW and change.record_id in created_here:
            continue
        reopened = reopened_here.get(change.record_id)
        if (
            reopened is not None
            and change.kind is ChangeKind.STATE
            and change.after == TaskStatus.PENDING_MAINTENANCE
            and change.before in REOPENED_FROM
            and (
                change.before_since is None
                or reopened >= datetime.fromisoformat(change.before_since)
            )
        ):
            continue
        kept.append(change)
    return kept


def booking_reminders(
    records: Iterable[SeenRecord],
    directory: Directory,
    *,
    now: datetime,
    lead: timedelta,
) -> list[Alert]:
    """Residents are reminded of an approved booking that starts within `lead`."""
    alerts: list[Alert] = []
    for record in records:
        start_text = record.snapshot.get("start")
        if record.state != BookingState.SUCCESS or not start_text:
            continue
        start = datetime.fromisoformat(str(start_text))
        if not now < start <= now + lead:
            continue
        snap = record.snapshot
        alerts.extend(
            Alert(
                key=f"booking:{record.record_id}:remind:{_mark(str(start_text))}:{resident}",
                kind=AlertKind.BOOKING_REMINDER,
                recipient=resident,
                message=MSG_BOOKING_REMINDER,
                values={"amenity": _text(snap, "amenity"), "when": str(start_text)},
                moments=("when",),
                urgent=True,
            )
            for resident in directory.residents.get(_text(snap, "residence_id"), ())
        )
    return alerts


def periods_overdue(since: datetime | None, now: datetime, threshold: timedelta) -> int:
    """Whole thresholds elapsed since `since` (0 while within the first)."""
    if since is None or threshold <= timedelta(0) or now <= since:
        return 0
    return math.floor((now - since) / threshold)


def _hours(threshold: timedelta, periods: int) -> str:
    hours = threshold.total_seconds() * periods / 3600
    return f"{hours:g}"


def repair_escalations(
    records: Iterable[SeenRecord], directory: Directory, *, now: datetime, threshold: timedelta
) -> list[Alert]:
    """Managers hear of a repair still waiting for confirmation, once per threshold passed."""
    alerts: list[Alert] = []
    for record in records:
        if record.state != MaintenanceState.WAIT_FOR_CONFIRMATION:
            continue
        periods = periods_overdue(since_of(record), now, threshold)
        if periods < 1:
            continue
        mark = _mark(_since_text(record))
        snap = record.snapshot
        alerts.extend(
            Alert(
                key=f"repair:{record.record_id}:late:{mark}:{periods}:{manager}",
                kind=AlertKind.REPAIR_ESCALATION,
                recipient=manager,
                message=MSG_REPAIR_ESCALATION,
                values={
                    "description": _text(snap, "description"),
                    "home": _text(snap, "home"),
                    "hours": _hours(threshold, periods),
                },
                buttons=((BUTTON_ALL_REPAIRS, callbacks.build("menu", "repairs_all")),),
                urgent=True,
            )
            for manager in directory.managers
        )
    return alerts


def task_escalations(
    records: Iterable[SeenRecord],
    acknowledged: Set[str],
    directory: Directory,
    *,
    now: datetime,
    threshold: timedelta,
) -> list[Alert]:
    """Managers hear of a new task nobody acknowledged, once per threshold passed."""
    alerts: list[Alert] = []
    for record in records:
        if record.state != TaskStatus.PENDING_MAINTENANCE or record.record_id in acknowledged:
            continue
        periods = periods_overdue(since_of(record), now, threshold)
        if periods < 1:
            continue
        mark = _mark(_since_text(record))
        alerts.extend(
            Alert(
                key=f"task:{record.record_id}:late:{mark}:{periods}:{manager}",
                kind=AlertKind.TASK_ESCALATION,
                recipient=manager,
                message=MSG_TASK_ESCALATION,
                values={
                    "short_id": _short(record.record_id),
                    "worker": _text(record.snapshot, "worker"),
                    "hours": _hours(threshold, periods),
                },
                buttons=((BUTTON_TASKS, callbacks.build("menu", "tasks")),),
                urgent=True,
            )
            for manager in directory.managers
        )
    return alerts


# ---- who gets what, and when -----------------------------------------------------------------


def in_quiet_hours(moment: time, start: time | None, end: time | None) -> bool:
    """Whether a local time of day falls in quiet hours (which may span midnight)."""
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def wanted(alert: Alert, switched_off: Sequence[str] | Set[str]) -> bool:
    """Whether the recipient wants this kind (only managers' kinds can be switched off)."""
    return alert.kind not in MANAGER_KINDS or alert.kind.value not in switched_off
