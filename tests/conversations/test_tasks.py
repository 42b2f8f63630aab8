"""The task board, as workers and managers live it, against the Tuya and Servitly sandboxes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.errors import AuthError
from api.tuya_models import RoomDeviceRelation, TaskDetail, TaskSummary, Worker
from bot.persistence import DatabasePersistence
from bot.taskboard import task_detail_of, task_of, worker_of
from conversations import callbacks
from conversations.domain import Actor, Role
from conversations.records import Task
from conversations.tasks import (
    board_project,
    maintenance_notes,
    newest_first,
    page_of,
    reason_problem,
    task_details,
    task_status,
    worker_name,
)
from conversations.writes import worker_id_of
from sandbox.faults import FaultKind, FaultRule, FaultWhen
from tests.support_bot import BotUnderTest, run_writes_job, running_bot, vendor_writes

TOM, LI_WEI = "1306411812723001", "1306411812723002"
TOM_TG, LI_TG, MANAGER_TG, STRANGER_TG = 801, 802, 803, 804
PROJECT = "1233823965050001"
TASK = "11123823965053000{:02d}".format  # the sandbox's seed tasks 1..8
TOMS_TASKS = [TASK(7), TASK(5), TASK(3), TASK(1)]  # newest first
ZONE = ZoneInfo("Asia/Shanghai")
TASKS_PATH = f"/tuya/v1.0/osaas/projects/{PROJECT}/maintenance/tasks"


@asynccontextmanager
async def started(
    database_url: str,
    sandbox_app: Starlette,
    sessions: async_sessionmaker[AsyncSession],
    **kw: Any,
) -> AsyncIterator[BotUnderTest]:
    """The bot as in production: persistent conversations, a running job queue (time-outs)."""
    kw.setdefault("persistence", DatabasePersistence(sessions))
    async with running_bot(database_url, sandbox_app, **kw) as bot:
        assert bot.app.job_queue is not None
        await bot.app.job_queue.start()
        try:
            yield bot
        finally:
            await bot.app.job_queue.stop(wait=False)


@pytest.fixture
async def bot(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[BotUnderTest]:
    async with started(database_url, sandbox_app, sessions) as running:
        yield running


async def join(
    bot: BotUnderTest,
    telegram_id: int,
    role: Role,
    *,
    worker_id: str | None = None,
    project_id: str | None = None,
    language_code: str = "en",
) -> None:
    """Makes a worker or a manager the way staff join: an invite and /start <code>."""
    code = await bot.services.invites.create(
        role,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        worker_id=worker_id,
        project_id=project_id,
        community_ids=[1],
    )
    await bot.chat(telegram_id, language_code=language_code).send(f"/start {code}")
    assert "Welcome aboard" in _last(bot) or "欢迎" in _last(bot)
    bot.telegram.clear()


async def staff(bot: BotUnderTest) -> None:
    """Tom and Li Wei as workers, one manager of the Tuya project."""
    await join(bot, TOM_TG, Role.WORKER, worker_id=TOM)
    await join(bot, LI_TG, Role.WORKER, worker_id=LI_WEI)
    await join(bot, MANAGER_TG, Role.MANAGER, project_id=PROJECT)


def _tuya(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["tuya"]


def _servitly(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["servitly"]


def _status(sandbox_app: Starlette, task_id: str) -> str:
    return str(_tuya(sandbox_app)._tasks[task_id].status)


def _last(bot: BotUnderTest) -> str:
    return bot.telegram.last.text or ""


def _opened(bot: BotUnderTest) -> list[str]:
    """The task ids the latest board lists, in order."""
    return [
        press.arg
        for row in bot.telegram.last_buttons()
        for b in row
        if (press := callbacks.parse(b.get("callback_data"))) and press.action == "open"
    ]


def _labels(bot: BotUnderTest) -> list[str]:
    return [b["text"] for row in bot.telegram.last_buttons() for b in row]


def _alerts(bot: BotUnderTest) -> list[str]:
    return bot.telegram.notices()


def _told(bot: BotUnderTest, telegram_id: int) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in bot.telegram.sent("sendMessage")
        if int(c.params.get("chat_id", 0)) == telegram_id
    ]


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("tasks", action, arg)


def _new_events(sandbox_app: Starlette) -> list[dict[str, Any]]:
    """The events the bot wrote (the sandbox seeds others)."""
    events = _servitly(sandbox_app)._store.events.values()
    return [e for e in events if "tuyaTaskId" in (e.get("properties") or {})]


# ---- pure rules ------------------------------------------------------------------------------

WORKERS = [
    worker_of(Worker(worker_id="w1", username="tom@x", nickname="Tom")),
    worker_of(Worker(worker_id="w2", username="li@x", nickname="Li")),
    worker_of(Worker(worker_id="w3", username="li2@x", nickname="Li")),
]


def _task(task_id: str, **fields: Any) -> Task:
    """A task of Tuya's list as the flows see it."""
    return task_of(TaskSummary(task_id=task_id, **fields))


def test_a_task_is_matched_to_its_worker_by_username_then_by_a_unique_nickname() -> None:
    assert worker_id_of(_task("1", worker_username="TOM@x "), WORKERS) == "w1"
    assert worker_id_of(_task("1", worker_nickname="Tom"), WORKERS) == "w1"
    # Two workers share the nickname: the task belongs to nobody we can name.
    assert worker_id_of(_task("1", worker_nickname="Li"), WORKERS) is None
    assert worker_id_of(_task("1", worker_username="gone@x"), WORKERS) is None
    assert worker_id_of(_task("1"), WORKERS) is None


def test_tasks_are_newest_first_and_paged_by_five() -> None:
    base = datetime(2026, 5, 1, tzinfo=UTC)
    tasks = [_task(str(i), gmt_create=base + timedelta(hours=i)) for i in range(7)]
    tasks.append(_task("x"))
    ordered = newest_first(tasks)
    assert [t.id for t in ordered] == ["6", "5", "4", "3", "2", "1", "0", "x"]
    assert [t.id for t in page_of(ordered, 1)[0]] == ["1", "0", "x"]
    assert page_of(ordered, 9)[1:] == (1, 2)
    assert page_of([], 0) == ([], 0, 1)


def test_status_in_words_in_both_languages() -> None:
    awaiting = _task("1", status="PENDING_ACCEPTANCE")
    assert task_status(awaiting, "en") == "⏳ awaiting acceptance"
    assert task_status(awaiting, "zh") == "⏳ 待验收"
    assert task_status(_task("2", status="SOMETHING_NEW"), "en") == "❔ SOMETHING_NEW"


def test_a_manager_of_either_community_project_counts() -> None:
    tuya_manager = Actor(1, Role.MANAGER, project_ids=frozenset({"tuya"}))
    akubela_manager = Actor(2, Role.MANAGER, project_ids=frozenset({"aku"}))
    other = Actor(3, Role.MANAGER, project_ids=frozenset({"elsewhere"}))
    assert board_project(tuya_manager, ["tuya", "aku"]) == "tuya"
    assert board_project(akubela_manager, ["tuya", "aku"]) == "aku"
    assert board_project(other, ["tuya", "aku"]) == "tuya"


@pytest.mark.parametrize(
    ("text", "fine"),
    [
        ("ok", False),
        ("  ...  ", False),
        ("x" * 501, False),
        ("Leak is back", True),
        ("漏水了", True),
    ],
)
def test_reopen_reasons_need_a_few_words(text: str, fine: bool) -> None:
    assert (reason_problem(text) is None) is fine


def test_details_and_the_maintenance_notes_name_rooms_and_devices() -> None:
    task = task_detail_of(
        TaskDetail(
            task_id="42",
            status="PENDING_MAINTENANCE",
            worker_nickname="Tom",
            gmt_create=datetime(2026, 5, 1, 2, 0, tzinfo=UTC),
            room_device_relations=[RoomDeviceRelation(room_id="r1", device_ids=["d1", "d2"])],
        )
    )
    places = [("Block A 1201", ["Smart door lock", "Water leak sensor"])]
    text = task_details(task, places, None, "en", ZONE)
    assert "Task 42" in text
    assert "Status: 🆕 new" in text
    assert "Created: 2026-05-01 10:00" in text
    assert "• Block A 1201: Smart door lock, Water leak sensor" in text
    assert "Acknowledged" not in text
    acked = task_details(task, places, datetime(2026, 5, 1, 3, tzinfo=UTC), "zh", ZONE)
    assert "任务 42" in acked
    assert "2026-05-01 11:00" in acked
    notes = maintenance_notes(task, places, datetime(2026, 5, 2, tzinfo=UTC), ZONE)
    assert "Maintenance task 42" in notes
    assert "Worker: Tom" in notes
    assert "Block A 1201 (Smart door lock, Water leak sensor)" in notes
    assert worker_name(_task("1", worker_username="u@x")) == "u@x"


# ---- workers ---------------------------------------------------------------------------------


async def test_a_worker_sees_only_their_tasks_newest_first(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(TOM_TG)
    await chat.send("/tasks")
    assert _last(bot).startswith("Your maintenance tasks, newest first:")
    assert _opened(bot) == TOMS_TASKS
    assert _labels(bot)[0].startswith("🆕 new · ")
    assert not any(
        "filter" in (b.get("callback_data") or "")
        for row in bot.telegram.last_buttons()
        for b in row
    )


async def test_a_worker_opens_a_task_and_acknowledges_it_and_the_manager_is_told(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(TOM_TG)
    await chat.send("/tasks")
    await chat.press(_press("open", TASK(7)))
    detail = _last(bot)
    assert f"Task {TASK(7)}" in detail
    assert "• Block A lobby: Elevator call panel" in detail
    assert "👍 Acknowledge" in _labels(bot)
    await chat.press(bot.telegram.button("Acknowledge"))
    assert _last(bot).startswith("Thanks! The manager knows you have seen it.")
    assert "👍 Acknowledged:" in _last(bot)
    assert "👍 Acknowledge" not in _labels(bot)
    assert _told(bot, MANAGER_TG) == [f"👍 Tom acknowledged task #{TASK(7)[-6:]} (Block A lobby)."]
    acks = await bot.services.storage.task_acknowledgements.get_many([TASK(7)])
    assert acks[TASK(7)].worker_telegram_id == TOM_TG
    [entry] = await bot.services.storage.audit.recent()
    assert (entry.action, entry.target, entry.telegram_id) == ("task.acknowledge", TASK(7), TOM_TG)
    # Pressing an old Acknowledge again records nothing twice and tells nobody again.
    await chat.press(_press("ack", TASK(7)))
    assert _last(bot).startswith("This task was already acknowledged.")
    assert len(_told(bot, MANAGER_TG)) == 1


async def test_only_a_new_task_can_be_acknowledged(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(TOM_TG)
    await chat.send("/tasks")
    await chat.press(_press("ack", TASK(5)))
    assert _alerts(bot)[-1] == "This task is no longer new, so there is nothing to acknowledge."
    assert await bot.services.storage.task_acknowledgements.get_many([TASK(5)]) == {}


async def test_a_worker_never_sees_or_acts_on_another_workers_task(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(TOM_TG)
    await chat.send("/tasks")
    bot.telegram.clear()
    await chat.press(_press("open", TASK(8)))  # Li Wei's
    assert _alerts(bot) == ["Sorry, that record is not yours."]
    assert bot.telegram.content() == []
    await chat.press(_press("ack", TASK(8)))
    assert _alerts(bot)[-1] == "Sorry, that record is not yours."
    assert await bot.services.storage.task_acknowledgements.get_many([TASK(8)]) == {}
    # A worker's forged Accept is refused too, and the task stays where it was.
    await chat.press(_press("accept", TASK(3)))
    assert _alerts(bot)[-1] == "Sorry, that is not available to you."
    assert _status(sandbox_app, TASK(3)) == "PENDING_ACCEPTANCE"


async def test_someone_who_is_not_staff_gets_no_board(bot: BotUnderTest) -> None:
    chat = bot.chat(STRANGER_TG)
    await chat.send("/tasks")
    assert _last(bot) == "Sorry, that is not available to you."
    await chat.press(_press("open", TASK(1)))
    assert _alerts(bot)[-1] == "Sorry, that is not available to you."


async def test_the_worker_board_in_chinese(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await join(bot, TOM_TG, Role.WORKER, worker_id=TOM, language_code="zh")
    await join(bot, MANAGER_TG, Role.MANAGER, project_id=PROJECT)
    chat = bot.chat(TOM_TG, language_code="zh")
    await chat.send("/tasks")
    assert _last(bot).startswith("您的维修任务（最新的在前）：")
    assert _labels(bot)[0].startswith("🆕 新任务 · ")
    await chat.press(_press("open", TASK(7)))
    assert "状态：🆕 新任务" in _last(bot)
    await chat.press(bot.telegram.button("确认收到"))
    assert _last(bot).startswith("谢谢！管理员已知道您看到了这个任务。")
    # The manager reads English, as their Telegram is.
    assert _told(bot, MANAGER_TG) == [f"👍 Tom acknowledged task #{TASK(7)[-6:]} (Block A lobby)."]


# ---- managers --------------------------------------------------------------------------------


async def test_a_manager_sees_every_task_with_a_status_filter(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/tasks")
    assert _last(bot).startswith("Maintenance tasks (all), newest first:\nPage 1 of 2")
    assert _opened(bot) == [TASK(8), TASK(7), TASK(6), TASK(5), TASK(4)]
    assert "Li Wei" in _labels(bot)[0]
    await chat.press(_press("page", "1"))
    assert _opened(bot) == [TASK(3), TASK(2), TASK(1)]
    await chat.press(_press("filter", "PENDING_ACCEPTANCE"))
    assert _last(bot).startswith("Maintenance tasks (⏳ awaiting acceptance), newest first:")
    assert _opened(bot) == [TASK(4), TASK(3)]
    assert "• ⏳ awaiting acceptance" in _labels(bot)
    await chat.press(_press("filter", "BOGUS"))
    assert _alerts(bot)[-1] == "This button is no longer active."


async def test_accepting_records_the_work_in_servitly_and_tells_the_worker(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/tasks")
    await chat.press(_press("open", TASK(3)))
    assert {"✅ Accept", "🔁 Reopen", "🗑 Delete"} <= set(_labels(bot))
    await chat.press(bot.telegram.button("Accept"))
    assert _status(sandbox_app, TASK(3)) == "ACCEPTANCE_COMPLETE"
    assert _last(bot) == (
        f"✅ Task {TASK(3)} is accepted.\nThe work is recorded in the maintenance log."
    )
    [event] = _new_events(sandbox_app)
    assert event["alertDefinitionId"] == "ad-maintenance"
    assert event["eventSeverity"] == 5
    assert event["locationId"] == "loc-block-a"
    assert "Block A 1201 (Smart door lock, Water leak sensor)" in event["notes"]
    assert "Worker: Tom" in event["notes"]
    assert event["endTimestamp"] >= event["startTimestamp"]
    assert _told(bot, TOM_TG) == [f"✅ Your task #{TASK(3)[-6:]} was accepted."]
    actions = [e.action for e in await bot.services.storage.audit.recent()]
    assert actions == ["maintenance.record", "task.accept"]


async def test_accepting_a_task_that_is_not_awaiting_acceptance_explains_the_refusal(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/tasks")
    await chat.press(_press("accept", TASK(5)))
    assert _last(bot) == (
        f"The task system refused to accept task {TASK(5)}: it is 🛠 in progress, and only "
        "a task awaiting acceptance can be accepted."
    )
    assert _status(sandbox_app, TASK(5)) == "IN_MAINTENANCE"
    assert _new_events(sandbox_app) == []


async def test_an_alerts_accept_button_works_with_no_board_open(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    await bot.chat(MANAGER_TG).press("1:tasks:accept:" + TASK(4))
    assert _status(sandbox_app, TASK(4)) == "ACCEPTANCE_COMPLETE"
    [event] = _new_events(sandbox_app)
    assert event["locationId"] == "loc-block-b"
    assert _told(bot, LI_TG) == [f"✅ Your task #{TASK(4)[-6:]} was accepted."]


async def test_reopen_asks_for_a_reason_and_the_worker_reads_it(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.press("1:tasks:reopen:" + TASK(4))
    assert _last(bot) == (
        f"Why does task {TASK(4)} go back to Li Wei? Type the reason; they will read it."
    )
    await chat.send_sticker()
    assert _last(bot) == "Please type the reason as text, or send /cancel to stop."
    await chat.send("ok")
    assert _last(bot) == "Please give a short reason in words (at least 3 characters)."
    await chat.send("x" * 501)
    assert _last(bot) == "That is too long: please keep the reason under 500 characters."
    assert _status(sandbox_app, TASK(4)) == "PENDING_ACCEPTANCE"
    await chat.send("The thermostat still reads 5 degrees high")
    assert _status(sandbox_app, TASK(4)) == "PENDING_MAINTENANCE"
    assert _last(bot) == f"🔁 Task {TASK(4)} is reopened; Li Wei is told why."
    assert _told(bot, LI_TG) == [
        f"↩️ Task #{TASK(4)[-6:]} was reopened by the manager and needs more work.\n"
        "Reason: The thermostat still reads 5 degrees high"
    ]
    [entry] = await bot.services.storage.audit.recent()
    assert entry.request_summary["reason"] == "The thermostat still reads 5 degrees high"


async def test_a_task_in_progress_cannot_be_reopened(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/tasks")
    await chat.press(_press("reopen", TASK(6)))
    assert _alerts(bot)[-1] == f"Task {TASK(6)} cannot be reopened: it is 🛠 in progress."
    assert _status(sandbox_app, TASK(6)) == "IN_MAINTENANCE"


async def test_delete_asks_first(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/tasks")
    await chat.press(_press("open", TASK(8)))
    await chat.press(bot.telegram.button("Delete"))
    assert _last(bot) == (f"Delete task {TASK(8)} (Li Wei, 🆕 new)? This cannot be undone.")
    await chat.press(_press("delno"))
    assert f"Task {TASK(8)}" in _last(bot)
    assert TASK(8) in _tuya(sandbox_app)._tasks
    await chat.press(_press("del", TASK(8)))
    await chat.press(_press("delyes"))
    assert _last(bot) == f"🗑 Task {TASK(8)} is deleted."
    assert TASK(8) not in _tuya(sandbox_app)._tasks
    # The old confirmation is dead now.
    await chat.press(_press("delyes"))
    assert _alerts(bot)[-1] == "This button is no longer active."


async def test_the_manager_board_in_chinese(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await join(bot, TOM_TG, Role.WORKER, worker_id=TOM)
    await join(bot, MANAGER_TG, Role.MANAGER, project_id=PROJECT, language_code="zh")
    chat = bot.chat(MANAGER_TG, language_code="zh")
    await chat.send("/tasks")
    assert _last(bot).startswith("维修任务（全部），最新的在前：")
    await chat.press(_press("accept", TASK(3)))
    assert _last(bot).startswith(f"✅ 任务 {TASK(3)} 已验收。")
    assert _told(bot, TOM_TG) == [f"✅ Your task #{TASK(3)[-6:]} was accepted."]


# ---- leaving, silence, stale buttons, restarts, outages ---------------------------------------


async def test_cancel_leaves_the_board(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.press("1:menu:tasks")
    assert _last(bot).startswith("Maintenance tasks (all)")
    await chat.press(_press("cancel"))
    assert _last(bot) == "Closed."
    await chat.press(_press("page", "1"))
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."
    await chat.press("1:tasks:reopen:" + TASK(4))
    await chat.send("/cancel")
    assert _last(bot) == "Closed."
    await chat.send("the reason that came too late")
    assert _status(sandbox_app, TASK(4)) == "PENDING_ACCEPTANCE"


async def test_typing_or_odd_presses_on_the_board_change_nothing(bot: BotUnderTest) -> None:
    await staff(bot)
    chat = bot.chat(TOM_TG)
    await chat.send("/tasks")
    await chat.send("hello?")
    # A list takes no typed text: it is read as with no list open (issue 15).
    assert _last(bot).startswith("I did not understand that.")
    await chat.press(_press("zap", "1"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.press("1:tasks:open:not-a-task")
    assert _alerts(bot)[-1] == "That task no longer exists; it may have been deleted meanwhile."


async def test_silence_closes_the_board(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, sessions, conversation_timeout_minutes=0.002
    ) as bot:
        await staff(bot)
        chat = bot.chat(MANAGER_TG)
        await chat.send("/tasks")
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "I stopped waiting" in _last(bot):
                break
        assert "send /tasks to pick up where you left off" in _last(bot)
        await chat.press(_press("page", "1"))
        assert _alerts(bot)[-1].startswith("This button is no longer active.")


async def test_a_restart_while_typing_a_reason_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    persistence = DatabasePersistence(sessions)
    async with started(database_url, sandbox_app, sessions, persistence=persistence) as first:
        await staff(first)
        chat = first.chat(MANAGER_TG)
        await chat.send("/tasks")
        await chat.press(_press("reopen", TASK(3)))
        await first.app.update_persistence()
    persistence = DatabasePersistence(sessions)
    async with started(
        database_url, sandbox_app, sessions, persistence=persistence, telegram=first.telegram
    ) as second:
        await second.chat(MANAGER_TG).send("Leak sensor still offline")
        assert _last(second) == f"🔁 Task {TASK(3)} is reopened; Tom is told why."
        assert _status(sandbox_app, TASK(3)) == "PENDING_MAINTENANCE"


async def test_tuya_down_while_listing_offers_a_retry(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path=TASKS_PATH, status=503))
    chat = bot.chat(MANAGER_TG)
    await chat.send("/tasks")
    assert _last(bot) == "The task system is not answering right now. Please try again soon."
    faults.clear()
    await chat.press(bot.telegram.button("Retry"))
    assert _last(bot).startswith("Maintenance tasks (all)")


KEPT = (
    "The task system is not answering right now. Your decision is kept and will be sent as "
    "soon as it answers; you will hear back here."
)


async def test_tuya_down_at_accept_keeps_the_decision_and_sends_it_later(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path=f"{TASKS_PATH}/{TASK(3)}/acceptance", status=503))
    chat = bot.chat(MANAGER_TG)
    await chat.send("/tasks")
    await chat.press(_press("accept", TASK(3)))
    assert _last(bot) == KEPT
    assert _status(sandbox_app, TASK(3)) == "PENDING_ACCEPTANCE"
    assert _told(bot, TOM_TG) == []
    # Pressed again while it waits: the same decision is not sent twice.
    await chat.press(_press("accept", TASK(3)))
    assert _last(bot) == "⏳ That is already on its way; you will hear back here when it is done."
    [kept] = await vendor_writes(bot)
    assert (kept.kind, kept.status, kept.subject) == (
        "tuya.task.accept",
        "pending",
        f"tuya.task:{TASK(3)}",
    )
    faults.clear()
    await run_writes_job(bot)
    assert _status(sandbox_app, TASK(3)) == "ACCEPTANCE_COMPLETE"
    assert _told(bot, MANAGER_TG)[-2:] == [
        f"✅ Task {TASK(3)} is accepted.",
        "The work is recorded in the maintenance log.",
    ]
    assert _told(bot, TOM_TG) == [f"✅ Your task #{TASK(3)[-6:]} was accepted."]
    assert len(_new_events(sandbox_app)) == 1


async def test_an_accept_whose_answer_is_lost_is_found_not_refused(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    faults = sandbox_app.state.control.faults
    faults.add(
        FaultRule(
            FaultKind.DROP,
            path=f"{TASKS_PATH}/{TASK(3)}/acceptance",
            times=1,
            when=FaultWhen.AFTER,
        )
    )
    await bot.chat(MANAGER_TG).press(_press("accept", TASK(3)))
    assert _status(sandbox_app, TASK(3)) == "ACCEPTANCE_COMPLETE"
    assert _last(bot) == (
        f"✅ Task {TASK(3)} is accepted.\nThe work is recorded in the maintenance log."
    )
    assert _told(bot, TOM_TG) == [f"✅ Your task #{TASK(3)[-6:]} was accepted."]
    [accept, record] = await vendor_writes(bot)
    assert (accept.status, record.status) == ("done", "done")


async def test_a_bot_stopped_between_an_accept_and_its_log_record_still_writes_it_once(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staff(bot)
    journal = bot.services.writes
    real_submit = journal.submit

    async def stops_before_what_follows(
        telegram_id: int, write: Any, *, command_id: str, draft: str | None = None
    ) -> Any:
        if "/" in command_id:  # the log record that follows the accept
            raise RuntimeError("the process stopped here")
        return await real_submit(telegram_id, write, command_id=command_id, draft=draft)

    monkeypatch.setattr(journal, "submit", stops_before_what_follows)
    await bot.chat(MANAGER_TG).press("1:tasks:accept:" + TASK(3))
    assert _status(sandbox_app, TASK(3)) == "ACCEPTANCE_COMPLETE"
    assert _new_events(sandbox_app) == []
    monkeypatch.setattr(journal, "submit", real_submit)
    # Recorded with the accept's end, the log record waits for whoever runs next.
    await run_writes_job(bot)
    await run_writes_job(bot)
    assert len(_new_events(sandbox_app)) == 1
    assert _told(bot, MANAGER_TG)[-1] == (
        f"The work on task {TASK(3)} is recorded in the maintenance log."
    )


async def test_tuya_down_while_reopening_keeps_the_reopen_for_later(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    faults = sandbox_app.state.control.faults
    chat = bot.chat(MANAGER_TG)
    await chat.press("1:tasks:reopen:" + TASK(3))
    faults.add(FaultRule(FaultKind.ERROR, path=f"{TASKS_PATH}/{TASK(3)}/reopen", status=503))
    await chat.send("Sensor still wet")
    assert _last(bot) == KEPT
    assert _status(sandbox_app, TASK(3)) == "PENDING_ACCEPTANCE"
    faults.clear()
    await run_writes_job(bot)
    assert _status(sandbox_app, TASK(3)) == "PENDING_MAINTENANCE"
    assert _told(bot, TOM_TG)[-1].endswith("Reason: Sensor still wet")
    assert _told(bot, MANAGER_TG)[-1] == f"🔁 Task {TASK(3)} is reopened."


async def test_a_reopen_the_bot_may_not_send_keeps_the_reason_to_send_again(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staff(bot)
    board = bot.services.task_board
    real_reopen = board.reopen

    async def refused_once(task_id: str) -> None:
        monkeypatch.setattr(board, "reopen", real_reopen)
        raise AuthError("token refused", vendor="tuya")

    monkeypatch.setattr(board, "reopen", refused_once)
    chat = bot.chat(MANAGER_TG)
    await chat.press("1:tasks:reopen:" + TASK(3))
    await chat.send("Sensor still wet")
    assert _last(bot).endswith("\nYour reason is kept.")
    assert _status(sandbox_app, TASK(3)) == "PENDING_ACCEPTANCE"
    await chat.press(bot.telegram.button("Send again"))
    assert _status(sandbox_app, TASK(3)) == "PENDING_MAINTENANCE"
    assert _told(bot, TOM_TG)[-1].endswith("Reason: Sensor still wet")
    # One write, refused and then sent again under its command id.
    [reopen] = await vendor_writes(bot)
    assert (reopen.status, reopen.attempts) == ("done", 2)


async def test_servitly_down_after_acceptance_keeps_the_record_for_later(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/servitly", status=503))
    await bot.chat(MANAGER_TG).press("1:tasks:accept:" + TASK(3))
    assert _status(sandbox_app, TASK(3)) == "ACCEPTANCE_COMPLETE"
    assert _last(bot) == (
        f"✅ Task {TASK(3)} is accepted.\nThe maintenance log is not answering right now; the "
        "record is kept and will be written as soon as it answers."
    )
    [accepted] = await bot.services.storage.audit.recent()
    assert accepted.action == "task.accept"
    faults.clear()
    await run_writes_job(bot)
    [event] = _new_events(sandbox_app)
    assert event["properties"] == {"tuyaTaskId": TASK(3)}
    assert _told(bot, MANAGER_TG)[-1] == (
        f"The work on task {TASK(3)} is recorded in the maintenance log."
    )
    [record, _accepted] = await bot.services.storage.audit.recent()
    assert (record.action, record.target) == ("maintenance.record", TASK(3))


async def test_the_deprecated_maintenance_works_are_written_when_configured(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, sessions, servitly_use_deprecated_maintenance_works=True
    ) as bot:
        await staff(bot)
        await bot.chat(MANAGER_TG).press("1:tasks:accept:" + TASK(6 - 2))
        [work] = _servitly(sandbox_app)._store.works.values()
        assert work["locationId"] == "loc-block-b"
        assert work["type"] == "MAINTENANCE"
        assert f"Maintenance task {TASK(4)}" in work["description"]
