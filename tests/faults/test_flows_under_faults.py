"""Every flow under every vendor fault: what must hold (issue 8, "Faults, and what must hold").

Each write a user can make (report a repair, book, cancel a booking, acknowledge, accept and
reopen a task, assign one) is driven through the real application up to the step that writes;
the fault is injected; the user takes that step; then the vendor recovers and the user (or the
job that retries kept writes) carries on. In every case:
- the user got a reply at once, in their language, and a write the vendor did not take is kept
  (or, when even the reads before it failed, the user was asked to try again);
- after recovery the write is at the vendor exactly once, and whoever must hear of it heard
  once (the resident that it went through, the manager or the worker told);
- a write whose answer was lost is looked for before it is sent again: with `timeout` the
  vendor acts after the client gave up (the record exists), with `drop` and `malformed` it
  never acted (it does not), with `lost` it acted and only the answer was dropped; either way
  exactly one record is left.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from bot.errors import APOLOGY
from bot.storage.models import WriteRecord, WriteStatus
from conversations import callbacks
from conversations.domain import Role
from conversations.i18n import tr
from conversations.writes import BookingCancel, BookingCreate, RepairCreate
from sandbox.akubela_seed import GYM
from sandbox.faults import FaultKind, FaultRule, FaultWhen
from tests.conversations.test_tasks import MANAGER_TG, PROJECT, TASK, TOM, TOM_TG, join
from tests.faults.conftest import LATE, READ_TIMEOUT, ClientTimeout, Figures, MovableClock
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot
from tests.support_telegram import Call, Chat

ZONE = ZoneInfo("Asia/Shanghai")
RESIDENT_TG = 901
AKUBELA_COMMANDS = "/akubela/api/v1.0/invoke/open-ability/method/user-commands"
TASKS_PATH = f"/tuya/v1.0/osaas/projects/{PROJECT}/maintenance/tasks"
CREATE_TASK_PATH = f"/tuya/v1.0/osaas/projects/{PROJECT}/maintenance/task"
ALICE_GYM = "b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e01"  # the two-home resident's gym booking
A_1201, B_0803 = "145267896505310002", "145267896505310005"
LOCK_1201, THERMOSTAT_0803 = "0012243300b1", "0012243300e2"
CJK = re.compile(r"[\u4e00-\u9fff]")
RETRY_LABELS = ("Retry", "Send again", "Try again", "重试", "再发", "再试")


def _our_fault(texts: list[str], lang: str) -> bool:
    """Whether any of `texts` is the error handler's apology (whatever its trace id)."""
    apology = re.escape(tr(lang, APOLOGY, trace="TRACEID")).replace("TRACEID", "[0-9a-f]+")
    return any(re.fullmatch(apology, text) for text in texts)


FAULTS = ("burst", "timeout", "rate_limit", "token_expiry", "malformed", "drop", "lost", "outage")


@dataclass
class Run:
    """One flow under one fault: the bot, the sandbox, and where the user is."""

    bot: BotUnderTest
    sandbox: Starlette
    clock: MovableClock
    client_timeout: ClientTimeout
    lang: str
    chat: Chat | None = None
    user: int = 0
    mark: int = 0  # index into the Bot API calls where the faulty step began
    residence_id: str = ""
    done_prefix: str = ""  # how the bot says this write went through, when it ended later
    direct_prefix: str = ""  # how the conversation says it, when it went through at once
    told_directly: int = 0
    after: int = 0  # index into the Bot API calls where the faulty step's replies ended
    tasks_before: set[str] = field(default_factory=set)

    @property
    def akubela(self) -> Any:
        return self.sandbox.state.control.vendors["akubela"]

    @property
    def tuya(self) -> Any:
        return self.sandbox.state.control.vendors["tuya"]

    @property
    def servitly(self) -> Any:
        return self.sandbox.state.control.vendors["servitly"]

    def texts_to(self, telegram_id: int, since: int = 0) -> list[str]:
        """What a user was sent (messages, photos, edits) from call `since` on."""
        return [
            call.text or ""
            for call in self.bot.telegram.calls[since:]
            if call.method in {"sendMessage", "editMessageText", "sendPhoto", "editMessageCaption"}
            and int(call.params.get("chat_id", 0)) == telegram_id
        ]

    def replies(self) -> list[str]:
        """What the acting user saw since the faulty step: messages and pop-up notices."""
        since = self.bot.telegram.calls[self.mark :]
        popups = [
            str(c.params["text"])
            for c in since
            if c.method == "answerCallbackQuery" and c.params.get("text")
        ]
        return self.texts_to(self.user, self.mark) + popups

    def retry_button(self) -> str | None:
        """The retry button of the bot's latest message to the user, if it has one."""
        for call in reversed(self.bot.telegram.calls[self.mark :]):
            if call.method != "sendMessage" and call.method != "editMessageText":
                continue
            if int(call.params.get("chat_id", 0)) != self.user:
                continue
            return _button_like(call, RETRY_LABELS)
        return None


def _button_like(call: Call, labels: tuple[str, ...]) -> str | None:
    for row in call.buttons:
        for button in row:
            if any(label in button["text"] for label in labels) and "callback_data" in button:
                return str(button["callback_data"])
    return None


def _tomorrow_at(hour: int) -> datetime:
    return datetime.combine(datetime.now(ZONE).date() + timedelta(days=1), time(hour), ZONE)


# ---- the flows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """One user write: how to get there, take it, retry it, and count it at the vendor."""

    name: str
    vendor: str  # the path prefix a whole-vendor outage covers
    write_path: str  # the path single faults are aimed at
    operation: str | None  # the kind of write kept when the vendor does not take it
    prepare: Callable[[Run], Awaitable[None]]
    commit: Callable[[Run], Awaitable[None]]
    delivered: Callable[[Run], Awaitable[int]]  # how many times the write is at the vendor
    told: Callable[[Run], int]  # how many times whoever must hear of it heard

    @property
    def deferred(self) -> bool:
        return self.operation is not None


DESCRIPTION = "Bathroom fan rattles loudly, fault test"


async def _resident(run: Run, homes: int = 1) -> Chat:
    run.user = RESIDENT_TG
    run.chat = run.bot.chat(RESIDENT_TG, language_code=run.lang)
    # First contact before linking, as in life: the bot learns the user's language.
    await run.chat.send("/start")
    person = await link_demo_resident(run.bot, run.sandbox, RESIDENT_TG, homes=homes)
    run.residence_id = person["residence_ids"][0]
    return run.chat


def _chat(run: Run) -> Chat:
    assert run.chat is not None
    return run.chat


def _deferred_done_told(run: Run) -> int:
    """How often the resident heard that the deferred write went through (or was done)."""
    return run.told_directly + sum(
        1 for text in run.texts_to(run.user, run.after) if text.startswith(run.done_prefix)
    )


async def _repair_prepare(run: Run) -> None:
    chat = await _resident(run)
    await chat.send("/repair")
    await chat.send(DESCRIPTION)
    await chat.press(callbacks.build("repair", "skip"))
    await chat.press(callbacks.build("repair", "when", "1m"))
    await chat.press(callbacks.build("repair", "ok"))
    await chat.send("+86 138 0000 0002")
    run.done_prefix = tr(run.lang, RepairCreate.done_message).split("{")[0]
    run.direct_prefix = "✅"


async def _repair_commit(run: Run) -> None:
    await _chat(run).press(callbacks.build("repair", "confirm"))


async def _repairs(run: Run) -> int:
    return sum(1 for r in run.akubela._repairs.values() if r.description == DESCRIPTION)


async def _booking_prepare(run: Run) -> None:
    chat = await _resident(run)
    await chat.send("/book gym tomorrow 7pm for 1 hour")
    run.done_prefix = tr(run.lang, BookingCreate.done_message).split("#")[0]
    run.direct_prefix = "✅"


async def _booking_commit(run: Run) -> None:
    await _chat(run).press(callbacks.build("book", "confirm"))


async def _bookings(run: Run) -> int:
    start = _tomorrow_at(19)
    return sum(
        1
        for b in run.akubela._bookings.values()
        if b.residence_id == run.residence_id
        and b.amenity_id == GYM
        and b.start_time == start
        and b.state != "canceled"
    )


async def _cancel_prepare(run: Run) -> None:
    chat = await _resident(run, homes=2)
    await chat.send("/bookings")
    await chat.press(callbacks.build("bookings", "drop", ALICE_GYM))
    run.done_prefix = tr(run.lang, BookingCancel.done_message)
    run.direct_prefix = tr(run.lang, "Done: the booking is cancelled.")


async def _cancel_commit(run: Run) -> None:
    await _chat(run).press(callbacks.build("bookings", "yes"))


async def _cancelled(run: Run) -> int:
    booking = run.akubela._bookings.get(ALICE_GYM)
    return 1 if booking is None or booking.state == "canceled" else 0


async def _staff(run: Run, telegram_id: int) -> Chat:
    def lang(who: int) -> str:
        return run.lang if who == telegram_id else "en"

    await join(run.bot, TOM_TG, Role.WORKER, worker_id=TOM, language_code=lang(TOM_TG))
    await join(
        run.bot, MANAGER_TG, Role.MANAGER, project_id=PROJECT, language_code=lang(MANAGER_TG)
    )
    run.user = telegram_id
    run.chat = run.bot.chat(telegram_id, language_code=run.lang)
    return run.chat


async def _ack_prepare(run: Run) -> None:
    chat = await _staff(run, TOM_TG)
    await chat.send("/tasks")
    await chat.press(callbacks.build("tasks", "open", TASK(7)))


async def _ack_commit(run: Run) -> None:
    await _chat(run).press(callbacks.build("tasks", "ack", TASK(7)))


async def _acknowledged(run: Run) -> int:
    acks = await run.bot.services.storage.task_acknowledgements.get_many([TASK(7)])
    return len(acks)


def _managers_told(run: Run) -> int:
    return sum(1 for text in run.texts_to(MANAGER_TG) if f"#{TASK(7)[-6:]}" in text)


async def _accept_prepare(run: Run) -> None:
    chat = await _staff(run, MANAGER_TG)
    await chat.send("/tasks")


async def _accept_commit(run: Run) -> None:
    await _chat(run).press(callbacks.build("tasks", "accept", TASK(3)))


async def _accepted(run: Run) -> int:
    if str(run.tuya._tasks[TASK(3)].status) != "ACCEPTANCE_COMPLETE":
        return 0
    events = run.servitly._store.events.values()
    return sum(1 for e in events if (e.get("properties") or {}).get("tuyaTaskId") == TASK(3))


def _worker_told(run: Run) -> int:
    return sum(1 for text in run.texts_to(TOM_TG) if f"#{TASK(3)[-6:]}" in text)


REASON = "The sensor is still wet"


async def _reopen_prepare(run: Run) -> None:
    chat = await _staff(run, MANAGER_TG)
    await chat.press(callbacks.build("tasks", "reopen", TASK(3)))


async def _reopen_commit(run: Run) -> None:
    await _chat(run).send(REASON)


async def _reopened(run: Run) -> int:
    return 1 if str(run.tuya._tasks[TASK(3)].status) == "PENDING_MAINTENANCE" else 0


def _worker_told_why(run: Run) -> int:
    return sum(1 for text in run.texts_to(TOM_TG) if REASON in text)


async def _assign_prepare(run: Run) -> None:
    chat = await _staff(run, MANAGER_TG)
    run.tasks_before = set(run.tuya._tasks)
    await chat.send("/assign")
    for action, arg in [
        ("w", TOM),
        ("r", A_1201),
        ("r", B_0803),
        ("rdone", ""),
        ("d", LOCK_1201),
        ("ddone", ""),
        ("d", THERMOSTAT_0803),
        ("ddone", ""),
    ]:
        await chat.press(callbacks.build("assign", action, arg))


async def _assign_commit(run: Run) -> None:
    await _chat(run).press(callbacks.build("assign", "create"))


async def _assigned(run: Run) -> int:
    return sum(
        1
        for task_id, task in run.tuya._tasks.items()
        if task_id not in run.tasks_before and task.worker_id == TOM
    )


def _worker_told_new(run: Run) -> int:
    new = [t for t in run.tuya._tasks if t not in run.tasks_before]
    return sum(1 for text in run.texts_to(TOM_TG) for task_id in new if f"#{task_id[-6:]}" in text)


FLOWS = (
    Flow(
        "repair",
        "/akubela",
        AKUBELA_COMMANDS,
        "akubela.repair.create",
        _repair_prepare,
        _repair_commit,
        _repairs,
        _deferred_done_told,
    ),
    Flow(
        "booking",
        "/akubela",
        AKUBELA_COMMANDS,
        "akubela.booking.create",
        _booking_prepare,
        _booking_commit,
        _bookings,
        _deferred_done_told,
    ),
    Flow(
        "cancel",
        "/akubela",
        AKUBELA_COMMANDS,
        "akubela.booking.cancel",
        _cancel_prepare,
        _cancel_commit,
        _cancelled,
        _deferred_done_told,
    ),
    Flow(
        "acknowledge",
        "/tuya",
        f"{TASKS_PATH}/{TASK(7)}",
        None,
        _ack_prepare,
        _ack_commit,
        _acknowledged,
        _managers_told,
    ),
    Flow(
        "accept",
        "/tuya",
        f"{TASKS_PATH}/{TASK(3)}/acceptance",
        "tuya.task.accept",
        _accept_prepare,
        _accept_commit,
        _accepted,
        _worker_told,
    ),
    Flow(
        "reopen",
        "/tuya",
        f"{TASKS_PATH}/{TASK(3)}/reopen",
        "tuya.task.reopen",
        _reopen_prepare,
        _reopen_commit,
        _reopened,
        _worker_told_why,
    ),
    Flow(
        "assign",
        "/tuya",
        CREATE_TASK_PATH,
        "tuya.task.create",
        _assign_prepare,
        _assign_commit,
        _assigned,
        _worker_told_new,
    ),
)


# ---- faults and recovery ----------------------------------------------------------------------


async def _inject(run: Run, flow: Flow, fault: str, figures: Figures) -> list[FaultRule]:
    """Sets the fault up just before the step that writes."""
    faults = run.sandbox.state.control.faults
    path = flow.write_path
    rules = {
        "burst": lambda: FaultRule(FaultKind.ERROR, path=path, status=503, times=3),
        "timeout": lambda: FaultRule(FaultKind.LATENCY, path=path, latency=LATE, times=1),
        "rate_limit": lambda: FaultRule(FaultKind.RATE_LIMIT, path=path, retry_after=2, times=1),
        "malformed": lambda: FaultRule(FaultKind.MALFORMED, path=path, times=1),
        "drop": lambda: FaultRule(FaultKind.DROP, path=path, times=1),
        "lost": lambda: FaultRule(FaultKind.DROP, path=path, times=1, when=FaultWhen.AFTER),
        "outage": lambda: FaultRule(FaultKind.ERROR, path=flow.vendor, status=503),
    }
    if fault == "token_expiry":
        # Through the control API, as an operator would: every vendor's tokens die at once.
        transport = httpx.ASGITransport(app=run.sandbox)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            answer = await http.post("/_sandbox/expire-tokens", json={})
        assert answer.status_code == 200
        figures.faults["token_expiry"] += 1
        return []
    return [faults.add(rules[fault]())]


async def _run_outbox(run: Run) -> None:
    job_queue = run.bot.app.job_queue
    assert job_queue is not None
    [job] = job_queue.get_jobs_by_name("outbox")
    await job.run(run.bot.app)


async def _writes(run: Run) -> list[WriteRecord]:
    return await run.bot.services.storage.writes.all()


async def _kept(run: Run) -> list[str]:
    """The kinds of the writes kept for later."""
    return [w.kind for w in await _writes(run) if w.status is WriteStatus.PENDING]


async def _retry(run: Run, flow: Flow) -> None:
    """What a user does after being told it did not work: the retry button, else again."""
    data = run.retry_button()
    if data is not None:
        await _chat(run).press(data)
    else:
        await flow.commit(run)


async def _recover(run: Run, flow: Flow) -> None:
    """The vendor is back: kept writes go through, or the user tries again until it is done."""
    run.sandbox.state.control.faults.clear()
    await run.client_timeout.settle()  # a request the client gave up on lands meanwhile
    for _ in range(10):
        if not await _kept(run):
            break
        run.clock.advance(minutes=31)
        await _run_outbox(run)
    for _ in range(4):
        if await flow.delivered(run) >= 1 and flow.told(run) >= 1:
            return
        await _retry(run, flow)


def _in_language(text: str, lang: str) -> bool:
    return bool(CJK.search(text)) if lang == "zh" else not CJK.search(text)


CASES = [
    pytest.param(flow, fault, "zh" if (i + j) % 2 else "en", id=f"{flow.name}-{fault}")
    for i, flow in enumerate(FLOWS)
    for j, fault in enumerate(FAULTS)
]


@pytest.mark.parametrize(("flow", "fault", "lang"), CASES)
async def test_a_flow_under_a_fault_loses_nothing_and_duplicates_nothing(
    flow: Flow,
    fault: str,
    lang: str,
    database_url: str,
    sandbox_app: Starlette,
    bot_clock: MovableClock,
    client_timeout: ClientTimeout,
    figures: Figures,
) -> None:
    async with running_bot(
        database_url, sandbox_app, clock=bot_clock, http_read_timeout=READ_TIMEOUT
    ) as bot:
        run = Run(bot, sandbox_app, bot_clock, client_timeout, lang)
        await flow.prepare(run)
        run.mark = len(bot.telegram.calls)
        rules = await _inject(run, flow, fault, figures)

        await flow.commit(run)

        replies = run.replies()
        run.after = len(bot.telegram.calls)
        assert replies, f"{flow.name} under {fault}: the user got no reply"
        assert all(_in_language(text, lang) for text in replies), replies
        assert not _our_fault(replies, lang), "a fault reached the error handler"
        if flow.deferred:
            kept = await _kept(run)
            # No input lost: went through at once, kept for later, or (when even the reads
            # before the write failed) the user was asked to try again.
            delivered_now = await flow.delivered(run)
            assert delivered_now == 1 or kept == [flow.operation] or not await _writes(run)
            if not kept:
                run.told_directly = sum(
                    1 for text in replies if text.startswith(run.direct_prefix)
                )
        if fault == "outage":
            # Down for minutes: kept writes are retried and the user is not told it failed.
            for _ in range(3):
                run.clock.advance(minutes=5)
                if await _kept(run):
                    heard = len(run.texts_to(run.user))
                    await _run_outbox(run)
                    assert await _kept(run) == [flow.operation]
                    assert len(run.texts_to(run.user)) == heard
                else:
                    await _retry(run, flow)
                assert await flow.delivered(run) == 0

        await _recover(run, flow)

        figures.injected(rules)
        delivered = await flow.delivered(run)
        figures.outcome(flow.name, delivered)
        assert delivered == 1, f"{flow.name} under {fault}: at the vendor {delivered} times"
        assert flow.told(run) == 1, f"{flow.name} under {fault}: told {flow.told(run)} times"
        assert all(w.status is WriteStatus.DONE for w in await _writes(run))
        later = run.replies()
        assert all(_in_language(text, lang) for text in later), later
        assert not _our_fault(later, lang), "a fault reached the error handler"
