"""What the resident conversations may ask of the community platform, vendor-neutral.

The flows depend on these protocols only, so a second vendor is one more adapter in `bot`, not
a change here. Writes take a `command_id` chosen by the flow and kept with the write
(`conversations.writes`), so a write that is sent again later goes out under the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Protocol

from conversations.community import Community
from conversations.domain import Actor, Redeemed, ResidentAccount
from conversations.records import (
    Amenity,
    Booking,
    DayTimes,
    Device,
    Repair,
    Room,
    Task,
    TaskDetail,
    Worker,
)

if TYPE_CHECKING:
    # writes.py builds on the desks above, so only its journal's type is named here.
    from conversations.writes import WriteJournal


class RepairDesk(Protocol):
    """Repairs of one residence."""

    residence_id: str

    async def repairs(self) -> list[Repair]:
        """Every repair of the residence."""
        ...

    async def repair(self, repair_id: str) -> Repair:
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

    async def booking_times(self, amenity_id: str, day: date) -> DayTimes:
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
    """A write of the bot's that went through: its kind (`conversations.writes`, e.g.
    "akubela.repair.create" or "tuya.task.reopen"), who made it, the write's fields (the
    residence, a reopen's reason, ...) and the records it touched (`write.subjects`)."""

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

    async def tasks(self) -> list[Task]:
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

    async def repairs(self) -> list[Repair]:
        """Every repair of the project, from all pages, with the residence each belongs to."""
        ...

    async def download(self, url: str) -> bytes:
        """Fetches a vendor image (a repair's picture)."""
        ...


class Drafts(Protocol):
    """What a user was in the middle of, kept across restarts (one draft per user and flow)."""

    async def save(self, telegram_id: int, job: str, data: dict[str, Any]) -> None:
        """Keeps the draft, replacing the one before."""
        ...

    async def load(self, telegram_id: int, job: str) -> dict[str, Any] | None:
        """The kept draft, if any."""
        ...

    async def clear(self, telegram_id: int, job: str) -> None:
        """Forgets the draft."""
        ...


class Directory(Protocol):
    """Who people are to the community, and how a resident links their account."""

    async def actor(self, telegram_id: int) -> Actor:
        """Everything authorisation needs to know about a user (administrators included)."""
        ...

    async def telegram_ids_of_worker(self, worker_id: str) -> list[int]:
        """The Telegram users bound to a worker (none when the worker does not use the bot)."""
        ...

    async def residences_of_residents(
        self, community_id: int | None = None
    ) -> list[tuple[int, list[str]]]:
        """Every linked resident with their residences (only those in one community, when
        named)."""
        ...

    async def login_lost(self, telegram_id: int) -> bool:
        """Whether the user must sign in again: never linked, or the vendor dropped the login."""
        ...

    async def login_url(self, telegram_id: int, *, resume: str | None = None) -> str:
        """A fresh, single-use link to sign in with the vendor; `resume` names the flow to
        reopen afterwards."""
        ...

    async def resident(self, telegram_id: int) -> ResidentAccount | None:
        """The user's linked resident account, if any."""
        ...

    async def worker_name(self, telegram_id: int) -> str | None:
        """The name of the worker the user is bound to, if any."""
        ...

    async def choose_residence(self, telegram_id: int, residence_id: str) -> bool:
        """Makes one of the resident's residences the one they act for; False if not theirs."""
        ...

    async def unlink(self, telegram_id: int) -> bool:
        """Forgets the resident's account and its login; False when none was linked."""
        ...


class Invites(Protocol):
    """Invite codes that make someone a worker or a manager."""

    async def preview(self, code: str, telegram_id: int) -> Redeemed:
        """What the code would grant (VALID), without using it; or why it cannot."""
        ...

    async def redeem(self, code: str, telegram_id: int, *, display_name: str) -> Redeemed:
        """Uses the code: its role replaces the user's, and the alerts of a lost role stop."""
        ...


class People(Protocol):
    """What the bot remembers of each user for talking to them outside a conversation."""

    async def language(self, telegram_id: int) -> str | None:
        """The language kept for the user, if any."""
        ...

    async def first_contact(self, telegram_id: int, *, language: str, display_name: str) -> None:
        """Keeps a user who writes (in their language); someone who blocked the bot and writes
        again has unblocked it."""
        ...

    async def set_language(self, telegram_id: int, language: str) -> None:
        """Keeps the language the user chose."""
        ...

    async def set_time_zone(self, telegram_id: int, time_zone: str | None) -> None:
        """Keeps the user's own time zone (None: the community's)."""
        ...

    async def quiet_hours(self, telegram_id: int) -> tuple[time, time] | None:
        """The hours in which the user's alerts wait (start, end), if set."""
        ...

    async def set_quiet_hours(
        self, telegram_id: int, start: time | None, end: time | None
    ) -> None:
        """Sets the quiet hours; both None turns them off."""
        ...

    async def set_blocked(self, telegram_id: int, at: datetime | None) -> None:
        """Notes that the user blocked the bot (None: they wrote again)."""
        ...


class Audit(Protocol):
    """The record of everything done on someone's behalf."""

    async def append(
        self,
        *,
        telegram_id: int | None,
        vendor: str,
        action: str,
        target: str | None,
        request_summary: dict[str, Any],
        result: str,
        at: datetime | None = None,
    ) -> None:
        """Adds one entry; the summary must already be redacted."""
        ...


class Acknowledgement(Protocol):
    """A worker has seen a task."""

    @property
    def acknowledged_at(self) -> datetime: ...


class Acknowledgements(Protocol):
    """Which worker has seen which task."""

    async def acknowledge(
        self, task_id: str, worker_telegram_id: int, at: datetime | None = None
    ) -> bool:
        """Records it; False when the task was acknowledged before."""
        ...

    async def get_many(self, task_ids: Iterable[str]) -> Mapping[str, Acknowledgement]:
        """The acknowledgements of those tasks, by task id."""
        ...


class RepairReport(Protocol):
    """What a resident sent with a repair that the vendor cannot hold."""

    @property
    def photo_file_ids(self) -> list[Any]: ...


class RepairReports(Protocol):
    """The photos residents sent with their repairs."""

    async def get(self, maintenance_id: str, *, residence_id: str) -> RepairReport | None:
        """The report of one repair of that residence, or None."""
        ...


class Ports(Protocol):
    """Everything the conversations may reach, as `context.services`; `bot` provides it."""

    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def drafts(self) -> Drafts: ...
    @property
    def directory(self) -> Directory: ...
    @property
    def invite_desk(self) -> Invites: ...
    @property
    def people(self) -> People: ...
    @property
    def alert_switches(self) -> Mapping[str, str]:
        """The alert kinds a manager may switch off, in the order shown, with their labels."""
        ...

    @property
    def audit(self) -> Audit: ...
    @property
    def acknowledgements(self) -> Acknowledgements: ...
    @property
    def repair_reports(self) -> RepairReports: ...
    @property
    def writes(self) -> WriteJournal: ...
    @property
    def task_board(self) -> TaskBoard:
        """The first community's task board (staff views move to `task_board_of`)."""
        ...

    @property
    def maintenance_log(self) -> MaintenanceLog:
        """The first community's maintenance log (see `maintenance_log_of`)."""
        ...

    @property
    def project_desk(self) -> ProjectDesk:
        """The first community's repairs (see `project_desk_of`)."""
        ...

    def communities(self) -> list[Community]:
        """Every community of the deployment, by id (at least one)."""
        ...

    def community(self, community_id: int) -> Community:
        """One community; UnknownCommunity (conversations.community) when there is none."""
        ...

    async def community_of(self, telegram_id: int) -> Community:
        """The user's community: a resident's is the one of the residence they act for;
        anyone else's (and a resident's before choosing) is the deployment's first."""
        ...

    def task_board_of(self, community_id: int) -> TaskBoard:
        """The maintenance tasks of one community's Tuya project."""
        ...

    def project_desk_of(self, community_id: int) -> ProjectDesk:
        """All repairs of one community, through its manager's login."""
        ...

    def maintenance_log_of(self, community_id: int) -> MaintenanceLog:
        """Where one community's finished work is recorded."""
        ...

    async def resident_desk(self, telegram_id: int) -> ResidentDesk | None:
        """The resident's desk for their chosen residence; None until linked and chosen."""
        ...

    async def desk_for_residence(self, telegram_id: int, residence_id: str) -> ResidentDesk | None:
        """The resident's desk for one of their residences (None when it is not theirs)."""
        ...
