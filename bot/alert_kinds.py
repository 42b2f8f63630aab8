"""Which alerts follow from what the watcher saw: pure rules, tested without Telegram or vendors.

This is the watcher's third part: `bot.alert_polling` looks at the vendors, `bot.alert_delivery`
records and sends, and nothing here does any I/O.

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
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from api.akubela_models import (
    Booking,
    BookingState,
    Maintenance,
    MaintenanceState,
    ManagerMaintenance,
)
from api.tuya_models import TaskStatus, TaskSummary
from bot.storage.repositories import SeenRecord
from conversations import callbacks
from conversations.community import Community
from conversations.i18n import N_
from conversations.my_repairs import key_of
from conversations.ports import OwnWrite
from conversations.writes import Outcome, TaskCreate

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
    CANCELLED = "cancelled"
    TASK_ACKNOWLEDGED = "task_acknowledged"
    TASK_ACCEPTED = "task_accepted"


# What a manager can switch off, in the order /alerts lists them, with its label.
MANAGER_KINDS: dict[AlertKind, str] = {
    AlertKind.REPAIR_NEW: N_("New repairs"),
    AlertKind.BOOKING_PENDING: N_("Bookings waiting for approval"),
    AlertKind.TASK_AWAITING_ACCEPTANCE: N_("Tasks waiting for acceptance"),
    AlertKind.REPAIR_ESCALATION: N_("Repairs left unconfirmed"),
    AlertKind.TASK_ESCALATION: N_("Tasks left unacknowledged"),
    AlertKind.CANCELLED: N_("Cancellations by residents"),
    AlertKind.TASK_ACKNOWLEDGED: N_("Tasks acknowledged by workers"),
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
MSG_BOOKING_CANCELLED = N_("🚫 Your booking of {amenity} on {when} was cancelled.")
MSG_BOOKING_NOW = N_("📋 Your booking of {amenity} on {when} is now “{state}”.")
MSG_BOOKING_UNLISTED = N_(
    "❔ Your booking of {amenity} on {when} is no longer listed by Akubela; "
    "no decision on it reached me."
)
MSG_BOOKING_LAPSED = N_(
    "⌛ Your booking of {amenity} on {when} was still waiting for approval when it began."
)
MSG_BOOKING_REMINDER = N_("⏰ Reminder: your booking of {amenity} starts at {when}.")
MSG_TASK_ASSIGNED = N_(
    "🧰 New maintenance task #{short_id} for you.\n🏠 {rooms}\n📝 {note}\n"
    "🕒 Visit: {start} – {finish}\n📞 {contact}"
)
MSG_TASK_ASSIGNED_PLAIN = N_("🧰 New maintenance task #{short_id} for you.\n🏠 {rooms}")
MSG_TASK_REOPENED = N_("↩️ Task #{short_id} was reopened by the manager and needs more work.")
MSG_TASK_REOPENED_REASON = N_(
    "↩️ Task #{short_id} was reopened by the manager and needs more work.\nReason: {reason}"
)
MSG_TASK_ACCEPTED = N_("✅ Your task #{short_id} was accepted.")
MSG_TASK_ACKNOWLEDGED = N_("👍 {worker} acknowledged task #{short_id} ({rooms}).")
MSG_REPAIR_NEW = N_(
    "🆕 New repair #{short_id} from {home}:\n📝 {description}\n"
    "🕒 Visit: {start} – {finish}\n📞 {contact}"
)
MSG_REPAIR_WITHDRAWN = N_(
    "🚫 Repair #{short_id} from {home} (“{description}”) was withdrawn by the resident."
)
MSG_BOOKING_PENDING = N_(
    "⏳ {home} asks for {amenity} on {when} (booking #{short_id}); the booking waits for approval."
)
MSG_BOOKING_WITHDRAWN = N_("🚫 {home} cancelled their booking of {amenity} on {when}.")
MSG_TASK_AWAITING = N_("🏁 Task #{short_id} ({worker}) is finished and waits for your acceptance.")
MSG_REPAIR_ESCALATION = N_(
    "⚠️ The repair “{description}” from {home} has waited for confirmation for over {hours} h."
)
MSG_TASK_ESCALATION = N_(
    "⚠️ Task #{short_id} ({worker}) has not been acknowledged for over {hours} h."
)

BUTTON_ALL_REPAIRS = N_("🏠 All repairs")
BUTTON_OPEN_REPAIR = N_("🔎 Open the repair")
BUTTON_ASSIGN = N_("➕ Assign a task")
BUTTON_BOOKINGS_WAITING = N_("⏳ Bookings waiting")
BUTTON_OPEN_TASK = N_("🔎 Open the task")
BUTTON_TASKS = N_("🧰 Tasks")
BUTTON_ACCEPT = N_("✅ Accept the work")
BUTTON_REOPEN = N_("↩️ Reopen the task")

# What a resident hears when their booking leaves `pending`, by the state it is found in.
DECISION_MESSAGES: dict[str, str] = {
    BookingState.SUCCESS: MSG_BOOKING_APPROVED,
    BookingState.REJECTED: MSG_BOOKING_REJECTED,
    BookingState.CANCELED: MSG_BOOKING_CANCELLED,
}
# A repair that disappears from the manager list while open was withdrawn by its resident.
OPEN_REPAIR_STATES = frozenset(
    {MaintenanceState.WAIT_FOR_CONFIRMATION, MaintenanceState.IN_PROGRESS}
)
# A booking cancelled from these states is news to the office.
HELD_BOOKING_STATES = frozenset({BookingState.PENDING, BookingState.SUCCESS})

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
    """Who is who, for routing: residents by residence, workers by Tuya username, managers;
    and each linked residence's flat (building and room) as people name it."""

    residents: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    workers: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    managers: tuple[int, ...] = ()
    flats: Mapping[str, str] = field(default_factory=dict)

    def flat(self, snapshot: Mapping[str, Any]) -> str:
        """The record's flat: building and room when a resident's link names them."""
        return self.flats.get(_text(snapshot, "residence_id")) or _text(snapshot, "home") or "—"


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
    # The community's name by language ("en", "zh"), for a reader who serves several.
    community: Mapping[str, str] = field(default_factory=dict)
    # The community's time zone: its times read as its people live them, unless the reader
    # chose a zone of their own ("": the deployment's first community).
    time_zone: str = ""

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
            "community": dict(self.community),
            "time_zone": self.time_zone,
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
            community={str(k): str(v) for k, v in dict(payload.get("community") or {}).items()},
            time_zone=str(payload.get("time_zone") or ""),
        )

    def community_name(self, lang: str) -> str:
        """The community's name in `lang` ("" for an alert that names none)."""
        chinese = self.community.get("zh", "") if lang.startswith("zh") else ""
        return chinese or self.community.get("en", "") or self.community.get("zh", "")


def labelled(alerts: Iterable[Alert], community: Community, readers: Set[int]) -> list[Alert]:
    """The alerts of one community, in its time zone, those to `readers` (who serve several)
    naming it."""
    names = {"en": community.name("en"), "zh": community.name("zh")}
    return [
        replace(
            alert,
            community=names if alert.recipient in readers else alert.community,
            time_zone=community.time_zone,
        )
        for alert in alerts
    ]


# ---- records ---------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def repair_record(item: Maintenance, residence_id: str = "") -> SeenRecord:
    """A repair (from the manager list, or one resident's) as the watcher keeps it."""
    home = ""
    if isinstance(item, ManagerMaintenance):
        residence_id = item.residence_id or residence_id
        home = " ".join(part for part in (item.building_name, item.family_name) if part)
    return SeenRecord(
        record_id=item.maintenance_id,
        state=item.state,
        snapshot={
            "residence_id": residence_id,
            "description": item.description,
            "feedback": item.feedback,
            "home": home,
            "start": _iso(item.start_time),
            "finish": _iso(item.finish_time),
            "contact": item.contact,
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


# What the bot knows of a record that the vendor's list does not say (a task's rooms, and the
# repair it was made from): kept from one poll to the next.
STICKY = ("rooms", "note", "repair_start", "repair_finish", "contact", "residence_id")


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
        kept = {k: old.snapshot[k] for k in STICKY if old is not None and k in old.snapshot}
        snapshot = {**kept, **record.snapshot, SINCE: since or now.isoformat()}
        stored.append(SeenRecord(record.record_id, record.state, snapshot))
    stored.extend(
        SeenRecord(record_id, GONE, dict(old.snapshot))
        for record_id, old in previous.items()
        if record_id not in present and old.state != GONE
    )
    return stored


@dataclass(slots=True)
class Observed:
    """One source's poll: its changes and what to store for it."""

    changes: list[Change]
    stored: list[SeenRecord]  # every record as it stands, with since when
    writes: list[SeenRecord]  # only those that are new, moved or gone: the rest is as stored
    expected: dict[str, str | None]  # the state each write replaces (None: none was stored)
    marker: str


def observe(
    previous: Mapping[str, SeenRecord],
    current: Sequence[SeenRecord],
    marker: str,
    markers: Mapping[str, Any],
    now: datetime,
) -> Observed:
    """One source as a poll found it, against what was known: `marker` names the source and
    `markers` the sources looked at before."""
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
    return Observed(changes, stored, writes, expected, marker)


def live(records: Iterable[SeenRecord]) -> list[SeenRecord]:
    """The records that are still there (not stored as gone)."""
    return [record for record in records if record.state != GONE]


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


def _window(snapshot: Mapping[str, Any], start: str, finish: str) -> dict[str, str]:
    return {"start": _text(snapshot, start), "finish": _text(snapshot, finish)}


def repair_alerts(
    changes: Iterable[Change],
    directory: Directory,
    photos: Mapping[str, Sequence[str]] | None = None,
) -> list[Alert]:
    """Residents hear of their repair's new state; managers of every new repair (with the
    photos a resident sent through the bot, `photos` by repair id) and of one withdrawn."""
    photos = photos or {}
    alerts: list[Alert] = []
    for change in changes:
        snap = change.snapshot
        rid = change.record_id
        facts = {
            "short_id": _short(rid),
            "home": directory.flat(snap),
            "description": _text(snap, "description"),
        }
        if change.kind is ChangeKind.NEW:
            key = key_of(rid)
            alerts.extend(
                Alert(
                    key=f"repair:{rid}:new:{manager}",
                    kind=AlertKind.REPAIR_NEW,
                    recipient=manager,
                    message=MSG_REPAIR_NEW,
                    values={
                        **facts,
                        **_window(snap, "start", "finish"),
                        "contact": _text(snap, "contact") or "—",
                    },
                    moments=("start", "finish"),
                    buttons=(
                        (BUTTON_OPEN_REPAIR, callbacks.build("repairs_all", "show", key)),
                        (BUTTON_ASSIGN, callbacks.build("assign", "repair", key)),
                    ),
                    photos=tuple(photos.get(rid, ())),
                )
                for manager in directory.managers
            )
        elif change.kind is ChangeKind.GONE and change.before in OPEN_REPAIR_STATES:
            alerts.extend(
                Alert(
                    key=f"repair:{rid}:withdrawn:{manager}",
                    kind=AlertKind.CANCELLED,
                    recipient=manager,
                    message=MSG_REPAIR_WITHDRAWN,
                    values=facts,
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


def _outcome(change: Change) -> str | None:
    """What a resident hears of a booking that left `pending` (None: still pending or never
    was): the state it is found in, whatever it went through in between."""
    if change.before != BookingState.PENDING or change.after == BookingState.PENDING:
        return None
    if change.kind is ChangeKind.GONE:
        return MSG_BOOKING_UNLISTED
    return DECISION_MESSAGES.get(change.after or "", MSG_BOOKING_NOW)


def booking_alerts(changes: Iterable[Change], directory: Directory) -> list[Alert]:
    """Residents hear how a booking they were waiting on ended up; managers of bookings that
    wait for approval and of held bookings a resident cancelled.

    A booking leaves `pending` once, so its outcome has one key whatever the state it is found
    in: pending → approved → cancelled between two looks tells the resident "cancelled", once.
    The office hears "waits for approval" only of a booking seen pending: one already decided
    when first seen (made in the vendor's app and approved before the next poll) is not news
    to them, and its resident booked it there.
    """
    alerts: list[Alert] = []
    for change in changes:
        snap = change.snapshot
        rid = change.record_id
        values = {
            "amenity": _text(snap, "amenity"),
            "when": _text(snap, "start"),
            "home": directory.flat(snap),
            "short_id": _short(rid),
        }
        message = _outcome(change)
        if message is not None:
            alerts.extend(
                Alert(
                    key=f"booking:{rid}:outcome:{resident}",
                    kind=AlertKind.BOOKING_DECIDED,
                    recipient=resident,
                    message=message,
                    values={**values, "state": change.after or ""},
                    moments=("when",),
                )
                for resident in directory.residents.get(_text(snap, "residence_id"), ())
            )
        if change.kind is not ChangeKind.GONE and change.after == BookingState.PENDING:
            alerts.extend(
                Alert(
                    key=f"booking:{rid}:pending:{manager}",
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
        if (
            change.kind is ChangeKind.STATE
            and change.after == BookingState.CANCELED
            and change.before in HELD_BOOKING_STATES
        ):
            alerts.extend(
                Alert(
                    key=f"booking:{rid}:cancelled:{manager}",
                    kind=AlertKind.CANCELLED,
                    recipient=manager,
                    message=MSG_BOOKING_WITHDRAWN,
                    values=values,
                    moments=("when",),
                )
                for manager in directory.managers
            )
    return alerts


def booking_lapses(
    records: Iterable[SeenRecord], directory: Directory, *, now: datetime
) -> list[Alert]:
    """Residents hear of a booking still pending when it began: no decision ever came."""
    alerts: list[Alert] = []
    for record in records:
        start_text = record.snapshot.get("start")
        if record.state != BookingState.PENDING or not start_text:
            continue
        if datetime.fromisoformat(str(start_text)) > now:
            continue
        snap = record.snapshot
        alerts.extend(
            Alert(
                key=f"booking:{record.record_id}:outcome:{resident}",
                kind=AlertKind.BOOKING_DECIDED,
                recipient=resident,
                message=MSG_BOOKING_LAPSED,
                values={"amenity": _text(snap, "amenity"), "when": str(start_text)},
                moments=("when",),
            )
            for resident in directory.residents.get(_text(snap, "residence_id"), ())
        )
    return alerts


def _task_facts(tid: str, snap: Mapping[str, Any]) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """The assignment's message, values and moments: with the repair's facts when the task was
    made from one."""
    values = {"short_id": _short(tid), "rooms": _text(snap, "rooms") or "—"}
    if not _text(snap, "note"):
        return MSG_TASK_ASSIGNED_PLAIN, values, ()
    return (
        MSG_TASK_ASSIGNED,
        {
            **values,
            "note": _text(snap, "note"),
            **_window(snap, "repair_start", "repair_finish"),
            "contact": _text(snap, "contact") or "—",
        },
        ("start", "finish"),
    )


def task_alerts(changes: Iterable[Change], directory: Directory) -> list[Alert]:
    """Workers hear of tasks given to them, reopened or accepted; managers of tasks awaiting
    acceptance."""
    alerts: list[Alert] = []
    for change in changes:
        snap = change.snapshot
        tid = change.record_id
        mark = _mark(change.before_since)
        short = {"short_id": _short(tid)}
        workers = directory.workers.get(_text(snap, "worker_username"), ())
        to_tasks = ((BUTTON_OPEN_TASK, callbacks.build("tasks", "show", tid)),)
        # A task first seen already started or done was not news to its worker.
        if change.kind is ChangeKind.NEW and change.after == TaskStatus.PENDING_MAINTENANCE:
            message, values, moments = _task_facts(tid, snap)
            alerts.extend(
                Alert(
                    key=f"task:{tid}:assigned:{worker}",
                    kind=AlertKind.TASK_ASSIGNED,
                    recipient=worker,
                    message=message,
                    values=values,
                    moments=moments,
                    buttons=to_tasks,
                )
                for worker in workers
            )
        if (
            change.kind is ChangeKind.STATE
            and change.after == TaskStatus.PENDING_MAINTENANCE
            and change.before in REOPENED_FROM
        ):
            reason = _text(snap, "reason")
            alerts.extend(
                Alert(
                    key=f"task:{tid}:reopened:{mark}:{worker}",
                    kind=AlertKind.TASK_REOPENED,
                    recipient=worker,
                    message=MSG_TASK_REOPENED_REASON if reason else MSG_TASK_REOPENED,
                    values={**short, "reason": reason} if reason else short,
                    buttons=to_tasks,
                )
                for worker in workers
            )
        if change.kind is ChangeKind.STATE and change.after == TaskStatus.ACCEPTANCE_COMPLETE:
            alerts.extend(
                Alert(
                    key=f"task:{tid}:accepted:{mark}:{worker}",
                    kind=AlertKind.TASK_ACCEPTED,
                    recipient=worker,
                    message=MSG_TASK_ACCEPTED,
                    values=short,
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


def acknowledgement_alerts(
    task_id: str, worker: str, rooms: str, at: datetime, directory: Directory
) -> list[Alert]:
    """Managers hear that a worker has seen a new task (an acknowledgement lives in the bot)."""
    return [
        Alert(
            key=f"task:{task_id}:acknowledged:{_mark(at.isoformat())}:{manager}",
            kind=AlertKind.TASK_ACKNOWLEDGED,
            recipient=manager,
            message=MSG_TASK_ACKNOWLEDGED,
            values={"short_id": _short(task_id), "worker": worker, "rooms": rooms or "—"},
            buttons=((BUTTON_OPEN_TASK, callbacks.build("tasks", "show", task_id)),),
        )
        for manager in directory.managers
    ]


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
                    "home": directory.flat(snap),
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


# ---- the bot's own writes --------------------------------------------------------------------

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


def own_write(outcome: Outcome) -> OwnWrite | None:
    """The write an outcome settled, as the watcher announces it; None when there is nothing
    to announce (not at the vendor, or announced when it was first settled)."""
    if not outcome.done or outcome.settled_before:
        return None
    write = outcome.write
    payload: dict[str, Any] = write.model_dump(mode="json")
    if isinstance(write, TaskCreate):
        payload = {**payload, **write.facts, "rooms": ", ".join(write.room_names)}
    ids = write.subjects(outcome.record_id)
    if not ids:
        return None
    return OwnWrite(write.kind, outcome.telegram_id, ids, payload)
