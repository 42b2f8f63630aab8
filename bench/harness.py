"""What the figures share: the bot in-process on a recording Bot request, the vendor sandbox over
`httpx.ASGITransport` with its time accounted to the update that waited for it, timed update
processors, and a community of linked residents in a template database.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import itertools
import json
import math
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from telegram import Update
from telegram.ext import BaseUpdateProcessor, SimpleUpdateProcessor
from telegram.request import BaseRequest, RequestData

from bot.app import build_application
from bot.app_type import ConciergeApp
from bot.concurrency import PerChatUpdateProcessor
from bot.persistence import DatabasePersistence
from bot.services import Services
from bot.settings import Settings
from bot.storage.accounts import StoredTokens
from bot.storage.migrate import upgrade
from conversations import callbacks
from conversations.my_repairs import key_of, newest_first
from sandbox.app import create_app, default_vendors
from sandbox.core import Clock
from sandbox.faults import FaultKind, FaultRule

BOT_ID = 777000
FIRST_RESIDENT_ID = 5_000_000
# Nothing in the background may run on its own during a measurement.
QUIET_JOBS = {"outbox_interval_seconds": 3600.0, "alert_poll_seconds": 3600.0}


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


def copy_database(source: Path, target: Path) -> Path:
    """A copy of a closed SQLite database (with its WAL files, if any were left)."""
    for suffix in ("", "-wal", "-shm"):
        found = Path(f"{source}{suffix}")
        if found.exists():
            shutil.copyfile(found, Path(f"{target}{suffix}"))
    return target


def bench_settings(database_url: str, **overrides: Any) -> Settings:
    """Demo settings on `database_url`, untouched by any .env, background jobs parked."""
    values: dict[str, Any] = {"database_url": database_url, **QUIET_JOBS, **overrides}
    return Settings(_env_file=None, **values)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..100) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


def now() -> float:
    """The bench's clock: monotonic seconds."""
    return time.perf_counter()


# ---- vendor time, accounted to the update that waited for it ---------------------------------


class VendorWait:
    """How long one update spent waiting on vendor HTTP calls (overlapping calls count once)."""

    __slots__ = ("_since", "calls", "in_flight", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.in_flight = 0
        self._since = 0.0

    def enter(self) -> None:
        """A call starts."""
        self.calls += 1
        if self.in_flight == 0:
            self._since = now()
        self.in_flight += 1

    def leave(self) -> None:
        """A call ends."""
        self.in_flight -= 1
        if self.in_flight == 0:
            self.seconds += now() - self._since


_CURRENT_WAIT: contextvars.ContextVar[VendorWait | None] = contextvars.ContextVar(
    "bench_vendor_wait", default=None
)


class TimingTransport(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and charges their time to the update being handled."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """One vendor call, timed from sending to the whole answer (ASGITransport buffers it)."""
        wait = _CURRENT_WAIT.get()
        if wait is None:
            return await self._inner.handle_async_request(request)
        wait.enter()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            wait.leave()

    async def aclose(self) -> None:
        """Closes the wrapped transport."""
        await self._inner.aclose()


class Busy:
    """When some kind of work was in flight: disjoint windows, in time order."""

    __slots__ = ("_in_flight", "_since", "windows")

    def __init__(self) -> None:
        self.windows: list[tuple[float, float]] = []
        self._in_flight = 0
        self._since = 0.0

    def enter(self) -> None:
        """A piece of work starts."""
        if self._in_flight == 0:
            self._since = now()
        self._in_flight += 1

    def leave(self) -> None:
        """A piece of work ends."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self.windows.append((self._since, now()))

    def overlaps(self, start: float, end: float) -> bool:
        """Whether any window overlaps [start, end]."""
        # Only the last window starting before `end` can reach past `start`: the windows are
        # disjoint and ordered, so every earlier one ended before that one began.
        index = bisect.bisect_left(self.windows, (end, end)) - 1
        return index >= 0 and self.windows[index][1] > start


class WatchedPersistence(DatabasePersistence):
    """Concierge's persistence, noting when it writes (the Application flushes it every few
    seconds, beside the handlers)."""

    def __init__(self, *args: Any, busy: Busy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.busy = busy

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        """Writes, noted."""
        self.busy.enter()
        try:
            await super().update_user_data(user_id, data)
        finally:
            self.busy.leave()

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        """Writes, noted."""
        self.busy.enter()
        try:
            await super().update_chat_data(chat_id, data)
        finally:
            self.busy.leave()

    async def update_conversation(
        self, name: str, key: tuple[int | str, ...], new_state: object | None
    ) -> None:
        """Writes, noted."""
        self.busy.enter()
        try:
            await super().update_conversation(name, key, new_state)
        finally:
            self.busy.leave()

    @asynccontextmanager
    async def flushing(self) -> AsyncIterator[None]:
        """A whole flush, noted: its writes are made together when it ends."""
        self.busy.enter()
        try:
            async with super().flushing():
                yield
        finally:
            self.busy.leave()


# ---- timed update processors -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handled:
    """One update's trip: when it was queued, began, ended, and its vendor time."""

    update_id: int
    chat_id: int
    arrived: float
    started: float
    ended: float
    vendor_seconds: float
    vendor_calls: int

    @property
    def latency(self) -> float:
        """Arrival to handled."""
        return self.ended - self.arrived

    @property
    def wall(self) -> float:
        """How long handling took, from its start."""
        return self.ended - self.started

    @property
    def own(self) -> float:
        """Handling time minus time spent waiting for the vendors."""
        return self.wall - self.vendor_seconds


class Timings:
    """Collects every update's trip; `done` fires once `expected` updates were handled."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrivals: dict[int, float] = {}
        self.steps: dict[int, str] = {}
        self.records: list[Handled] = []
        self.done = asyncio.Event()
        if expected == 0:
            self.done.set()

    async def run(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Awaits the Application's handling of `update`, timing it and its vendor waits."""
        wait = VendorWait()
        token = _CURRENT_WAIT.set(wait)
        started = now()
        try:
            await coroutine
        finally:
            ended = now()
            _CURRENT_WAIT.reset(token)
            if isinstance(update, Update) and update.effective_chat is not None:
                self.records.append(
                    Handled(
                        update_id=update.update_id,
                        chat_id=update.effective_chat.id,
                        arrived=self.arrivals.get(update.update_id, started),
                        started=started,
                        ended=ended,
                        vendor_seconds=wait.seconds,
                        vendor_calls=wait.calls,
                    )
                )
            if len(self.records) >= self.expected:
                self.done.set()

    def out_of_order(self) -> int:
        """Updates that began before an earlier update of their chat had ended, or overtook it."""
        by_chat: dict[int, list[Handled]] = defaultdict(list)
        for record in sorted(self.records, key=lambda r: r.started):
            by_chat[record.chat_id].append(record)
        wrong = 0
        for records in by_chat.values():
            for before, after in itertools.pairwise(records):
                if after.update_id < before.update_id or after.started < before.ended:
                    wrong += 1
        return wrong


class TimedPerChatProcessor(PerChatUpdateProcessor):
    """Concierge's processor, timing each update once it got its turn and a slot."""

    def __init__(self, timings: Timings, max_running: int) -> None:
        super().__init__(max_running)
        self.timings = timings

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Waits for the turn as Concierge does, then times the handling."""
        await super().do_process_update(update, self.timings.run(update, coroutine))


class TimedSequentialProcessor(SimpleUpdateProcessor):
    """PTB's default: one update at a time (what `concurrent_updates(False)` builds)."""

    def __init__(self, timings: Timings) -> None:
        super().__init__(1)
        self.timings = timings

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Times the handling; PTB's fetcher awaits each update before taking the next."""
        await self.timings.run(update, coroutine)


class TimedConcurrentProcessor(SimpleUpdateProcessor):
    """PTB's own concurrent processing (`concurrent_updates(n)`): up to n updates at once, in
    no order, a chat's updates included."""

    def __init__(self, timings: Timings, max_running: int) -> None:
        super().__init__(max_running)
        self.timings = timings

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Times the handling; PTB's semaphore has already given the update a slot."""
        await self.timings.run(update, coroutine)


# ---- a recording Bot API request: Telegram's answers, no sockets -----------------------------


@dataclass
class RecordingRequest(BaseRequest):
    """Answers the Bot API methods the bot uses, as Telegram would, and keeps what each chat
    was last told."""

    methods: Counter[str] = field(default_factory=Counter)
    last_text: dict[int, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_000))

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    @property
    def read_timeout(self) -> float | None:
        """No timeout: answers are immediate."""
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        """Records the call and answers it."""
        name = url.rsplit("/", 1)[-1]
        self.methods[name] += 1
        params = request_data.parameters if request_data is not None else {}
        result = self._answer(name, params)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        text = extra.get("text") or extra.get("caption")
        if text:
            self.last_text[chat_id] = str(text)
        return {
            "message_id": int(params.get("message_id") or next(self._ids)),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Concierge"},
            **extra,
        }

    def _answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Concierge",
                "username": "concierge_bench_bot",
            }
        if name in {"sendMessage", "editMessageText"}:
            return self._message(params, text=str(params.get("text", "")))
        if name in {"sendPhoto", "editMessageCaption"}:
            photo = [{"file_id": "p", "file_unique_id": "up", "width": 9, "height": 9}]
            return self._message(params, photo=photo, caption=params.get("caption"))
        if name == "sendMediaGroup":
            photo = [{"file_id": "p", "file_unique_id": "up", "width": 9, "height": 9}]
            return [self._message(params, photo=photo) for _ in params.get("media") or []]
        if name == "editMessageReplyMarkup":
            return self._message(params)
        if name == "sendDocument":
            return self._message(params, document={"file_id": "d", "file_unique_id": "ud"})
        return True


# ---- updates as Telegram sends them ----------------------------------------------------------


def message_update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    """A private text message (a leading /command gets its entity, as Telegram sends it)."""
    message: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": "Resident"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Resident", "language_code": "en"},
        "text": text,
    }
    if text.startswith("/"):
        command = text.split()[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


def press_update(update_id: int, user_id: int, data: str) -> dict[str, Any]:
    """A press on an inline button of the bot's last message."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(update_id),
            "from": {"id": user_id, "is_bot": False, "first_name": "Resident"},
            "chat_instance": f"ci-{user_id}",
            "data": data,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Concierge"},
                "text": "…",
            },
        },
    }


# ---- the community: residents linked to the sandbox's demo accounts --------------------------


@dataclass(frozen=True, slots=True)
class Resident:
    """A simulated user: their Telegram id and the steps of their flow."""

    telegram_id: int
    steps: tuple[str, ...]  # texts to send; "press:<data>" presses a button

    @property
    def flow(self) -> tuple[str, ...]:
        """The steps with button data left out: residents with the same flow do the same."""
        return tuple("press" if step.startswith("press:") else step for step in self.steps)

    def payload(self, update_id: int, step: str) -> dict[str, Any]:
        """The update for one step."""
        if step.startswith("press:"):
            return press_update(update_id, self.telegram_id, step.removeprefix("press:"))
        return message_update(update_id, self.telegram_id, step)


@dataclass(frozen=True)
class Community:
    """A migrated template database with linked residents, and the sandbox that knows them:
    in this process, or (`sandbox_url`) one in its own process."""

    template: Path
    sandbox: Starlette
    residents: tuple[Resident, ...]
    sandbox_url: str | None = None


def vendor_urls(sandbox_url: str) -> dict[str, str]:
    """The settings that point every vendor client at a sandbox served at `sandbox_url`."""
    return {
        f"{name}_base_url": f"{sandbox_url}/{name}" for name in ("akubela", "tuya", "servitly")
    }


async def set_remote_latency(sandbox_url: str, seconds: float) -> None:
    """`set_vendor_latency` for a sandbox in another process, through its control API."""
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/_sandbox") as control:
        (await control.delete("/faults")).raise_for_status()
        if seconds > 0:
            added = await control.post("/faults", json={"kind": "latency", "latency": seconds})
            added.raise_for_status()


def new_sandbox(settings: Settings) -> Starlette:
    """The vendor sandbox with its demo seed."""
    clock = Clock()
    return create_app(settings, clock=clock, vendors=default_vendors(settings, clock))


def set_vendor_latency(sandbox: Starlette, seconds: float) -> None:
    """Every vendor answer comes `seconds` late from now on (0: no added latency)."""
    faults = sandbox.state.control.faults
    faults.clear()
    if seconds > 0:
        faults.add(FaultRule(kind=FaultKind.LATENCY, latency=seconds))


async def prepare_community(
    directory: Path,
    users: int,
    *,
    sandbox_url: str | None = None,
    database_url: str | None = None,
) -> Community:
    """Links `users` residents to the demo accounts (round robin) in a template database (a
    SQLite file in `directory`, or the database at `database_url`), on the sandbox at
    `sandbox_url` or on one in this process.

    Even residents look at their repairs and open the newest; odd ones look at their bookings.
    """
    template = directory / "community.db"
    url = database_url or sqlite_url(template)
    await upgrade(url)
    settings = bench_settings(url)
    sandbox = new_sandbox(settings)
    people: list[dict[str, Any]]
    if sandbox_url is None:
        services = Services.open(settings, vendor_transport=httpx.ASGITransport(app=sandbox))
        people = sandbox.state.control.vendors["akubela"].demo_info()["residents"]
    else:
        services = Services.open(bench_settings(url, **vendor_urls(sandbox_url)))
        async with httpx.AsyncClient() as client:
            demo = await client.get(f"{sandbox_url}/_sandbox/demo")
            people = demo.raise_for_status().json()["akubela"]["residents"]
    residents: list[Resident] = []
    try:
        tokens: dict[str, StoredTokens] = {}
        for person in people:
            issued = await services.akubela.password_login(
                person["email"], SecretStr(person["password"]), scope="user"
            )
            refresh = issued.refresh_token
            tokens[person["email"]] = StoredTokens(
                access_token_encrypted=services.cipher.encrypt(
                    issued.access_token.get_secret_value()
                ),
                refresh_token_encrypted=services.cipher.encrypt(refresh.get_secret_value())
                if refresh is not None
                else None,
                expires_at=issued.expires_at,
            )
        newest_repair: dict[str, str | None] = {}
        for number in range(users):
            telegram_id = FIRST_RESIDENT_ID + number
            person = people[number % len(people)]
            await services.storage.users.get_or_create(telegram_id, language="en")
            await services.accounts.link_resident(
                telegram_id,
                account_id=person["account_id"],
                email=person["email"],
                residences=[{"residence_id": rid} for rid in person["residence_ids"]],
                tokens=tokens[person["email"]],
            )
            await services.accounts.choose_residence(telegram_id, person["residence_ids"][0])
            if person["email"] not in newest_repair:
                desk = await services.resident_desk(telegram_id)
                assert desk is not None, "a freshly linked resident has a desk"
                repairs = newest_first(await desk.repairs())
                newest_repair[person["email"]] = (
                    repairs[0].id if repairs and repairs[0].id else None
                )
            repair_id = newest_repair[person["email"]]
            steps: tuple[str, ...]
            if number % 2 == 0 and repair_id is not None:
                opened = callbacks.build("repairs", "open", key_of(repair_id))
                steps = ("/start", "/repairs", f"press:{opened}", "/cancel")
            else:
                steps = ("/start", "/bookings", "/cancel")
            residents.append(Resident(telegram_id, steps))
    finally:
        await services.aclose()
    return Community(template, sandbox, tuple(residents), sandbox_url)


def interleaved(residents: Sequence[Resident]) -> list[tuple[Resident, str]]:
    """Every resident's steps, first steps of all first: how a backlog reaches the bot."""
    longest = max((len(r.steps) for r in residents), default=0)
    return [(r, r.steps[k]) for k in range(longest) for r in residents if k < len(r.steps)]


# ---- the bot, in-process ---------------------------------------------------------------------


@dataclass
class BenchBot:
    """A running bot under measurement."""

    app: ConciergeApp
    services: Services
    telegram: RecordingRequest
    errors: list[str]
    persistence_busy: Busy


@asynccontextmanager
async def running_bot(
    database_url: str,
    sandbox: Starlette,
    processor: BaseUpdateProcessor | None,
    *,
    sandbox_url: str | None = None,
) -> AsyncIterator[BenchBot]:
    """The real Application (handlers, persistence, job queue) on a recording Bot request;
    vendors are `sandbox` in this process, or the one at `sandbox_url` over loopback HTTP."""
    if sandbox_url is None:
        settings = bench_settings(database_url)
        transport = TimingTransport(httpx.ASGITransport(app=sandbox))
    else:
        settings = bench_settings(database_url, **vendor_urls(sandbox_url))
        transport = TimingTransport(httpx.AsyncHTTPTransport())
    services = Services.open(settings, vendor_transport=transport)
    telegram = RecordingRequest()
    busy = Busy()
    persistence = WatchedPersistence(
        services.storage.sessions, update_interval=settings.persistence_update_interval, busy=busy
    )
    # The recording request stands in for Telegram, so no rate limiter: this measures the bot.
    app = build_application(
        settings,
        services,
        persistence=persistence,
        request=telegram,
        update_processor=processor,
        rate_limiter=False,
    )
    errors: list[str] = []

    async def count_error(update: object, context: Any) -> None:
        errors.append(type(context.error).__name__)

    app.add_error_handler(count_error)
    try:
        async with app:
            await app.start()
            try:
                yield BenchBot(app, services, telegram, errors, busy)
            finally:
                await app.stop()
    finally:
        await services.aclose()


async def feed(bot: BenchBot, timings: Timings, steps: Sequence[tuple[Resident, str]]) -> float:
    """Queues every update at once, waits until all were handled; returns when they were queued.

    Updates are parsed before the clock starts: parsing is the updater's work, not the bot's.
    """
    first_id = 1_000_000
    updates = [
        Update.de_json(resident.payload(first_id + n, step), bot.app.bot)
        for n, (resident, step) in enumerate(steps)
    ]
    for update, (_resident, step) in zip(updates, steps, strict=True):
        timings.steps[update.update_id] = step
    queued = now()
    for update in updates:
        timings.arrivals[update.update_id] = queued
        bot.app.update_queue.put_nowait(update)
    await timings.done.wait()
    return queued
