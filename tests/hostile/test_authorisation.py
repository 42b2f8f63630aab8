"""The authorisation matrix through the real app: every command and button, every role, own and
others' records; and across communities, every role of one community pressing the other's.

The pure rules are tested in tests/conversations/test_roles.py; this test checks that every
way in (a command, a menu button, a forged press with someone else's id) reaches them. Each
attempt is played as that user would (open the list, press, confirm); a forbidden one must
change nothing at the vendors nor in the bot and show nothing of the record, an allowed one
must do what it says. The policy below is written out on its own, not read from
`conversations.roles`, so a wrong rule there fails here too.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette

from conversations import callbacks
from conversations.alert_settings import SWITCHED_OFF_KEY
from conversations.domain import Role
from conversations.my_repairs import key_of
from conversations.records import BookingState
from conversations.roles import Action
from sandbox.akubela_seed import GYM
from sandbox.tuya import LI_WEI, MARINA_DEVICES, TOM
from tests.conversations.test_staff_communities import (
    BOB,
    GARDEN_MANAGER,
    GRACE,
    MARINA_MANAGER,
    MARINA_ROOM,
    TOM_TG,
    join,
    staff,
)
from tests.hostile.community import (
    ADMIN,
    MANAGER,
    OTHER_RESIDENT,
    OTHER_WORKER,
    RESIDENT,
    UNLINKED,
    WORKER,
    Community,
    vendor_state,
)
from tests.support_bot import (
    BotUnderTest,
    keep_demo_communities,
    link_demo_resident,
    running_bot,
)

TASK = "11123823965053000{:02d}".format  # the Tuya sandbox's seed tasks 1..8
PEOPLE: Final = {
    "unlinked": UNLINKED,
    "resident": RESIDENT,
    "other-resident": OTHER_RESIDENT,
    "worker": WORKER,
    "other-worker": OTHER_WORKER,
    "manager": MANAGER,
    "admin": ADMIN,
}
# Side A belongs to the resident and the worker, side B to the other resident and worker.
OWNERS: Final = {"A": {RESIDENT, WORKER}, "B": {OTHER_RESIDENT, OTHER_WORKER}}
RESIDENTS: Final = {RESIDENT, OTHER_RESIDENT}
WORKERS: Final = {WORKER, OTHER_WORKER}
STAFF: Final = {MANAGER, ADMIN}

EVERYONE_ACTIONS: Final = {Action.HELP, Action.WHOAMI, Action.LANGUAGE, Action.ACCOUNT_LINK}
RESIDENT_ACTIONS: Final = {
    Action.ACCOUNT_UNLINK,
    Action.RESIDENCE_SWITCH,
    Action.REPAIR_CREATE,
    Action.REPAIR_VIEW,
    Action.REPAIR_CANCEL,
    Action.REPAIR_CLEAR,
    Action.BOOKING_CREATE,
    Action.BOOKING_VIEW,
    Action.BOOKING_CANCEL,
    Action.BOOKING_BY_CODE,
}


def may(user: int, action: Action, side: str | None) -> bool:
    """The community's policy: who may do what, on whose records."""
    own = side is None or user in OWNERS[side]
    if action in EVERYONE_ACTIONS:
        return True
    if action in RESIDENT_ACTIONS:
        return user in RESIDENTS and own
    if action is Action.TASK_VIEW:
        return user in STAFF or (user in WORKERS and own)
    if action is Action.TASK_ACKNOWLEDGE:
        return user in WORKERS and own
    return user in STAFF


# ---- what an attempt left behind ---------------------------------------------------------


@dataclass
class Before:
    """The world before an attempt, to tell what it changed."""

    calls: int
    vendors: dict[str, Any]
    audit: int
    residence: str | None
    alerts_off: Any


Effect = Callable[[Community, int, Before, str], Awaitable[bool]]


def entered(job: str) -> Effect:
    """The user is now in `job`'s conversation."""

    async def check(c: Community, user: int, before: Before, record: str) -> bool:
        return c.state(user, job) is not None

    return check


def shown(marker: str) -> Effect:
    """A reply since the attempt shows `marker` (with `{id}` the record, `{short}` the short
    id people see) in text or buttons."""

    async def check(c: Community, user: int, before: Before, record: str) -> bool:
        wanted = marker.format(id=record, short=record[-6:])
        for call in c.calls[before.calls :]:
            if wanted in (call.text or "") or wanted in str(call.params.get("reply_markup")):
                return True
        return False

    return check


async def vendor_changed(c: Community, user: int, before: Before, record: str) -> bool:
    """A vendor record was written."""
    return c.vendor_state() != before.vendors


async def audited(c: Community, user: int, before: Before, record: str) -> bool:
    """The bot recorded an action in its audit log (an acknowledgement)."""
    return await _audit_count(c) != before.audit


async def residence_switched(c: Community, user: int, before: Before, record: str) -> bool:
    """The user's chosen residence changed."""
    return await _residence(c, user) != before.residence


async def alerts_switched(c: Community, user: int, before: Before, record: str) -> bool:
    """The user's alert switches changed."""
    return bool(_alerts_off(c, user) != before.alerts_off)


async def unlinked(c: Community, user: int, before: Before, record: str) -> bool:
    """The user's Akubela link is gone."""
    gone = await c.bot.services.accounts.resident(user) is None
    return before.residence is not None and gone


async def any_reply(c: Community, user: int, before: Before, record: str) -> bool:
    """The bot answered."""
    return len(c.calls) > before.calls


async def _audit_count(c: Community) -> int:
    from sqlalchemy import func, select

    from bot.storage.models import AuditEntry

    async with c.bot.services.storage.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


async def _residence(c: Community, user: int) -> str | None:
    link = await c.bot.services.accounts.resident(user)
    return link.residence_id if link is not None else None


def _alerts_off(c: Community, user: int) -> Any:
    return copy.deepcopy(c.bot.app.user_data.get(user, {}).get(SWITCHED_OFF_KEY))


# ---- the attempts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One way in to one action: what the user sends (`{id}`: the record), what it does."""

    name: str
    action: Action
    steps: tuple[str, ...]  # "/text" is typed, "1:..." is pressed
    effect: Effect
    record: str | None = None  # which kind of record `{id}` is; None: no record

    def sides(self) -> list[str | None]:
        """Own and others' records, or just the action when it names none."""
        return ["A", "B"] if self.record is not None else [None]


def _command(command: str, action: Action, effect: Effect) -> list[Attempt]:
    """A command, and the menu button that starts the same flow when there is one."""
    found = [Attempt(command, action, (command,), effect)]
    menu = {
        "/repair": "repair",
        "/repairs": "repairs",
        "/book": "book",
        "/bookings": "bookings",
        "/tasks": "tasks",
        "/assign": "assign",
        "/repairs_all": "repairs_all",
        "/bookings_pending": "bookings_pending",
    }.get(command)
    if menu is not None:
        found.append(Attempt(f"menu {menu}", action, (f"1:menu:{menu}",), effect))
    return found


ATTEMPTS: Final[list[Attempt]] = [
    *_command("/start", Action.HELP, any_reply),
    *_command("/help", Action.HELP, any_reply),
    *_command("/whoami", Action.WHOAMI, any_reply),
    *_command("/language", Action.LANGUAGE, any_reply),
    *_command("/timezone", Action.LANGUAGE, any_reply),
    *_command("/residence", Action.RESIDENCE_SWITCH, shown("1:acct:res:")),
    *_command("/repair", Action.REPAIR_CREATE, entered("repair")),
    *_command("/repairs", Action.REPAIR_VIEW, entered("repairs")),
    *_command("/book", Action.BOOKING_CREATE, entered("book")),
    *_command("/bookings", Action.BOOKING_VIEW, entered("bookings")),
    *_command("/code", Action.BOOKING_BY_CODE, entered("bookings")),
    *_command("/tasks", Action.TASK_VIEW, entered("tasks")),
    *_command("/assign", Action.TASK_ASSIGN, entered("assign")),
    *_command("/repairs_all", Action.REPAIRS_VIEW_ALL, entered("repairs_all")),
    *_command("/bookings_pending", Action.BOOKINGS_VIEW_PENDING, entered("bookings_pending")),
    *_command("/alerts", Action.ALERTS_CONFIGURE, shown("1:alerts:toggle:")),
    Attempt(
        "alert switch", Action.ALERTS_CONFIGURE, ("1:alerts:toggle:repair_new",), alerts_switched
    ),
    Attempt(
        "open a repair",
        Action.REPAIR_VIEW,
        ("/repairs", "1:repairs:open:{id}"),
        shown("Repair #{short} — "),
        "repair",
    ),
    Attempt(
        "cancel a repair",
        Action.REPAIR_CANCEL,
        ("/repairs", "1:repairs:drop:{id}", "1:repairs:yes"),
        vendor_changed,
        "repair",
    ),
    Attempt(
        "open a booking",
        Action.BOOKING_VIEW,
        ("/bookings", "1:bookings:open:{id}"),
        shown("1:bookings:drop:{id}"),
        "booking",
    ),
    Attempt(
        "cancel a booking",
        Action.BOOKING_CANCEL,
        ("/bookings", "1:bookings:drop:{id}", "1:bookings:yes"),
        vendor_changed,
        "booking",
    ),
    Attempt(
        "cancel several bookings",
        Action.BOOKING_CANCEL,
        (
            "/bookings",
            "1:bookings:select",
            "1:bookings:tog:{id}",
            "1:bookings:sel_done",
            "1:bookings:yes",
        ),
        vendor_changed,
        "booking",
    ),
    Attempt(
        "switch residence",
        Action.RESIDENCE_SWITCH,
        ("1:acct:res:{id}",),
        shown("Done: you are now using"),
        "residence",
    ),
    Attempt(
        "open a task",
        Action.TASK_VIEW,
        ("/tasks", "1:tasks:open:{id}"),
        shown("Task {id}"),
        "task_new",
    ),
    Attempt(
        "open a task from an alert",
        Action.TASK_VIEW,
        ("1:tasks:open:{id}",),
        shown("Task {id}"),
        "task_new",
    ),
    Attempt(
        "acknowledge a task",
        Action.TASK_ACKNOWLEDGE,
        ("/tasks", "1:tasks:ack:{id}"),
        audited,
        "task_new",
    ),
    Attempt(
        "accept a task",
        Action.TASK_ACCEPT,
        ("1:tasks:accept:{id}",),
        vendor_changed,
        "task_waiting",
    ),
    Attempt(
        "reopen a task",
        Action.TASK_REOPEN,
        ("1:tasks:reopen:{id}", "The valve still drips after the repair."),
        vendor_changed,
        "task_waiting",
    ),
    Attempt(
        "delete a task",
        Action.TASK_DELETE,
        ("/tasks", "1:tasks:del:{id}", "1:tasks:delyes"),
        vendor_changed,
        "task_done",
    ),
    Attempt(
        "assign a task",
        Action.TASK_ASSIGN,
        (
            "/assign",
            "1:assign:w:1306411812723001",
            "1:assign:r:145267896505310001",
            "1:assign:rdone",
            "1:assign:d:0012243300a1",
            "1:assign:ddone",
            "1:assign:create",
        ),
        vendor_changed,
    ),
    Attempt(
        "open a repair of the community",
        Action.REPAIRS_VIEW_ALL,
        ("/repairs_all", "1:repairs_all:open:{id}"),
        shown("Repair #{short} — "),
        "repair",
    ),
    Attempt(
        "open a waiting booking",
        Action.BOOKINGS_VIEW_PENDING,
        ("/bookings_pending", "1:bookings_pending:open:{id}"),
        shown("Booking id: {id}"),
        "pending",
    ),
    # Last: it takes the resident's link away.
    Attempt("unlink", Action.ACCOUNT_UNLINK, ("/unlink", "1:acct:unlink:yes"), unlinked),
]

# Policy for records nobody owns personally (the community's waiting bookings): the side does
# not matter, only the role.
UNOWNED: Final = {"pending"}


# The action that shows each kind of record.
SEEING: Final = {
    "repair": Action.REPAIR_VIEW,
    "booking": Action.BOOKING_VIEW,
    "residence": Action.RESIDENCE_SWITCH,
    "task_new": Action.TASK_VIEW,
    "task_waiting": Action.TASK_VIEW,
    "task_done": Action.TASK_VIEW,
    "pending": Action.BOOKINGS_VIEW_PENDING,
}


def _records(c: Community, new_repair: str) -> dict[str, dict[str, str]]:
    akubela = c.sandbox.state.control.vendors["akubela"]
    other_home = c.records.other_residences
    theirs = next(
        key
        for key, repair in akubela._repairs.items()
        if repair.residence_id in other_home and repair.state == "wait for confirmation"
    )
    return {
        "repair": {"A": new_repair, "B": theirs},
        "booking": {"A": c.records.own_bookings[0], "B": "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01"},
        "residence": {"A": c.records.own_residences[0], "B": other_home[-1]},
        "task_new": {"A": TASK(7), "B": TASK(8)},
        "task_waiting": {"A": TASK(3), "B": TASK(4)},
        "task_done": {"A": TASK(1), "B": TASK(2)},
        "pending": {
            "A": "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02",
            "B": "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e02",
        },
    }


def _raw_records(c: Community) -> dict[str, Any]:
    vendors = c.sandbox.state.control.vendors
    return copy.deepcopy(
        {
            "akubela": (vendors["akubela"]._repairs, vendors["akubela"]._bookings),
            "tuya": (vendors["tuya"]._tasks, vendors["tuya"]._next_task),
            "servitly": vendors["servitly"]._store,
        }
    )


def _restore(c: Community, saved: dict[str, Any]) -> None:
    """Puts every vendor record back, so each attempt meets the same world."""
    vendors = c.sandbox.state.control.vendors
    saved = copy.deepcopy(saved)
    vendors["akubela"]._repairs, vendors["akubela"]._bookings = saved["akubela"]
    vendors["tuya"]._tasks, vendors["tuya"]._next_task = saved["tuya"]
    vendors["servitly"]._store = saved["servitly"]


async def _play(c: Community, user: int, steps: tuple[str, ...], record: str) -> None:
    chat = c.chat(user)
    for step in steps:
        data = step.format(id=record)
        if data.startswith("1:"):
            await chat.press(data)
        else:
            await chat.send(data)


async def _before(c: Community, user: int) -> Before:
    return Before(
        len(c.calls),
        c.vendor_state(),
        await _audit_count(c),
        await _residence(c, user),
        _alerts_off(c, user),
    )


@pytest.mark.parametrize("who", list(PEOPLE))
async def test_every_command_and_button_for_every_role(
    town: Community, figures: Counter[str], who: str
) -> None:
    user = PEOPLE[who]
    desk = await town.bot.services.resident_desk(RESIDENT)
    assert desk is not None
    now = town.bot.services.clock()
    # The resident's own repair that can still be cancelled.
    new_repair = await desk.report_repair(
        start=now + timedelta(days=1),
        finish=now + timedelta(days=1, hours=3),
        description="Hallway light is out since Monday.",
        contact="+86 138 0000 0009",
        command_id="a" * 32,
    )
    assert new_repair is not None
    records = _records(town, new_repair)
    world = _raw_records(town)
    wrong: list[str] = []
    for attempt in ATTEMPTS:
        for side in attempt.sides():
            record = records[attempt.record][side or "A"] if attempt.record else ""
            allowed = may(user, attempt.action, None if attempt.record in UNOWNED else side)
            await town.leave_all(user)
            _restore(town, world)
            town.errors.clear()
            before = await _before(town, user)
            await _play(town, user, attempt.steps, record)
            done = await attempt.effect(town, user, before, record)
            what = f"{who}: {attempt.name}" + (f" on {side}" if side else "")
            if town.errors:
                wrong.append(f"{what} raised {town.errors!r}")
            if allowed:
                figures["allowed_actions_tried"] += 1
                figures["allowed_actions_done"] += done
                if not done:
                    wrong.append(f"{what} was refused")
                continue
            # Forbidden: nothing written anywhere, nothing of the record shown, and an answer.
            changed = (
                town.vendor_state() != before.vendors
                or await audited(town, user, before, record)
                or await residence_switched(town, user, before, record)
                or await alerts_switched(town, user, before, record)
            )
            # The record's id in a reply is a leak only when the user may not see the record.
            leaked = (
                bool(attempt.record)
                and not may(user, SEEING[str(attempt.record)], side)
                and await shown("{id}")(town, user, before, record)
            )
            answered = len(town.calls) > before.calls
            refused = not done and not changed and not leaked and answered
            figures["forbidden_actions_tried"] += 1
            figures["forbidden_actions_refused"] += refused
            if not refused:
                wrong.append(
                    f"{what} was not refused (effect {done}, vendor write {changed}, "
                    f"record shown {leaked}, answered {answered})"
                )
    assert wrong == []


# ---- across communities ----------------------------------------------------------------------
# The demo's two communities, Garden Court (1) and Marina Bay (2). Each one's resident, worker and
# manager presses every button that names a record or a community with the other community's
# ids in it, pressed cold (as from an old message or an alert) and again inside the view the
# button belongs to. The same worker id works at both boards, so only the community tells Li
# Wei's Garden Court tasks from his Marina Bay ones. The pure rules across communities are
# tested in tests/conversations/test_roles.py.

LI_WEI_TG: Final = 2002  # Li Wei, a worker of Marina Bay here
SINGAPORE: Final = ZoneInfo("Asia/Singapore")

Press = tuple[str, str, str]  # job, action, argument
Step = str | Press  # typed, or pressed


@pytest.fixture
async def two(sqlite_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    """The bot with the demo's two communities and their staff: Morgan of both, one manager of
    each, Tom a worker of Garden Court and Li Wei of Marina Bay."""
    async with running_bot(sqlite_url, sandbox_app) as running:
        await keep_demo_communities(running, sandbox_app)
        await link_demo_resident(running, sandbox_app, GRACE, email="grace@marina.demo")
        await link_demo_resident(running, sandbox_app, BOB, email="bob@demo.community")
        await staff(running)
        await join(running, LI_WEI_TG, Role.WORKER, [2], worker_id=LI_WEI)
        yield running


@dataclass(frozen=True)
class Side:
    """One community's records, as the other community's people would press them."""

    community: str  # its number, as a chip's argument
    repair: str  # a repair's key, as the buttons carry it
    booking: str  # a resident's booking
    waiting: str  # a booking waiting for the manager, as the buttons carry it
    residence: str
    amenity: str
    task: str  # a task of the worker id the other community's worker has
    words: tuple[str, ...]  # what would give one of its records away


def _as_resident(side: Side) -> list[Step]:
    repairs = [("repairs", a, side.repair) for a in ("open", "drop", "clear")]
    bookings = [("bookings", a, side.booking) for a in ("open", "drop", "tog")]
    booking = [("book", a, side.amenity) for a in ("am", "pic")]
    return [
        *repairs,
        "/repairs",
        *repairs,
        *bookings,
        "/bookings",
        ("bookings", "select", ""),
        *bookings,
        ("acct", "res", side.residence),
        "/residence",
        ("acct", "res", side.residence),
        *booking,
        "/book",
        *booking,
    ]


def _as_worker(side: Side) -> list[Step]:
    tasks = [("tasks", a, side.task) for a in ("open", "show", "ack", "accept", "reopen", "del")]
    return [*tasks, "/tasks", *tasks, ("tasks", "community", side.community)]


def _as_manager(side: Side) -> list[Step]:
    repairs = [("repairs_all", a, side.repair) for a in ("open", "show")]
    waiting = [("bookings_pending", "open", side.waiting)]
    tasks = [("tasks", a, side.task) for a in ("open", "show", "accept", "reopen", "del")]
    chip = side.community
    return [
        *repairs,
        "/repairs_all",
        *repairs,
        ("repairs_all", "community", chip),
        ("assign", "repair", side.repair),
        "/assign",
        ("assign", "repair", side.repair),
        ("assign", "community", chip),
        *waiting,
        "/bookings_pending",
        *waiting,
        ("bookings_pending", "community", chip),
        *tasks,
        "/tasks",
        *tasks,
        ("tasks", "community", chip),
    ]


async def _sides(bot: BotUnderTest) -> dict[int, Side]:
    """Both communities' records, by community."""
    services = bot.services
    [aircon] = await services.project_desk_of(2).repairs()
    marina_task = await services.task_board_of(2).create(
        TOM, {MARINA_ROOM: [MARINA_DEVICES[0][0]]}
    )
    grace = await services.resident_desk(GRACE)
    assert grace is not None
    [pool] = [a for a in await grace.amenities() if "Pool" in a.name]
    tomorrow = (datetime.now(SINGAPORE) + timedelta(days=2)).date()
    booking = await grace.book(
        amenity_id=pool.id,
        start=datetime.combine(tomorrow, time(10), tzinfo=SINGAPORE),
        duration_minutes=60,
        command_id="x-1",
    )
    grace_link = await services.accounts.resident(GRACE)
    assert booking
    assert marina_task
    assert grace_link
    assert grace_link.residence_id
    [kitchen] = [
        r for r in await services.project_desk_of(1).repairs() if "Kitchen" in r.description
    ]
    bob = await services.resident_desk(BOB)
    bob_link = await services.accounts.resident(BOB)
    assert bob is not None
    assert bob_link is not None
    assert bob_link.residence_id
    [waiting] = [b for b in await bob.bookings() if b.state is BookingState.PENDING]
    [gym] = [a for a in await bob.amenities() if a.id == GYM]
    li_weis = TASK(4)  # Li Wei's own task at Garden Court: his worker id, the other community
    marina = ("Aircon", "Tower 1", "Tower 2", "Pool", marina_task[-6:], aircon.id[-6:])
    garden = ("Kitchen", "Building A", "Meeting room", gym.name, li_weis[-6:], kitchen.id[-6:])
    return {
        2: Side(
            "2",
            key_of(aircon.id),
            booking,
            key_of(booking),
            grace_link.residence_id,
            pool.id,
            marina_task,
            marina,
        ),
        1: Side(
            "1",
            key_of(kitchen.id),
            waiting.id,
            key_of(waiting.id),
            bob_link.residence_id,
            gym.id,
            li_weis,
            garden,
        ),
    }


async def test_nobody_acts_on_the_other_communitys_records(
    two: BotUnderTest, sandbox_app: Starlette, figures: Counter[str]
) -> None:
    """Every role of each community, every press naming the other community's records: each
    press is answered, shows nothing of the other community and changes nothing at the
    vendors."""
    bot = two
    sides = await _sides(bot)
    # Who presses, and the community whose records they press: the other one.
    players = {
        BOB: (sides[2], _as_resident),
        TOM_TG: (sides[2], _as_worker),
        GARDEN_MANAGER: (sides[2], _as_manager),
        GRACE: (sides[1], _as_resident),
        LI_WEI_TG: (sides[1], _as_worker),
        MARINA_MANAGER: (sides[1], _as_manager),
    }
    homes = {user: await bot.services.accounts.resident(user) for user in (BOB, GRACE)}
    # The same presses with their own community's ids do show the records, so what is looked
    # for below would be seen if it leaked.
    for user, own in ((GARDEN_MANAGER, sides[1]), (MARINA_MANAGER, sides[2])):
        await bot.chat(user).send("/repairs_all")
        await bot.chat(user).press(callbacks.build("repairs_all", "open", own.repair))
        assert own.words[-1] in (bot.telegram.last.text or "")
        await bot.chat(user).send("/cancel")
    await bot.chat(GRACE).send("/bookings")
    await bot.chat(GRACE).press(callbacks.build("bookings", "open", sides[2].booking))
    assert "Pool" in (bot.telegram.last.text or "")
    await bot.chat(GRACE).send("/cancel")
    await bot.chat(MARINA_MANAGER).press(callbacks.build("tasks", "open", sides[2].task))
    assert sides[2].task in (bot.telegram.last.text or "")
    await bot.chat(MARINA_MANAGER).send("/cancel")
    tried = refused = 0
    wrong = []
    for user, (other, steps) in players.items():
        chat = bot.chat(user)
        for step in steps(other):
            world = vendor_state(sandbox_app)
            calls = len(bot.telegram.calls)
            if isinstance(step, str):
                await chat.send(step)
            else:
                await chat.press(callbacks.build(*[part for part in step if part]))
            after = bot.telegram.calls[calls:]
            shown = " ".join(
                (c.text or "")
                + str(c.params.get("caption") or "")
                + str(c.params.get("reply_markup") or "")
                for c in after
                if int(c.params.get("chat_id", user)) == user
            )
            leaked = [w for w in other.words if w in shown]
            changed = vendor_state(sandbox_app) != world
            if isinstance(step, str):  # opening one's own view: only nothing of theirs
                if leaked or changed:
                    wrong.append(f"{user} {step}: shown {leaked}, changed {changed}")
                continue
            answered = any(c.method == "answerCallbackQuery" for c in after)
            tried += 1
            if answered and not leaked and not changed:
                refused += 1
            else:
                wrong.append(
                    f"{user} {':'.join(step)}: answered {answered}, shown {leaked}, "
                    f"changed {changed}"
                )
    figures["cross_community_presses_tried"] += tried
    figures["cross_community_presses_refused"] += refused
    print(f"across communities (through the bot): tried {tried}, refused {refused}")
    assert wrong == []
    assert (tried, refused) == (108, 108)
    # Refused politely: a record of the other community is, to them, one that is not there.
    said = {str(call.params.get("text")) for call in bot.telegram.calls}
    for notice in (
        "Sorry, that repair is not in the list (any more).",
        "Sorry, that booking is not in the list (any more).",
        "That task no longer exists; it may have been deleted meanwhile.",
    ):
        assert notice in said
    # The residents' chosen homes stayed theirs.
    for user, home in homes.items():
        now = await bot.services.accounts.resident(user)
        assert home is not None
        assert now is not None
        assert now.residence_id == home.residence_id
