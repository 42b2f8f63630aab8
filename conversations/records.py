"""The community's things as the flows see them: repairs, bookings, amenities, a day's booking
times, maintenance tasks, workers, rooms and devices, in one vocabulary of states.

`bot` maps each vendor's models to these (`bot.desks`, `bot.taskboard`), so a second vendor is
one more mapping there and nothing here changes. Only what the flows use is kept. A state the
community does not know (a vendor may send any word) is `None`, and `state_text` keeps the
vendor's own word so it can still be shown as it came.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum


class RepairState(StrEnum):
    """Where a repair stands."""

    WAITING = "waiting"  # reported, the office has not confirmed it yet
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # the technician is done
    CLOSED = "closed"  # the office closed it


class BookingState(StrEnum):
    """Where a booking stands."""

    PENDING = "pending"  # waits for the office's approval
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class TaskState(StrEnum):
    """Where a maintenance task stands."""

    NEW = "new"  # given to a worker, not started
    IN_PROGRESS = "in_progress"
    AWAITING_ACCEPTANCE = "awaiting_acceptance"  # the worker is done, not yet accepted
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class Repair:
    """A repair request; the manager's view also names the residence it belongs to."""

    id: str
    state: RepairState | None = None
    state_text: str = ""
    description: str = ""
    contact: str = ""
    start: datetime | None = None  # the window a technician may come
    finish: datetime | None = None
    created: datetime | None = None
    feedback: str = ""
    picture_urls: tuple[str, ...] = ()
    residence_id: str = ""
    family_name: str = ""
    building_name: str = ""


@dataclass(frozen=True, slots=True)
class Amenity:
    """A bookable shared facility."""

    id: str
    name: str = ""
    description: str = ""
    picture_url: str = ""


@dataclass(frozen=True, slots=True)
class Booking:
    """An amenity booking."""

    id: str
    state: BookingState | None = None
    state_text: str = ""
    amenity_id: str = ""
    amenity_name: str = ""
    start: datetime | None = None
    finish: datetime | None = None
    created: datetime | None = None
    expired: bool = False
    pin_code: str = ""
    qr_code_url: str = ""
    family_name: str = ""
    building_name: str = ""


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """An interval of one day as bare UTC times of day (the finish may be past midnight)."""

    start: time
    finish: time


@dataclass(frozen=True, slots=True)
class DayTimes:
    """One date of an amenity: its opening window (None: closed) and the taken intervals."""

    opening: TimeSpan | None = None
    taken: tuple[TimeSpan, ...] = ()


@dataclass(frozen=True, slots=True)
class Task:
    """A maintenance task as the task list shows it."""

    id: str
    state: TaskState | None = None
    state_text: str = ""
    worker_username: str = ""
    worker_nickname: str = ""
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskRoom:
    """One room of a task and the devices in it to look at."""

    room_id: str
    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskDetail(Task):
    """A task with the rooms and devices it covers."""

    rooms: tuple[TaskRoom, ...] = ()


@dataclass(frozen=True, slots=True)
class Worker:
    """Someone a task can be given to."""

    id: str
    username: str = ""
    nickname: str = ""


@dataclass(frozen=True, slots=True)
class Room:
    """A room (a flat or a common area) of the project."""

    id: str
    name: str = ""
    number: str = ""


@dataclass(frozen=True, slots=True)
class Device:
    """A device in a room."""

    id: str
    name: str = ""
