"""A whole community in one bot for the hostile tests: every role, their records, and checks.

The bot is the real one (`build_application` on the vendor sandbox and a migrated database);
a recording error handler sits beside the production one, so a test knows when an update
ended in an unhandled exception even though the user was apologised to.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from starlette.applications import Starlette
from telegram.ext import ConversationHandler

from conversations import (
    assign,
    booking,
    callbacks,
    my_bookings,
    my_repairs,
    pending_bookings,
    project_repairs,
    repair,
    tasks,
)
from conversations.context import ConciergeContext
from conversations.domain import Role
from tests.support_bot import BotUnderTest, demo_residents, link_demo_resident, running_bot
from tests.support_telegram import Call, Chat

# Telegram ids of the community's people.
RESIDENT: Final = 801  # one home
OTHER_RESIDENT: Final = 802  # two homes
WORKER: Final = 803  # Tom
OTHER_WORKER: Final = 804  # Li Wei
MANAGER: Final = 805  # manages the Tuya project and the Akubela community
ADMIN: Final = 806
UNLINKED: Final = 807

TOM: Final = "1306411812723001"
LI_WEI: Final = "1306411812723002"
TUYA_PROJECT: Final = "1233823965050001"
AKUBELA_PROJECT: Final = "p-demo-garden-court"

# The State enum of every conversation, by the conversation's name.
FLOW_STATES: Final[dict[str, frozenset[str]]] = {
    module.JOB: frozenset(state.value for state in module.State)
    for module in (
        repair,
        my_repairs,
        booking,
        my_bookings,
        tasks,
        assign,
        project_repairs,
        pending_bookings,
    )
}

# What a user sees of the bot: a message, an edit, a photo, or the answer to a press.
REPLY_METHODS: Final = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "sendPhoto",
        "sendMediaGroup",
        "sendDocument",
        "answerCallbackQuery",
    }
)
# Telegram's own limits; a call over them fails with "Bad Request" in production.
MAX_TEXT: Final = 4096
MAX_CAPTION: Final = 1024
MAX_ALERT: Final = 200


def vendor_state(sandbox: Starlette) -> dict[str, Any]:
    """A deep copy of every vendor record a user could change."""
    vendors = sandbox.state.control.vendors
    akubela, tuya, servitly = vendors["akubela"], vendors["tuya"], vendors["servitly"]
    return copy.deepcopy(
        {
            "repairs": {k: dataclasses.asdict(v) for k, v in akubela._repairs.items()},
            "bookings": {k: dataclasses.asdict(v) for k, v in akubela._bookings.items()},
            "tasks": {k: dataclasses.asdict(v) for k, v in tuya._tasks.items()},
            "events": dict(servitly._store.events),
            "works": dict(servitly._store.works),
        }
    )


@dataclass
class Records:
    """Ids the community's people own, for pressing other people's buttons."""

    own_repairs: list[str] = field(default_factory=list)
    other_repairs: list[str] = field(default_factory=list)
    own_bookings: list[str] = field(default_factory=list)
    other_bookings: list[str] = field(default_factory=list)
    own_residences: list[str] = field(default_factory=list)
    other_residences: list[str] = field(default_factory=list)
    own_tasks: list[str] = field(default_factory=list)
    other_tasks: list[str] = field(default_factory=list)

    def foreign_ids(self) -> list[str]:
        """Every id that belongs to someone other than the resident and the worker."""
        return [
            *self.other_repairs,
            *self.other_bookings,
            *self.other_residences,
            *self.other_tasks,
        ]

    def all_ids(self) -> list[str]:
        """Every record id of the community."""
        return [
            *self.own_repairs,
            *self.own_bookings,
            *self.own_residences,
            *self.own_tasks,
            *self.foreign_ids(),
        ]


@dataclass(repr=False)
class Community:
    """The bot, its sandbox, the people in it and what went wrong."""

    bot: BotUnderTest
    sandbox: Starlette
    records: Records
    errors: list[BaseException] = field(default_factory=list)
    chats: dict[int, Chat] = field(default_factory=dict)
    # Buttons shown before this call are not pressed by `press` (they belong to an old flow).
    mark: int = 0

    def __repr__(self) -> str:
        return f"<Community with {len(self.calls)} Bot API calls, {len(self.errors)} errors>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints failing examples with this, not with the dataclass fields.
        printer.text(repr(self))

    def chat(self, telegram_id: int) -> Chat:
        """The private chat of this person (one per person, so message ids keep counting)."""
        if telegram_id not in self.chats:
            self.chats[telegram_id] = self.bot.chat(telegram_id)
        return self.chats[telegram_id]

    @property
    def calls(self) -> list[Call]:
        """Every Bot API call so far."""
        return self.bot.telegram.calls

    def conversations(self, telegram_id: int) -> dict[str, object]:
        """The stored state of each conversation this person is in, by conversation name."""
        found: dict[str, object] = {}
        for handler in self.bot.app.handlers[0]:
            if isinstance(handler, ConversationHandler) and handler.name is not None:
                state = handler._conversations.get((telegram_id, telegram_id))
                if state is not None:
                    found[handler.name] = state
        return found

    def state(self, telegram_id: int, job: str) -> object | None:
        """The stored state of one conversation, None when it has ended."""
        return self.conversations(telegram_id).get(job)

    async def leave_all(self, telegram_id: int) -> None:
        """Sends /cancel until no conversation is open (each /cancel ends one of them)."""
        await self.chat(telegram_id).send("/cancel")
        for _ in range(len(FLOW_STATES)):
            if not self.conversations(telegram_id):
                return
            await self.chat(telegram_id).send("/cancel")
        raise AssertionError(f"/cancel does not end {self.conversations(telegram_id)}")

    def buttons(self, since: int = 0) -> list[str]:
        """The callback data of every inline button the bot showed since call `since`."""
        return [
            str(button["callback_data"])
            for call in self.calls[since:]
            for row in call.buttons
            for button in row
            if "callback_data" in button
        ]

    def latest_press(self, job: str, *actions: str) -> str | None:
        """The newest button of `job` with one of `actions` since the mark, or None."""
        for call in reversed(self.calls[self.mark :]):
            for row in call.buttons:
                for button in row:
                    press = callbacks.parse(button.get("callback_data"), job=job)
                    if press is not None and (not actions or press.action in actions):
                        return str(button["callback_data"])
        return None

    async def press(self, telegram_id: int, job: str, *actions: str) -> None:
        """Presses the newest shown button of `job` with one of `actions`."""
        data = self.latest_press(job, *actions)
        assert data is not None, f"no {job} button with {actions} to press"
        await self.chat(telegram_id).press(data)

    def vendor_state(self) -> dict[str, Any]:
        """A deep copy of every vendor record a user could change."""
        return vendor_state(self.sandbox)


async def join(
    bot: BotUnderTest,
    telegram_id: int,
    role: Role,
    *,
    worker_id: str | None = None,
    project_id: str | None = None,
) -> None:
    """Makes a worker or a manager the way staff join: an invite and /start <code>."""
    code = await bot.services.invites.create(
        role,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        worker_id=worker_id,
        project_id=project_id,
        community_ids=[1],
    )
    await bot.chat(telegram_id).send(f"/start {code}")
    assert "Welcome aboard" in (bot.telegram.last.text or "")


def _records(sandbox: Starlette, resident: dict[str, Any], other: dict[str, Any]) -> Records:
    vendors = sandbox.state.control.vendors
    akubela, tuya = vendors["akubela"], vendors["tuya"]
    own = set(resident["residence_ids"])
    theirs = set(other["residence_ids"])
    return Records(
        own_repairs=[k for k, v in akubela._repairs.items() if v.residence_id in own],
        other_repairs=[k for k, v in akubela._repairs.items() if v.residence_id not in own],
        own_bookings=[k for k, v in akubela._bookings.items() if v.residence_id in own],
        other_bookings=[k for k, v in akubela._bookings.items() if v.residence_id not in own],
        own_residences=sorted(own),
        other_residences=sorted(theirs - own),
        own_tasks=[k for k, v in tuya._tasks.items() if v.worker_id == TOM],
        other_tasks=[k for k, v in tuya._tasks.items() if v.worker_id != TOM],
    )


@asynccontextmanager
async def community(
    database_url: str, sandbox_app: Starlette, **settings: Any
) -> AsyncIterator[Community]:
    """The bot with every role in place: two residents, two workers, a manager, an admin."""
    settings.setdefault("admin_telegram_ids", [ADMIN])
    async with running_bot(database_url, sandbox_app, **settings) as bot:
        errors: list[BaseException] = []

        async def record(update: object, context: ConciergeContext) -> None:
            if context.error is not None:
                errors.append(context.error)

        bot.app.add_error_handler(record)
        resident = await link_demo_resident(bot, sandbox_app, RESIDENT, homes=1)
        other = await link_demo_resident(bot, sandbox_app, OTHER_RESIDENT, homes=2)
        await join(bot, WORKER, Role.WORKER, worker_id=TOM)
        await join(bot, OTHER_WORKER, Role.WORKER, worker_id=LI_WEI)
        await join(bot, MANAGER, Role.MANAGER, project_id=TUYA_PROJECT)
        await join(bot, MANAGER, Role.MANAGER, project_id=AKUBELA_PROJECT)
        bot.telegram.clear()
        assert len(demo_residents(sandbox_app)) >= 2
        yield Community(bot, sandbox_app, _records(sandbox_app, resident, other), errors)


# ---- reaching each step with valid input -----------------------------------------------------

Reach = Callable[["Community"], Awaitable[None]]
DESCRIPTION: Final = "The kitchen tap drips all night."
CONTACT: Final = "+86 138 1234 5678"


@dataclass(frozen=True)
class Step:
    """One step of one flow: who is in it, how to get there with valid input, its state."""

    job: str
    state: str
    user: int
    reach: Reach

    @property
    def name(self) -> str:
        """The state and who is in it, e.g. `repair.describe-801`."""
        return f"{self.state}-{self.user}"


async def _fresh(c: Community, user: int, command: str) -> None:
    """Leaves whatever the user was doing (and its draft), then starts `command` afresh."""
    await c.leave_all(user)
    # A flow put aside by another keeps its draft for its command to pick up; start clean.
    for job in FLOW_STATES:
        c.bot.app.user_data[user].pop(job, None)
        await c.bot.services.storage.drafts.clear(user, job)
    c.mark = len(c.calls)
    await c.chat(user).send(command)


async def _press_until(c: Community, user: int, job: str, action: str, state: str) -> None:
    """Presses the newest `action` button until the flow is in `state` (a day may be full)."""
    for _ in range(5):
        await c.press(user, job, action)
        if c.state(user, job) == state:
            return


async def _repair_describe(c: Community) -> None:
    await _fresh(c, RESIDENT, "/repair")


async def _repair_photos(c: Community) -> None:
    await _repair_describe(c)
    await c.chat(RESIDENT).send(DESCRIPTION)


async def _repair_resume(c: Community) -> None:
    await _repair_photos(c)
    await c.chat(RESIDENT).send("/repair")


async def _repair_when(c: Community) -> None:
    await _repair_photos(c)
    await c.press(RESIDENT, "repair", "skip")


async def _repair_when_confirm(c: Community) -> None:
    await _repair_when(c)
    await c.press(RESIDENT, "repair", "when")


async def _repair_contact(c: Community) -> None:
    await _repair_when_confirm(c)
    await c.press(RESIDENT, "repair", "ok")


async def _repair_summary(c: Community) -> None:
    await _repair_contact(c)
    await c.chat(RESIDENT).send(CONTACT)


async def _repairs_browse(c: Community) -> None:
    await _fresh(c, RESIDENT, "/repairs")
    if c.latest_press("repairs", "open") is None:
        # Every repair was cancelled or cleared meanwhile: report one to have something.
        await _repair_summary(c)
        await c.press(RESIDENT, "repair", "confirm")
        await _fresh(c, RESIDENT, "/repairs")


async def _repairs_confirm(c: Community) -> None:
    await _repairs_browse(c)
    if c.latest_press("repairs", "clear") is not None:
        await c.press(RESIDENT, "repairs", "clear")
        return
    await c.press(RESIDENT, "repairs", "open")
    await c.press(RESIDENT, "repairs", "drop", "clear")


async def _book_amenity(c: Community) -> None:
    await _fresh(c, RESIDENT, "/book")


async def _book_date(c: Community) -> None:
    await _book_amenity(c)
    await c.press(RESIDENT, "book", "am")


async def _book_start(c: Community) -> None:
    await _book_date(c)
    await _press_until(c, RESIDENT, "book", "day", booking.State.START)


async def _book_duration(c: Community) -> None:
    await _book_start(c)
    await c.press(RESIDENT, "book", "at")


async def _book_confirm(c: Community) -> None:
    await _book_duration(c)
    await c.press(RESIDENT, "book", "dur")


async def _bookings_browse(c: Community) -> None:
    await _fresh(c, RESIDENT, "/bookings")


async def _bookings_select(c: Community) -> None:
    await _bookings_browse(c)
    for _ in range(3):
        if c.latest_press("bookings", "select") is not None:
            break
        # "Cancel several" needs two upcoming bookings: book one more.
        await _book_confirm(c)
        await c.press(RESIDENT, "book", "confirm")
        await _bookings_browse(c)
    await c.press(RESIDENT, "bookings", "select")


async def _bookings_confirm(c: Community) -> None:
    await _bookings_select(c)
    await c.press(RESIDENT, "bookings", "tog")
    await c.press(RESIDENT, "bookings", "sel_done")


async def _bookings_code(c: Community) -> None:
    await _fresh(c, RESIDENT, "/code")


async def _tasks_worker(c: Community) -> None:
    await _fresh(c, WORKER, "/tasks")


async def _tasks_manager(c: Community) -> None:
    await _fresh(c, MANAGER, "/tasks")


async def _tasks_reason(c: Community) -> None:
    for _ in range(2):
        await _tasks_manager(c)
        for task_id in list(c.sandbox.state.control.vendors["tuya"]._tasks):
            await c.chat(MANAGER).press(callbacks.build("tasks", "reopen", task_id))
            if c.state(MANAGER, "tasks") == tasks.State.REASON:
                return
        # Every task that could be reopened was deleted meanwhile: back to the seed.
        c.sandbox.state.control.vendors["tuya"].reset()


async def _tasks_confirm(c: Community) -> None:
    await _tasks_manager(c)
    if c.latest_press("tasks", "open") is None:
        c.sandbox.state.control.vendors["tuya"].reset()
        await _tasks_manager(c)
    await c.press(MANAGER, "tasks", "open")
    await c.press(MANAGER, "tasks", "del")


async def _assign_worker(c: Community) -> None:
    await _fresh(c, MANAGER, "/assign")


async def _assign_rooms(c: Community) -> None:
    await _assign_worker(c)
    await c.press(MANAGER, "assign", "w")


async def _assign_devices(c: Community) -> None:
    await _assign_rooms(c)
    await c.press(MANAGER, "assign", "r")
    await c.press(MANAGER, "assign", "rdone")


async def _assign_confirm(c: Community) -> None:
    await _assign_devices(c)
    await c.press(MANAGER, "assign", "d")
    await c.press(MANAGER, "assign", "ddone")


async def _repairs_all(c: Community) -> None:
    await _fresh(c, MANAGER, "/repairs_all")


async def _bookings_pending(c: Community) -> None:
    await _fresh(c, MANAGER, "/bookings_pending")


STEPS: Final[tuple[Step, ...]] = (
    Step("repair", repair.State.DESCRIBE, RESIDENT, _repair_describe),
    Step("repair", repair.State.RESUME, RESIDENT, _repair_resume),
    Step("repair", repair.State.PHOTOS, RESIDENT, _repair_photos),
    Step("repair", repair.State.WHEN, RESIDENT, _repair_when),
    Step("repair", repair.State.WHEN_CONFIRM, RESIDENT, _repair_when_confirm),
    Step("repair", repair.State.CONTACT, RESIDENT, _repair_contact),
    Step("repair", repair.State.SUMMARY, RESIDENT, _repair_summary),
    Step("repairs", my_repairs.State.BROWSE, RESIDENT, _repairs_browse),
    Step("repairs", my_repairs.State.CONFIRM, RESIDENT, _repairs_confirm),
    Step("book", booking.State.AMENITY, RESIDENT, _book_amenity),
    Step("book", booking.State.DATE, RESIDENT, _book_date),
    Step("book", booking.State.START, RESIDENT, _book_start),
    Step("book", booking.State.DURATION, RESIDENT, _book_duration),
    Step("book", booking.State.CONFIRM, RESIDENT, _book_confirm),
    Step("bookings", my_bookings.State.BROWSE, RESIDENT, _bookings_browse),
    Step("bookings", my_bookings.State.SELECT, RESIDENT, _bookings_select),
    Step("bookings", my_bookings.State.CONFIRM, RESIDENT, _bookings_confirm),
    Step("bookings", my_bookings.State.CODE, RESIDENT, _bookings_code),
    Step("tasks", tasks.State.BROWSE, WORKER, _tasks_worker),
    Step("tasks", tasks.State.BROWSE, MANAGER, _tasks_manager),
    Step("tasks", tasks.State.REASON, MANAGER, _tasks_reason),
    Step("tasks", tasks.State.CONFIRM, MANAGER, _tasks_confirm),
    Step("assign", assign.State.WORKER, MANAGER, _assign_worker),
    Step("assign", assign.State.ROOMS, MANAGER, _assign_rooms),
    Step("assign", assign.State.DEVICES, MANAGER, _assign_devices),
    Step("assign", assign.State.CONFIRM, MANAGER, _assign_confirm),
    Step("repairs_all", project_repairs.State.BROWSE, MANAGER, _repairs_all),
    Step("bookings_pending", pending_bookings.State.BROWSE, MANAGER, _bookings_pending),
)


def problems_with(calls: list[Call]) -> list[str]:
    """What in these Bot API calls Telegram itself would refuse."""
    found = []
    for call in calls:
        text = call.params.get("text")
        caption = call.params.get("caption")
        too_long = not text or len(str(text)) > MAX_TEXT
        if call.method in ("sendMessage", "editMessageText") and too_long:
            found.append(f"{call.method} with a text of {len(str(text or ''))} characters")
        if caption is not None and len(str(caption)) > MAX_CAPTION:
            found.append(f"{call.method} with a caption of {len(str(caption))} characters")
        if call.method == "answerCallbackQuery" and text and len(str(text)) > MAX_ALERT:
            found.append(f"answerCallbackQuery with a text of {len(str(text))} characters")
        for row in call.buttons:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= callbacks.MAX_BYTES:
                    found.append(f"a button with {len(str(data).encode())} bytes of data")
                if not str(button.get("text", "")).strip():
                    found.append("a button without a label")
    return found
