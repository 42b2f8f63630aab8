"""What the resident conversations may ask of the community platform, vendor-neutral.

The flows depend on these protocols only, so a second vendor is one more adapter in `bot`, not
a change here. Writes take a `command_id` chosen by the flow and kept with the write
(`conversations.writes`), so a write that is sent again later goes out under the same id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from api.akubela_models import (
    Amenity,
    Booking,
    BookingTimeList,
    Maintenance,
    ManagerMaintenance,
)
from api.tuya_models import Device, Room, TaskDetail, TaskSummary, Worker


class RepairDesk(Protocol):
    """Repairs of one residence."""

    residence_id: str

    async def repairs(self) -> list[Maintenance]:
        """Every repair of the residence."""
        ...

    async def repair(self, repair_id: str) -> Maintenance:
        """One repair (NotFound when it is gone)."""
        ...

    async def report_repair(
        self,
        *,
        start: datetime,
        finish: datetime,
        description: str,
        contact: str,
        command_id: str,
    ) -> str | None:
        """Creates a repair; its id, when the vendor gives one."""
        ...

    async def cancel_repair(self, repair_id: str, *, command_id: str) -> None:
        """Deletes one repair."""
        ...

    async def clear_repairs(self, repair_ids: Sequence[str], *, command_id: str) -> None:
        """Deletes several repairs at once."""
        ...


class BookingDesk(Protocol):
    """Amenity bookings of one residence."""

    residence_id: str

    async def amenities(self) -> list[Amenity]:
        """The amenities the residence may book."""
        ...

    async def booking_times(self, amenity_id: str, day: date) -> BookingTimeList:
        """The opening window and the taken intervals of one date."""
        ...

    async def bookings(self) -> list[Booking]:
        """Every booking of the residence."""
        ...

    async def booking(self, booking_id: str) -> Booking:
        """One booking (NotFound when it is gone)."""
        ...

    async def book(
        self, *, amenity_id: str, start: datetime, duration_minutes: int, command_id: str
    ) -> str | None:
        """Creates a booking; its id, when the vendor gives one."""
        ...

    async def book_by_code(self, booking_code: str, *, command_id: str) -> str | None:
        """Books with a code someone shared; the new booking's id when given."""
        ...

    async def cancel_booking(self, booking_id: str, *, command_id: str) -> None:
        """Cancels one booking."""
        ...

    async def cancel_bookings(self, booking_ids: Sequence[str], *, command_id: str) -> None:
        """Cancels several bookings at once."""
        ...

    async def download(self, url: str) -> bytes:
        """Fetches a vendor image (an amenity picture, a booking's QR code)."""
        ...


class ResidentDesk(RepairDesk, BookingDesk, Protocol):
    """Everything a linked resident can do, for their chosen residence."""


@dataclass(frozen=True, slots=True)
class OwnWrite:
    """A write of the bot's that went through: the operation (the outbox's names, e.g.
    "akubela.repair.create", or "tuya.task.reopen"), who made it, its payload as the outbox
    keeps it (the residence, a reopen's reason, ...) and the records it touched."""

    operation: str
    telegram_id: int
    record_ids: tuple[str, ...]
    payload: Mapping[str, Any] = field(default_factory=dict)


class Announcer(Protocol):
    """Tells the people a write of the bot's concerns at once (never the one who made it)."""

    async def announce(self, application: Any, write: OwnWrite) -> int:
        """Records and sends what follows from the write; how many alerts that made."""
        ...


class TaskBoard(Protocol):
    """The maintenance tasks of one project, and what a task is built from."""

    project_id: str

    async def tasks(self) -> list[TaskSummary]:
        """Every task of the project, from all pages."""
        ...

    async def task(self, task_id: str) -> TaskDetail:
        """One task with its rooms and devices (NotFound when it is gone)."""
        ...

    async def workers(self) -> list[Worker]:
        """The workers a task can be given to."""
        ...

    async def rooms(self) -> list[Room]:
        """The rooms of the project (names may be a few minutes old)."""
        ...

    async def devices(self, room_id: str) -> list[Device]:
        """The devices in one room (names may be a few minutes old)."""
        ...

    async def create(self, worker_id: str, rooms: Mapping[str, Sequence[str]]) -> str:
        """Creates a task for a worker ({room id: device ids}); never retried, returns its id."""
        ...

    async def accept(self, task_id: str) -> None:
        """Accepts a finished task (InvalidRequest when it is not awaiting acceptance)."""
        ...

    async def reopen(self, task_id: str) -> None:
        """Sends a finished or accepted task back to its worker."""
        ...

    async def delete(self, task_id: str) -> None:
        """Deletes a task."""
        ...


class MaintenanceLog(Protocol):
    """Where finished and accepted maintenance work is recorded."""

    deprecated_works: bool  # whether each record is also written as a (deprecated) work

    def places(self, room_ids: Sequence[str]) -> list[dict[str, str]]:
        """The distinct places in the log ({"thingId"} or {"locationId"}) the rooms map to."""
        ...

    def covers(self, room_ids: Sequence[str]) -> bool:
        """Whether at least one of these rooms is mapped to a place in the log."""
        ...

    async def record_event(
        self,
        *,
        place: Mapping[str, str],
        reference: str,
        start: datetime,
        end: datetime,
        notes: str,
    ) -> str:
        """Records the work (`reference`: the task) on one place; the new record's id."""
        ...

    async def find_event(
        self, *, place: Mapping[str, str], reference: str, end: datetime
    ) -> str | None:
        """The id of the record of that work on that place ending at `end`, if it is there."""
        ...

    async def record_work(
        self,
        *,
        place: Mapping[str, str],
        reference: str,
        start: datetime,
        end: datetime,
        notes: str,
    ) -> str | None:
        """The same work as a deprecated maintenance work; its id when Servitly gives one."""
        ...


class ProjectDesk(Protocol):
    """The whole community's repairs, as the property manager's account sees them."""

    project_id: str

    async def repairs(self) -> list[ManagerMaintenance]:
        """Every repair of the project, from all pages, with the residence each belongs to."""
        ...

    async def download(self, url: str) -> bytes:
        """Fetches a vendor image (a repair's picture)."""
        ...
