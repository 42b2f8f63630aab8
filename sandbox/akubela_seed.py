"""The Akubela sandbox's records and its deterministic demo community.

Ids are stable across resets; times are laid out around the clock's "now" at reset so the
demo always has repairs of every age and bookings both past and upcoming.

The ids of the vendor documents' request examples are part of the seed, so each example is
accepted exactly as written: the residence `r31adc...` (Frank Zhou's home) with the repairs
`m31adc...` and `m8b5a73f...` and the bookings `b31adc...` and `b8b5a73f...`, the amenity
`afa332e...` (the gym) and the booking code `bfa332e...` (Alice's gym booking).

Each amenity books by its own rules (`BookingRules`), as the community sets them: the gym takes
any start and any whole number of minutes from 30 to 120 (the documents' own example books it
for 80 minutes from 13:14:15), the meeting room a 30-minute grid, the BBQ terrace an hour grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.akubela_models import BookingState, MaintenanceState

WEEKDAYS = range(7)  # Monday is 0, as `date.weekday()` counts


@dataclass(slots=True)
class Residence:
    """One flat of the community."""

    residence_id: str
    family_name: str
    building_name: str
    room_name: str
    project_id: str


@dataclass(slots=True)
class Resident:
    """A resident account that signs in on the login page."""

    account_id: str
    email: str
    password: str
    name: str
    phone: str
    residence_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BookingRules:
    """How one amenity may be booked: data of the community, not of the sandbox's code."""

    # Starts lie on this grid from opening time and lengths are multiples of it; None takes
    # any start (to the second) and any whole number of minutes.
    grid_minutes: int | None
    min_minutes: int
    max_minutes: int
    horizon_days: int  # the last bookable local date, counted from today (today is 0)


@dataclass(slots=True)
class Amenity:
    """A bookable facility; hours and blocks are in the community's local time."""

    amenity_id: str
    key: str
    name: str
    description: str
    hours: dict[int, tuple[time, time]]  # weekday -> (open, close); a missing day is closed
    rules: BookingRules
    auto_approve: bool
    blocks: tuple[tuple[time, time], ...] = ()  # daily closures (cleaning, maintenance)
    project_id: str = ""  # the project whose residents may book it ("" : the first project)


@dataclass(slots=True)
class Repair:
    """A repair request."""

    maintenance_id: str
    residence_id: str
    start_time: datetime
    finish_time: datetime
    description: str
    contact: str
    filenames: list[str]
    state: str
    created_time: datetime
    feedback: str = ""


@dataclass(slots=True)
class BookingRecord:
    """A booking; `group` ties bookings made with another booking's code to that booking."""

    booking_id: str
    amenity_id: str
    residence_id: str
    start_time: datetime
    finish_time: datetime
    state: str
    pin_code: str
    booking_code: str
    created_time: datetime
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            self.group = self.booking_id

    @property
    def holds_slot(self) -> bool:
        """Whether this booking keeps others out of its time."""
        return self.state in (BookingState.PENDING, BookingState.SUCCESS)


@dataclass(slots=True)
class Seed:
    """Everything the sandbox starts from."""

    residences: dict[str, Residence]
    residents: dict[str, Resident]
    amenities: dict[str, Amenity]
    repairs: dict[str, Repair] = field(default_factory=dict)
    bookings: dict[str, BookingRecord] = field(default_factory=dict)


GYM = "afa332e258aae1badbb27d31128f442dc"  # the documents' example amenity
# The documents' example records (see the module docstring).
DOC_RESIDENCE = "r31adc223cc4b3bedb6bd4742dedcfa52"
DOC_REPAIR = "m31adc223cc4b3bedb6bd4742dedcfa52"
DOC_REPAIR_TO_DELETE = "m8b5a73f8dd84abaa94dcs248be49b0d1"
DOC_BOOKING = "b31adc223cc4b3bedb6bd4742dedcfa52"
DOC_BOOKING_TO_DELETE = "b8b5a73f8dd84abaa94dcs248be49b0d1"
DOC_BOOKING_CODE = "bfa332e258aae1badbb27d31128f442dc"
MEETING_ROOM = "a7c1e0f2b9d84c3e8f61d2a4b5c6e7f02"
BBQ = "a7c1e0f2b9d84c3e8f61d2a4b5c6e7f03"


@dataclass(frozen=True, slots=True)
class Project:
    """A community the sandbox serves beside the first: its zone and its manager's login."""

    project_id: str
    zone: str
    manager_username: str
    manager_password: str


# The second demo community, in another time zone: a Singapore condominium.
MARINA = Project(
    project_id="p-demo-marina-bay",
    zone="Asia/Singapore",
    manager_username="manager@marina.demo",
    manager_password="marina-manager-password",  # noqa: S106 - the demo's public login
)
POOL = "a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b01"  # Marina Bay's pool: a 60-minute grid
TENNIS = "a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b02"  # Marina Bay's tennis court: a 30-minute grid
MARINA_HOME = "r7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c0"  # + 1, 2: the Tan and Kumar flats


def _marina(now: datetime) -> Seed:
    """Marina Bay: its flats, residents, amenities and one repair, in Singapore time."""
    home = MARINA_HOME
    residences = {
        f"{home}1": Residence(
            f"{home}1", "Tan Home / 陈家", "Tower 1 / 1座", "#12-01", MARINA.project_id
        ),
        f"{home}2": Residence(
            f"{home}2", "Kumar Home / 库马尔家", "Tower 2 / 2座", "#08-04", MARINA.project_id
        ),
    }
    residents = {
        person.account_id: person
        for person in (
            Resident(
                "u5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c01",
                "grace@marina.demo",
                "grace-demo-pass",
                "Grace Tan",
                "+65 9000 0001",
                (f"{home}1",),
            ),
            Resident(
                "u5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c02",
                "hari@marina.demo",
                "hari-demo-pass",
                "Hari Kumar",
                "+65 9000 0002",
                (f"{home}2",),
            ),
        )
    }
    every_day = dict.fromkeys(WEEKDAYS, (time(7, 0), time(21, 0)))
    amenities = {
        POOL: Amenity(
            POOL,
            "pool",
            "Pool / 游泳池",
            "A 25-metre lap pool on the fifth floor. 五楼25米泳池。",
            every_day,
            BookingRules(grid_minutes=60, min_minutes=60, max_minutes=120, horizon_days=14),
            auto_approve=True,
            project_id=MARINA.project_id,
        ),
        TENNIS: Amenity(
            TENNIS,
            "tennis",
            "Tennis court / 网球场",
            "One hard court with lights. 一块带灯光的硬地球场。",
            every_day,
            BookingRules(grid_minutes=30, min_minutes=30, max_minutes=120, horizon_days=14),
            auto_approve=True,
            project_id=MARINA.project_id,
        ),
    }
    created = now.astimezone(UTC).replace(microsecond=0) - timedelta(days=1)
    zone = ZoneInfo(MARINA.zone)
    visit = datetime.combine(
        (created + timedelta(days=2)).astimezone(zone).date(), time(10), tzinfo=zone
    ).astimezone(UTC)
    repairs = {
        "m7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c01": Repair(
            maintenance_id="m7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c01",
            residence_id=f"{home}2",
            start_time=visit,
            finish_time=visit + timedelta(hours=2),
            description="Aircon drips onto the floor. 空调滴水。",
            contact="+65 9000 0002",
            filenames=[],
            state=MaintenanceState.WAIT_FOR_CONFIRMATION.value,
            created_time=created,
        )
    }
    return Seed(residences, residents, amenities, repairs)


def _residences(project_id: str) -> dict[str, Residence]:
    rows = [
        ("r3f9a1c2d4e5b6a7980c1d2e3f4a5b601", "Chen Home / 陈家", "Building A / A栋", "1201"),
        (
            "r3f9a1c2d4e5b6a7980c1d2e3f4a5b602",
            "Chen Studio / 陈工作室",
            "Building B / B栋",
            "0302",
        ),
        ("r3f9a1c2d4e5b6a7980c1d2e3f4a5b603", "Wang Home / 王家", "Building A / A栋", "0801"),
        ("r3f9a1c2d4e5b6a7980c1d2e3f4a5b604", "Li Home / 李家", "Building B / B栋", "1502"),
        ("r3f9a1c2d4e5b6a7980c1d2e3f4a5b605", "Zhang Home / 张家", "Building A / A栋", "0303"),
        ("r3f9a1c2d4e5b6a7980c1d2e3f4a5b606", "Liu Home / 刘家", "Building B / B栋", "0701"),
        ("r3f9a1c2d4e5b6a7980c1d2e3f4a5b607", "Zhao Home / 赵家", "Building A / A栋", "1502"),
        (DOC_RESIDENCE, "Zhou Home / 周家", "Building B / B栋", "0501"),
    ]
    return {
        rid: Residence(rid, family, building, room, project_id)
        for rid, family, building, room in rows
    }


def _residents() -> dict[str, Resident]:
    r = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b60"
    people = [
        Resident(
            "u8d2b4f6a1c3e5d7f9b0a2c4e6f8a1b01",
            "alice@demo.community",
            "alice-demo-pass",
            "Alice Chen",
            "+86 138 0000 0001",
            (f"{r}1", f"{r}2"),
        ),
        Resident(
            "u8d2b4f6a1c3e5d7f9b0a2c4e6f8a1b02",
            "bob@demo.community",
            "bob-demo-pass",
            "Bob Wang",
            "+86 138 0000 0002",
            (f"{r}3",),
        ),
        Resident(
            "u8d2b4f6a1c3e5d7f9b0a2c4e6f8a1b03",
            "carol@demo.community",
            "carol-demo-pass",
            "李卡罗 Carol Li",
            "+86 138 0000 0003",
            (f"{r}4",),
        ),
        Resident(
            "u8d2b4f6a1c3e5d7f9b0a2c4e6f8a1b04",
            "dave@demo.community",
            "dave-demo-pass",
            "Dave Zhang",
            "+86 138 0000 0004",
            (f"{r}5",),
        ),
        Resident(
            "u8d2b4f6a1c3e5d7f9b0a2c4e6f8a1b05",
            "erin@demo.community",
            "erin-demo-pass",
            "Erin Liu",
            "+86 138 0000 0005",
            (f"{r}6",),
        ),
        Resident(
            "u8d2b4f6a1c3e5d7f9b0a2c4e6f8a1b06",
            "frank@demo.community",
            "frank-demo-pass",
            "Frank Zhou",
            "+86 138 0000 0006",
            (DOC_RESIDENCE,),
        ),
    ]
    return {person.account_id: person for person in people}


def _amenities() -> dict[str, Amenity]:
    every_day = dict.fromkeys(WEEKDAYS, (time(6, 0), time(23, 0)))
    office = {day: (time(9, 0), time(18, 0)) for day in range(5)} | {5: (time(10, 0), time(16, 0))}
    evenings = dict.fromkeys(WEEKDAYS, (time(17, 0), time(20, 0)))
    items = [
        Amenity(
            GYM,
            "gym",
            "Gym / 健身房",
            "Treadmills, weights and a yoga corner. 跑步机、器械和瑜伽区。",
            every_day,
            BookingRules(grid_minutes=None, min_minutes=30, max_minutes=120, horizon_days=30),
            auto_approve=True,
            blocks=((time(12, 0), time(13, 0)),),
        ),
        Amenity(
            MEETING_ROOM,
            "meeting_room",
            "Meeting room / 会议室",
            "Twelve seats and a screen; the office approves each booking. 需物业审批。",
            office,
            BookingRules(grid_minutes=30, min_minutes=30, max_minutes=180, horizon_days=30),
            auto_approve=False,
        ),
        Amenity(
            BBQ,
            "bbq",
            "BBQ terrace / 烧烤露台",
            "Roof terrace with two grills, evenings only. 仅限傍晚开放。",
            evenings,
            BookingRules(grid_minutes=60, min_minutes=60, max_minutes=120, horizon_days=14),
            auto_approve=True,
        ),
    ]
    return {item.amenity_id: item for item in items}


def build_seed(project_id: str, now: datetime, zone: ZoneInfo) -> Seed:
    """The demo community, with times laid out around `now`."""
    seed = Seed(_residences(project_id), _residents(), _amenities())
    for amenity in seed.amenities.values():
        amenity.project_id = project_id
    r = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b60"
    now = now.astimezone(UTC).replace(microsecond=0)
    today = now.astimezone(zone).date()

    def at(day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)

    repairs = [
        (
            "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c01",
            f"{r}1",
            1,
            "Kitchen tap drips all night.",
            MaintenanceState.WAIT_FOR_CONFIRMATION,
            "",
        ),
        (
            "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c02",
            f"{r}1",
            3,
            "Bathroom light flickers. 灯闪烁。",
            MaintenanceState.IN_PROGRESS,
            "",
        ),
        (
            "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c03",
            f"{r}3",
            8,
            "Front door lock is stiff.",
            MaintenanceState.COMPLETED,
            "Lock cleaned and oiled. 门锁已清洁上油。",
        ),
        (
            "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c04",
            f"{r}4",
            12,
            "Balcony drain blocked. 阳台地漏堵塞。",
            MaintenanceState.CLOSED,
            "Could not reproduce; closed after a call. 电话确认后关闭。",
        ),
        (
            "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c05",
            f"{r}5",
            2,
            "Air conditioner makes a noise.",
            MaintenanceState.WAIT_FOR_CONFIRMATION,
            "",
        ),
        (
            "m5e0d1c2b3a4f5e6d7c8b9a0f1e2d3c06",
            f"{r}2",
            5,
            "Window seal leaks when it rains.",
            MaintenanceState.IN_PROGRESS,
            "",
        ),
        # The documents' examples, old and settled so the demo's alerts leave them alone.
        (
            DOC_REPAIR,
            DOC_RESIDENCE,
            20,
            "Hallway light switch sparks. 走廊开关打火。",
            MaintenanceState.COMPLETED,
            "Switch replaced. 已更换开关。",
        ),
        (
            DOC_REPAIR_TO_DELETE,
            DOC_RESIDENCE,
            25,
            "Bathroom fan is loud.",
            MaintenanceState.CLOSED,
            "Cleaned; no fault found. 已清洁，未发现故障。",
        ),
    ]
    for number, (mid, rid, days_ago, text, state, feedback) in enumerate(repairs):
        created = now - timedelta(days=days_ago, hours=number)
        visit_day = (created + timedelta(days=1)).astimezone(zone).date()
        seed.repairs[mid] = Repair(
            maintenance_id=mid,
            residence_id=rid,
            start_time=at(visit_day, 9),
            finish_time=at(visit_day, 12),
            description=text,
            contact=f"+86 138 0000 000{number + 1}",
            filenames=["leak.jpg"] if number == 0 else [],
            state=state.value,
            created_time=created,
            feedback=feedback,
        )

    bookings = [
        # id, amenity, residence, day offset, local start hour, minutes, state
        ("b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01", GYM, f"{r}1", 1, 7, 60, BookingState.SUCCESS),
        (
            "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02",
            MEETING_ROOM,
            f"{r}3",
            2,
            10,
            90,
            BookingState.PENDING,
        ),
        ("b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e03", BBQ, f"{r}4", -1, 18, 120, BookingState.SUCCESS),
        ("b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e04", GYM, f"{r}5", 1, 18, 60, BookingState.CANCELED),
        (
            "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e05",
            MEETING_ROOM,
            f"{r}5",
            3,
            14,
            60,
            BookingState.REJECTED,
        ),
        ("b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e06", BBQ, f"{r}1", 2, 17, 60, BookingState.SUCCESS),
        (DOC_BOOKING, MEETING_ROOM, DOC_RESIDENCE, 4, 15, 60, BookingState.REJECTED),
        (DOC_BOOKING_TO_DELETE, GYM, DOC_RESIDENCE, 5, 19, 60, BookingState.CANCELED),
    ]
    for number, (bid, amenity_id, rid, offset, hour, minutes, status) in enumerate(bookings):
        day = today + timedelta(days=offset)
        if amenity_id == MEETING_ROOM:
            # The meeting room is closed on Sundays: keep the seed inside opening hours.
            while day.weekday() == 6:
                day += timedelta(days=1)
        start = at(day, hour)
        seed.bookings[bid] = BookingRecord(
            booking_id=bid,
            amenity_id=amenity_id,
            residence_id=rid,
            start_time=start,
            finish_time=start + timedelta(minutes=minutes),
            state=status.value,
            pin_code=str((482913 + number * 111111) % 900000 + 100000),
            booking_code=DOC_BOOKING_CODE if number == 0 else f"k{bid[1:]}",
            created_time=now - timedelta(days=3, hours=number),
        )
    # The second community comes after the first, so the first's people keep their order.
    marina = _marina(now)
    seed.residences |= marina.residences
    seed.residents |= marina.residents
    seed.amenities |= marina.amenities
    seed.repairs |= marina.repairs
    return seed
