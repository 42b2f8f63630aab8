"""Vendor writes as typed records: what each one is, how it is made, how to see it was made.

Every create, cancel or delete a user asks of a vendor is one of these records. The bot keeps
the record before the write leaves (`bot.writes`), so when its answer never comes (a crash, a
time-out, a dropped connection) the bot first asks the vendor what happened, with `find`, and
only then tells the user or sends it again:

- a create is recognised by what identifies it there: a repair by residence, description and
  visit window; a booking by residence, amenity and start; a booking by code, a Tuya task and a
  Servitly event by what is new since just before it was sent;
- a cancel or delete is done when the record is gone (or, for a booking, cancelled);
- a task move is done when the task stands where the move puts it.

`kind` is what a stored record is read back by, so it never changes once released.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from api.errors import ApiError, NotFound
from conversations.community import FIRST_COMMUNITY
from conversations.i18n import N_
from conversations.ports import MaintenanceLog, ResidentDesk, TaskBoard
from conversations.records import BookingState, Task, TaskState, Worker

SHORT_ID_LENGTH = 6


class NotLinked(Exception):
    """The account the write was made for is gone (unlinked, or the residence no longer theirs)."""


class CannotTell(Exception):
    """The vendor offers no way to see whether this write happened."""


@dataclass(frozen=True, slots=True)
class Found:
    """The write's result is at the vendor: the record it made or changed."""

    record_id: str | None


class Targets(Protocol):
    """Where writes go, for the user who asked for them."""

    async def desk(self, residence_id: str) -> ResidentDesk:
        """The user's desk for that residence (NotLinked when it is no longer theirs)."""
        ...

    def task_board_of(self, community_id: int) -> TaskBoard:
        """A community's maintenance tasks."""
        ...

    def maintenance_log_of(self, community_id: int) -> MaintenanceLog:
        """Where a community's accepted work is recorded."""
        ...


def short_id(record_id: str | None) -> str:
    """The short form people see: the last characters of the vendor's id."""
    return (record_id or "")[-SHORT_ID_LENGTH:]


def worker_id_of(task: Task, workers: Sequence[Worker]) -> str | None:
    """The worker a task belongs to: by username, else by a nickname only one worker has."""
    username = task.worker_username.strip().casefold()
    if username:
        for worker in workers:
            if worker.username.strip().casefold() == username:
                return worker.id
    nickname = task.worker_nickname.strip()
    if nickname:
        named = [w for w in workers if w.nickname.strip() == nickname]
        if len(named) == 1:
            return named[0].id
    return None


def _same_moment(a: datetime | None, b: datetime) -> bool:
    return a is not None and a.astimezone(UTC) == b.astimezone(UTC)


class VendorWrite(BaseModel):
    """What every write knows about itself."""

    model_config = ConfigDict(frozen=True)

    vendor: ClassVar[str]
    # Said to the user who asked when the write went through later (values: `done_values`).
    done_message: ClassVar[str]
    # The audit log's action for it; alerts read "task.create" and "task.reopen" back.
    audit_action: ClassVar[str]

    def subject(self) -> str | None:
        """The record this write changes (one write on it at a time); None for a create."""
        return None

    def subjects(self, record_id: str | None) -> tuple[str, ...]:
        """The records the done write touched, as alerts name them: the one it made or
        changed, else the ones it names."""
        return (record_id,) if record_id else self.named_records()

    def named_records(self) -> tuple[str, ...]:
        """The existing records this write is about (none for a create)."""
        return ()

    async def prepare(self, targets: Targets) -> Self:
        """The write with what must be known before it is sent (to recognise it later)."""
        return self

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        """Sends the write; the id of the record it made or changed."""
        raise NotImplementedError

    async def find(self, targets: Targets) -> Found | None:
        """The write's result if it is at the vendor; None when it did not happen."""
        raise NotImplementedError

    def done_values(self, record_id: str | None) -> dict[str, Any]:
        """The values of `done_message`."""
        return {"short_id": short_id(record_id)}

    def audit_target(self, record_id: str | None) -> str | None:
        """The audit log's target: the record made or changed."""
        return record_id

    def summary(self) -> dict[str, Any]:
        """What the audit log keeps of the request (nothing secret is in a write)."""
        return self.model_dump(mode="json", exclude={"kind"})


# ---- Akubela: a resident's repairs and bookings -------------------------------------------------


class ResidentWrite(VendorWrite):
    """A write on one of the user's residences at Akubela."""

    vendor: ClassVar[str] = "akubela"
    residence_id: str


class RepairCreate(ResidentWrite):
    """A new repair report."""

    kind: Literal["akubela.repair.create"] = "akubela.repair.create"
    done_message: ClassVar[str] = N_("✅ Your repair report went through: repair #{short_id}.")
    audit_action: ClassVar[str] = "repair.create"
    start: datetime
    finish: datetime
    description: str
    contact: str
    # Akubela keeps no photos: their Telegram file ids are kept with the repair once made.
    photo_file_ids: list[str] = Field(default_factory=list)

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        desk = await targets.desk(self.residence_id)
        return await desk.report_repair(
            start=self.start,
            finish=self.finish,
            description=self.description,
            contact=self.contact,
            command_id=command_id,
        )

    def summary(self) -> dict[str, Any]:
        # How to reach the resident stays with the repair, not in the audit log.
        return self.model_dump(mode="json", include={"residence_id", "start", "finish"})

    async def find(self, targets: Targets) -> Found | None:
        desk = await targets.desk(self.residence_id)
        for repair in await desk.repairs():
            if (
                repair.description == self.description
                and _same_moment(repair.start, self.start)
                and _same_moment(repair.finish, self.finish)
            ):
                return Found(repair.id or None)
        return None


class RepairCancel(ResidentWrite):
    """One repair withdrawn (Akubela deletes it)."""

    kind: Literal["akubela.repair.cancel"] = "akubela.repair.cancel"
    done_message: ClassVar[str] = N_("🗑 Repair #{short_id} is cancelled.")
    audit_action: ClassVar[str] = "repair.cancel"
    repair_id: str

    def subject(self) -> str | None:
        return f"akubela.repair:{self.repair_id}"

    def named_records(self) -> tuple[str, ...]:
        return (self.repair_id,)

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        desk = await targets.desk(self.residence_id)
        await desk.cancel_repair(self.repair_id, command_id=command_id)
        return self.repair_id

    async def find(self, targets: Targets) -> Found | None:
        desk = await targets.desk(self.residence_id)
        try:
            await desk.repair(self.repair_id)
        except NotFound:
            return Found(self.repair_id)
        return None


class RepairClear(ResidentWrite):
    """Several closed or completed repairs deleted at once (all or nothing)."""

    kind: Literal["akubela.repair.clear"] = "akubela.repair.clear"
    done_message: ClassVar[str] = N_("🧹 Closed and completed repairs cleared: {count}.")
    audit_action: ClassVar[str] = "repair.clear"
    repair_ids: list[str]

    def named_records(self) -> tuple[str, ...]:
        return tuple(self.repair_ids)

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        desk = await targets.desk(self.residence_id)
        await desk.clear_repairs(self.repair_ids, command_id=command_id)
        return None

    async def find(self, targets: Targets) -> Found | None:
        desk = await targets.desk(self.residence_id)
        left = {repair.id for repair in await desk.repairs()}
        return None if left & set(self.repair_ids) else Found(None)

    def done_values(self, record_id: str | None) -> dict[str, Any]:
        return {"count": len(self.repair_ids)}

    def audit_target(self, record_id: str | None) -> str | None:
        return ",".join(self.repair_ids)[:255]


class BookingCreate(ResidentWrite):
    """A new booking of an amenity."""

    kind: Literal["akubela.booking.create"] = "akubela.booking.create"
    done_message: ClassVar[str] = N_(
        "✅ Your booking #{short_id} went through. Send /bookings to see it."
    )
    audit_action: ClassVar[str] = "booking.create"
    amenity_id: str
    start: datetime
    duration_minutes: int

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        desk = await targets.desk(self.residence_id)
        return await desk.book(
            amenity_id=self.amenity_id,
            start=self.start,
            duration_minutes=self.duration_minutes,
            command_id=command_id,
        )

    async def find(self, targets: Targets) -> Found | None:
        desk = await targets.desk(self.residence_id)
        for booking in await desk.bookings():
            if (
                booking.amenity_id == self.amenity_id
                and _same_moment(booking.start, self.start)
                and booking.state != BookingState.CANCELLED
            ):
                return Found(booking.id or None)
        return None


class BookingByCode(ResidentWrite):
    """Joining a booking someone shared, by its code."""

    kind: Literal["akubela.booking.by_code"] = "akubela.booking.by_code"
    done_message: ClassVar[str] = N_("✅ Your booking #{short_id} with the code went through.")
    audit_action: ClassVar[str] = "booking.by_code"
    booking_code: str
    # The residence's bookings just before it was sent: the new one is the one not among them.
    known_booking_ids: list[str] | None = None

    async def prepare(self, targets: Targets) -> Self:
        if self.known_booking_ids is not None:
            return self
        desk = await targets.desk(self.residence_id)
        known = [booking.id for booking in await desk.bookings()]
        return self.model_copy(update={"known_booking_ids": known})

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        desk = await targets.desk(self.residence_id)
        return await desk.book_by_code(self.booking_code, command_id=command_id)

    async def find(self, targets: Targets) -> Found | None:
        if self.known_booking_ids is None:
            raise CannotTell("sent before the residence's bookings were read")
        desk = await targets.desk(self.residence_id)
        known = set(self.known_booking_ids)
        for booking in await desk.bookings():
            if booking.id not in known and booking.state != BookingState.CANCELLED:
                return Found(booking.id or None)
        return None

    def summary(self) -> dict[str, Any]:
        # The code lets anyone join the booking: not kept in the audit log.
        return {"residence_id": self.residence_id}


class BookingCancel(ResidentWrite):
    """One booking cancelled."""

    kind: Literal["akubela.booking.cancel"] = "akubela.booking.cancel"
    done_message: ClassVar[str] = N_("Done: the booking is cancelled.")
    audit_action: ClassVar[str] = "booking.cancel"
    booking_id: str

    def subject(self) -> str | None:
        return f"akubela.booking:{self.booking_id}"

    def named_records(self) -> tuple[str, ...]:
        return (self.booking_id,)

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        desk = await targets.desk(self.residence_id)
        await desk.cancel_booking(self.booking_id, command_id=command_id)
        return self.booking_id

    async def find(self, targets: Targets) -> Found | None:
        desk = await targets.desk(self.residence_id)
        try:
            booking = await desk.booking(self.booking_id)
        except NotFound:
            return Found(self.booking_id)
        return Found(self.booking_id) if booking.state == BookingState.CANCELLED else None


class BookingCancelMany(ResidentWrite):
    """Several bookings cancelled at once."""

    kind: Literal["akubela.booking.cancel_many"] = "akubela.booking.cancel_many"
    done_message: ClassVar[str] = N_("Done: {count} bookings are cancelled.")
    audit_action: ClassVar[str] = "booking.cancel"
    booking_ids: list[str]

    def named_records(self) -> tuple[str, ...]:
        return tuple(self.booking_ids)

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        desk = await targets.desk(self.residence_id)
        await desk.cancel_bookings(self.booking_ids, command_id=command_id)
        return None

    async def find(self, targets: Targets) -> Found | None:
        desk = await targets.desk(self.residence_id)
        holding = {
            booking.id
            for booking in await desk.bookings()
            if booking.state != BookingState.CANCELLED
        }
        return None if holding & set(self.booking_ids) else Found(None)

    def done_values(self, record_id: str | None) -> dict[str, Any]:
        return {"count": len(self.booking_ids)}

    def audit_target(self, record_id: str | None) -> str | None:
        return ",".join(self.booking_ids)[:255]


# ---- Servitly: the maintenance log ----------------------------------------------------------


class LogWrite(VendorWrite):
    """Accepted work written to the maintenance log, on one thing or location."""

    # Whose log: writes kept from before there were several communities are the first's.
    community_id: int = FIRST_COMMUNITY

    def log(self, targets: Targets) -> MaintenanceLog:
        """The maintenance log of the write's community."""
        return targets.maintenance_log_of(self.community_id)

    vendor: ClassVar[str] = "servitly"
    audit_action: ClassVar[str] = "maintenance.record"
    reference: str  # the Tuya task
    place: dict[str, str]  # {"thingId": ...} or {"locationId": ...}
    start: datetime
    end: datetime
    notes: str

    def done_values(self, record_id: str | None) -> dict[str, Any]:
        return {"task_id": self.reference}

    def audit_target(self, record_id: str | None) -> str | None:
        return self.reference

    def summary(self) -> dict[str, Any]:
        return {"task_id": self.reference, "place": self.place}


class MaintenanceRecord(LogWrite):
    """A MAINTENANCE historical event."""

    kind: Literal["servitly.event.create"] = "servitly.event.create"
    done_message: ClassVar[str] = N_(
        "The work on task {task_id} is recorded in the maintenance log."
    )

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        return await self.log(targets).record_event(
            place=self.place,
            reference=self.reference,
            start=self.start,
            end=self.end,
            notes=self.notes,
        )

    async def find(self, targets: Targets) -> Found | None:
        found = await self.log(targets).find_event(
            place=self.place, reference=self.reference, end=self.end
        )
        return None if found is None else Found(found)


class MaintenanceWorkRecord(LogWrite):
    """The same work as a (deprecated) maintenance work, for tenants that still read those."""

    kind: Literal["servitly.work.create"] = "servitly.work.create"
    done_message: ClassVar[str] = N_(
        "The work on task {task_id} is recorded in the maintenance log."
    )

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        return await self.log(targets).record_work(
            place=self.place,
            reference=self.reference,
            start=self.start,
            end=self.end,
            notes=self.notes,
        )

    async def find(self, targets: Targets) -> Found | None:
        # Servitly lists no maintenance works: a lost answer cannot be checked.
        raise CannotTell("maintenance works cannot be listed")


# ---- Tuya: the community's maintenance tasks ---------------------------------------------------


class TaskWrite(VendorWrite):
    """A write on a community's Tuya task board."""

    vendor: ClassVar[str] = "tuya"
    # Whose board: writes kept from before there were several communities are the first's.
    community_id: int = FIRST_COMMUNITY

    def board(self, targets: Targets) -> TaskBoard:
        """The task board of the write's community."""
        return targets.task_board_of(self.community_id)

    def done_values(self, record_id: str | None) -> dict[str, Any]:
        return {"task_id": record_id or ""}


class TaskCreate(TaskWrite):
    """A new maintenance task for a worker, over rooms and their devices."""

    kind: Literal["tuya.task.create"] = "tuya.task.create"
    done_message: ClassVar[str] = N_("✅ Task {task_id} is created.")
    audit_action: ClassVar[str] = "task.create"
    worker_id: str
    rooms: dict[str, list[str]]
    # The room names the worker is told, in the manager's order.
    room_names: list[str] = Field(default_factory=list)
    # The worker's tasks just before it was sent: ours is the new one over the same devices.
    known_task_ids: list[str] | None = None
    # What the worker's alert carries besides the rooms: the repair the task comes from (its
    # flat, description, visit window, contact) and the worker's Tuya username.
    facts: dict[str, str] = Field(default_factory=dict)

    async def prepare(self, targets: Targets) -> Self:
        if self.known_task_ids is not None:
            return self
        board = self.board(targets)
        workers = await board.workers()
        known = [
            task.id
            for task in await board.tasks()
            if worker_id_of(task, workers) == self.worker_id
        ]
        return self.model_copy(update={"known_task_ids": known})

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        # Tuya has no de-duplication key: `command_id` stays ours.
        return await self.board(targets).create(self.worker_id, self.rooms)

    async def find(self, targets: Targets) -> Found | None:
        if self.known_task_ids is None:
            raise CannotTell("sent before the worker's tasks were read")
        board = self.board(targets)
        known = set(self.known_task_ids)
        workers = await board.workers()
        for task in await board.tasks():
            if task.id in known or worker_id_of(task, workers) != self.worker_id:
                continue
            detail = await board.task(task.id)
            got = {r.room_id: r.device_ids for r in detail.rooms}
            if same_relations(got, self.rooms):
                return Found(task.id)
        return None

    def summary(self) -> dict[str, Any]:
        return {"worker_id": self.worker_id, "room_device_relations": self.rooms}


def same_relations(a: Mapping[str, Sequence[str]], b: Mapping[str, Sequence[str]]) -> bool:
    """Whether two tasks cover the same devices in the same rooms, whatever the order."""
    return {k: set(v) for k, v in a.items()} == {k: set(v) for k, v in b.items()}


class TaskMove(TaskWrite):
    """A manager's decision on one task."""

    task_id: str
    # Whose task it is, to tell them once the move is done (None: nobody we know).
    worker_id: str | None = None
    # The state the move puts the task in (None: it goes away).
    moves_to: ClassVar[TaskState | None]

    def subject(self) -> str | None:
        return f"tuya.task:{self.task_id}"

    def named_records(self) -> tuple[str, ...]:
        return (self.task_id,)

    def audit_target(self, record_id: str | None) -> str | None:
        return self.task_id

    async def find(self, targets: Targets) -> Found | None:
        task = await self.board(targets).task(self.task_id)
        return Found(self.task_id) if task.state is self.moves_to else None


class TaskAccept(TaskMove):
    """A finished task accepted; then its work is recorded in the maintenance log."""

    kind: Literal["tuya.task.accept"] = "tuya.task.accept"
    done_message: ClassVar[str] = N_("✅ Task {task_id} is accepted.")
    audit_action: ClassVar[str] = "task.accept"
    moves_to: ClassVar[TaskState | None] = TaskState.ACCEPTED
    # Written once the task is accepted, each a write of its own.
    then: list[MaintenanceRecord | MaintenanceWorkRecord] = Field(default_factory=list)

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        await self.board(targets).accept(self.task_id)
        return self.task_id

    def summary(self) -> dict[str, Any]:
        return {"task_id": self.task_id}


class TaskReopen(TaskMove):
    """A finished or accepted task sent back to its worker, with the manager's reason."""

    kind: Literal["tuya.task.reopen"] = "tuya.task.reopen"
    done_message: ClassVar[str] = N_("🔁 Task {task_id} is reopened.")
    audit_action: ClassVar[str] = "task.reopen"
    moves_to: ClassVar[TaskState | None] = TaskState.NEW
    reason: str

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        await self.board(targets).reopen(self.task_id)
        return self.task_id

    def summary(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "reason": self.reason}


class TaskDelete(TaskMove):
    """A task deleted."""

    kind: Literal["tuya.task.delete"] = "tuya.task.delete"
    done_message: ClassVar[str] = N_("🗑 Task {task_id} is deleted.")
    audit_action: ClassVar[str] = "task.delete"
    moves_to: ClassVar[TaskState | None] = None

    async def perform(self, targets: Targets, command_id: str) -> str | None:
        await self.board(targets).delete(self.task_id)
        return self.task_id

    async def find(self, targets: Targets) -> Found | None:
        try:
            await self.board(targets).task(self.task_id)
        except NotFound:
            return Found(self.task_id)
        return None

    def summary(self) -> dict[str, Any]:
        return {"task_id": self.task_id}


Write = Annotated[
    RepairCreate
    | RepairCancel
    | RepairClear
    | BookingCreate
    | BookingByCode
    | BookingCancel
    | BookingCancelMany
    | TaskCreate
    | TaskAccept
    | TaskReopen
    | TaskDelete
    | MaintenanceRecord
    | MaintenanceWorkRecord,
    Field(discriminator="kind"),
]
WRITE: TypeAdapter[Write] = TypeAdapter(Write)


def load_write(data: Mapping[str, Any]) -> Write:
    """A stored write read back (ValidationError for one this version cannot read)."""
    return WRITE.validate_python(data)


def dump_write(write: VendorWrite) -> dict[str, Any]:
    """A write as JSON-plain data, with its kind."""
    return write.model_dump(mode="json")


# ---- outcomes ---------------------------------------------------------------------------------


class Result(enum.StrEnum):
    """How a write ended, as the user who asked is told."""

    DONE = "done"  # at the vendor (answered, or found there after the answer was lost)
    REFUSED = "refused"  # the vendor said no, or it cannot be sent: nothing was done
    KEPT = "kept"  # the vendor did not take it now: kept, and sent (or found) later
    UNKNOWN = "unknown"  # the answer was lost and the vendor cannot show whether it happened


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one write."""

    telegram_id: int
    command_id: str
    write: Write
    result: Result
    record_id: str | None = None
    # Why it was refused or kept (None when it was not a vendor error).
    error: ApiError | None = None
    # A message id saying why, when there is no vendor error (e.g. no longer linked).
    reason: str | None = None
    # Done, and learned by looking at the vendor rather than from its answer.
    found: bool = False
    # Already settled before (the same command sent again): the user heard of it then.
    settled_before: bool = False
    # The writes that follow this one (TaskAccept.then), each with its own outcome.
    followed: list[Outcome] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the write is at the vendor."""
        return self.result is Result.DONE


class WriteJournal(Protocol):
    """Keeps every vendor write before it leaves and learns how it ended (see `bot.writes`)."""

    async def submit(
        self, telegram_id: int, write: Write, *, command_id: str, draft: str | None = None
    ) -> Outcome:
        """Records `write`, sends it, and says how it ended.

        `draft` names the user's draft the write was made from: it is handed over to the
        record in the same transaction, so after a crash the write is never offered again.
        """
        ...
