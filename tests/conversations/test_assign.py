"""/assign, as a manager lives it, against the Tuya sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from api.errors import Unavailable
from bot.persistence import DatabasePersistence
from conversations import callbacks
from conversations.assign import (
    AssignDraft,
    in_list_order,
    page_bounds,
    relations_of,
    toggled,
)
from conversations.domain import Role
from conversations.writes import same_relations
from sandbox.faults import FaultKind, FaultRule
from tests.conversations.test_tasks import (
    LI_TG,
    MANAGER_TG,
    PROJECT,
    TOM,
    TOM_TG,
    _alerts,
    _labels,
    _last,
    _told,
    _tuya,
    join,
    staff,
    started,
)
from tests.support_bot import BotUnderTest, run_writes_job, vendor_writes

A_1201, B_0803 = "145267896505310002", "145267896505310005"
LOCK_1201, AC_1201, THERMOSTAT_0803 = "0012243300b1", "0012243300b2", "0012243300e2"
CREATE_PATH = f"/tuya/v1.0/osaas/projects/{PROJECT}/maintenance/task"

KEPT = (
    "The task system is not answering right now. The new task is kept and will be created as "
    "soon as it answers (or found, if it was created meanwhile); you will hear back here."
)


@pytest.fixture
async def bot(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[BotUnderTest]:
    async with started(database_url, sandbox_app, sessions) as running:
        yield running


def _press(action: str, arg: str = "") -> str:
    return callbacks.build("assign", action, arg)


def _toms_tasks(sandbox_app: Starlette) -> list[Any]:
    return [t for t in _tuya(sandbox_app)._tasks.values() if t.worker_id == TOM]


async def _pick_the_task(bot: BotUnderTest, chat: Any) -> None:
    """Tom; rooms A 1201 and B 0803; the lock and air conditioner, then the thermostat."""
    await chat.press(_press("w", TOM))
    await chat.press(_press("r", B_0803))
    await chat.press(_press("r", A_1201))
    await chat.press(_press("rdone"))
    await chat.press(_press("d", LOCK_1201))
    await chat.press(_press("d", AC_1201))
    await chat.press(_press("ddone"))
    await chat.press(_press("d", THERMOSTAT_0803))
    await chat.press(_press("ddone"))


# ---- pure rules ------------------------------------------------------------------------------


def test_selections_toggle_and_keep_the_vendors_order() -> None:
    assert toggled(["a"], "b") == ["a", "b"]
    assert toggled(["a", "b"], "a") == ["b"]
    assert in_list_order(["c", "a", "zz"], ["a", "b", "c"]) == ["a", "c"]


def test_the_task_covers_the_picked_rooms_with_devices_only() -> None:
    draft = AssignDraft(
        worker_id="w", room_ids=["r1", "r2"], devices={"r1": ["d1"], "r2": [], "r9": ["x"]}
    )
    assert relations_of(draft) == {"r1": ["d1"]}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"r1": ["d1", "d2"]}, {"r1": ["d2", "d1"]}, True),
        ({"r1": ["d1"]}, {"r1": ["d1"], "r2": ["d3"]}, False),
        ({"r1": ["d1"]}, {"r1": ["d2"]}, False),
    ],
)
def test_a_found_task_must_cover_exactly_the_same_devices(
    a: Mapping[str, Sequence[str]], b: Mapping[str, Sequence[str]], same: bool
) -> None:
    assert same_relations(a, b) is same


def test_pages_are_clamped() -> None:
    assert page_bounds(20, 1) == (8, 16, 1)
    assert page_bounds(20, 7) == (16, 20, 2)
    assert page_bounds(0, 0) == (0, 0, 0)


# ---- the flow --------------------------------------------------------------------------------


async def test_a_manager_assigns_a_task_end_to_end_and_the_worker_is_told(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    before = {t.task_id for t in _toms_tasks(sandbox_app)}
    chat = bot.chat(MANAGER_TG)
    await chat.press("1:menu:assign")
    assert _last(bot) == "Who should do the work?"
    assert _labels(bot)[:2] == ["Tom (tom@demo.community)", "Li Wei (liwei@demo.community)"]
    await chat.press(_press("w", TOM))
    assert _last(bot).startswith("Task for Tom (tom@demo.community). Which rooms?")
    await chat.press(_press("r", B_0803))
    await chat.press(_press("r", A_1201))
    assert "☑ Block A 1201" in _labels(bot)
    assert "Next: devices (2)" in _labels(bot)
    await chat.press(_press("rdone"))
    assert _last(bot).startswith("Room 1 of 2: Block A 1201.")
    await chat.press(_press("d", LOCK_1201))
    await chat.press(_press("d", AC_1201))
    await chat.press(_press("ddone"))
    assert _last(bot).startswith("Room 2 of 2: Block B 0803.")
    await chat.press(_press("d", THERMOSTAT_0803))
    await chat.press(_press("ddone"))
    assert _last(bot) == (
        "New task for Tom (tom@demo.community):\n"
        "• Block A 1201: Smart door lock, Air conditioner\n"
        "• Block B 0803: Thermostat"
    )
    await chat.press(_press("create"))
    [new] = [t for t in _toms_tasks(sandbox_app) if t.task_id not in before]
    assert new.relations == [(A_1201, [LOCK_1201, AC_1201]), (B_0803, [THERMOSTAT_0803])]
    assert str(new.status) == "PENDING_MAINTENANCE"
    assert _last(bot).startswith(f"✅ Task {new.task_id} is created.")
    assert _last(bot).endswith("Tom (tom@demo.community) is told here.")
    assert _told(bot, TOM_TG) == [
        f"🧰 New maintenance task #{new.task_id[-6:]} for you.\n🏠 Block A 1201, Block B 0803"
    ]
    assert _told(bot, LI_TG) == []
    [entry] = await bot.services.storage.audit.recent()
    assert (entry.action, entry.target) == ("task.create", new.task_id)
    assert await bot.services.storage.drafts.load(MANAGER_TG, "assign") is None


async def test_every_step_insists_on_a_choice(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/assign")
    await chat.send("Tom please")
    assert _last(bot) == "Please use the buttons above, or send /cancel to stop."
    await chat.press(_press("w", "999"))
    assert _alerts(bot)[-1] == "That worker is not in the list (any more)."
    await chat.press(_press("w", TOM))
    await chat.press(_press("rdone"))
    assert _alerts(bot)[-1] == "Please pick at least one room first."
    await chat.press(_press("r", "145267896505399999"))
    assert _alerts(bot)[-1] == "That room is not in the list (any more)."
    await chat.send_sticker()
    assert _last(bot) == "Please use the buttons above, or send /cancel to stop."
    await chat.press(_press("r", A_1201))
    await chat.press(_press("r", B_0803))
    await chat.press(_press("r", B_0803))  # picked, then dropped again
    await chat.press(_press("rdone"))
    assert _last(bot).startswith("Room 1 of 1: Block A 1201.")
    await chat.press(_press("ddone"))
    assert _alerts(bot)[-1] == "Please pick at least one device in this room."
    await chat.press(_press("d", THERMOSTAT_0803))  # a device of another room
    assert _alerts(bot)[-1] == "That device is not in this room (any more)."
    await chat.press(_press("create"))
    assert _alerts(bot)[-1] == "This button is no longer active."
    await chat.press(_press("d", LOCK_1201))
    await chat.press(_press("ddone"))
    await chat.press(_press("change"))
    assert _last(bot).startswith("Task for Tom")
    assert "☑ Block A 1201" in _labels(bot)


async def test_back_buttons_walk_the_steps_back(bot: BotUnderTest) -> None:
    await staff(bot)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/assign")
    await chat.press(_press("w", TOM))
    await chat.press(_press("r", A_1201))
    await chat.press(_press("r", B_0803))
    await chat.press(_press("rdone"))
    await chat.press(_press("d", LOCK_1201))
    await chat.press(_press("ddone"))
    await chat.press(_press("dback"))
    assert _last(bot).startswith("Room 1 of 2: Block A 1201.")
    assert "☑ Smart door lock" in _labels(bot)
    await chat.press(_press("dback"))
    assert _last(bot).startswith("Task for Tom")
    await chat.press(_press("rback"))
    assert _last(bot) == "Who should do the work?"


async def test_only_managers_assign(bot: BotUnderTest) -> None:
    await staff(bot)
    chat = bot.chat(TOM_TG)
    await chat.send("/assign")
    assert _last(bot) == "Sorry, that is not available to you."
    await chat.press(_press("w", TOM))
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."


async def test_cancel_creates_nothing(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await staff(bot)
    count = len(_tuya(sandbox_app)._tasks)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/assign")
    await _pick_the_task(bot, chat)
    await chat.press(_press("cancel"))
    assert _last(bot) == "Cancelled. Nothing was sent."
    await chat.press(_press("create"))
    assert _alerts(bot)[-1] == "This button is no longer active. Send /start for the menu."
    assert len(_tuya(sandbox_app)._tasks) == count


async def test_assign_in_chinese(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await join(bot, TOM_TG, Role.WORKER, worker_id=TOM, language_code="zh")
    await join(bot, MANAGER_TG, Role.MANAGER, project_id=PROJECT, language_code="zh")
    chat = bot.chat(MANAGER_TG, language_code="zh")
    await chat.send("/assign")
    assert _last(bot) == "由谁来做这项工作？"
    await _pick_the_task(bot, chat)
    assert _last(bot).startswith("给 Tom (tom@demo.community) 的新任务：")
    await chat.press(_press("create"))
    assert _last(bot).startswith("✅ 任务 ")
    [told] = _told(bot, TOM_TG)
    assert told.startswith("🧰 您有新的维修任务 #")


async def test_a_create_that_did_not_happen_is_looked_for_then_tried_again(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staff(bot)
    count = len(_tuya(sandbox_app)._tasks)
    board = bot.services.task_board
    real_create = board.create
    calls: list[str] = []

    async def fails_once(worker_id: str, rooms: Any) -> str:
        calls.append(worker_id)
        if len(calls) == 1:
            raise Unavailable("read timed out", vendor="tuya", outcome_unknown=True)
        return await real_create(worker_id, rooms)

    monkeypatch.setattr(board, "create", fails_once)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/assign")
    await _pick_the_task(bot, chat)
    await chat.press(_press("create"))
    assert _last(bot) == KEPT
    assert len(_tuya(sandbox_app)._tasks) == count
    await run_writes_job(bot)
    assert len(_tuya(sandbox_app)._tasks) == count + 1
    assert len(calls) == 2
    assert _told(bot, MANAGER_TG)[-1].startswith("✅ Task ")
    [told] = _told(bot, TOM_TG)
    assert told.startswith("🧰 New maintenance task #")


async def test_tuya_down_at_create_checks_before_trying_again(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    count = len(_tuya(sandbox_app)._tasks)
    chat = bot.chat(MANAGER_TG)
    await chat.send("/assign")
    await _pick_the_task(bot, chat)
    faults = sandbox_app.state.control.faults
    # The create path is a prefix of the list's, so both fail: nothing is sent.
    faults.add(FaultRule(FaultKind.ERROR, path=CREATE_PATH, status=503))
    await chat.press(_press("create"))
    assert _last(bot) == KEPT
    [kept] = await vendor_writes(bot)
    assert (kept.status, kept.maybe_sent) == ("pending", False)
    assert await bot.services.storage.drafts.load(MANAGER_TG, "assign") is None
    faults.clear()
    await run_writes_job(bot)
    assert _told(bot, MANAGER_TG)[-1].startswith("✅ Task ")
    assert len(_tuya(sandbox_app)._tasks) == count + 1


async def test_a_create_whose_answer_is_lost_is_found_not_repeated(
    bot: BotUnderTest, sandbox_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    await staff(bot)
    count = len(_tuya(sandbox_app)._tasks)
    board = bot.services.task_board
    real_create = board.create

    async def create_then_lose_the_answer(worker_id: str, rooms: Any) -> str:
        await real_create(worker_id, rooms)
        raise Unavailable("read timed out", vendor="tuya", outcome_unknown=True)

    monkeypatch.setattr(board, "create", create_then_lose_the_answer)
    before = {t.task_id for t in _toms_tasks(sandbox_app)}
    chat = bot.chat(MANAGER_TG)
    await chat.send("/assign")
    await _pick_the_task(bot, chat)
    await chat.press(_press("create"))
    [new] = [t for t in _toms_tasks(sandbox_app) if t.task_id not in before]
    assert len(_tuya(sandbox_app)._tasks) == count + 1
    assert _last(bot).startswith(f"✅ Task {new.task_id} is created.")
    [told] = _told(bot, TOM_TG)
    assert f"#{new.task_id[-6:]}" in told


async def test_tuya_down_while_listing_workers_offers_a_retry(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await staff(bot)
    faults = sandbox_app.state.control.faults
    faults.add(FaultRule(FaultKind.ERROR, path="/tuya/v1.0/osaas/construction", status=503))
    chat = bot.chat(MANAGER_TG)
    await chat.send("/assign")
    assert _last(bot) == "The task system is not answering right now. Please try again soon."
    faults.clear()
    await chat.press(bot.telegram.button("Retry"))
    assert _last(bot) == "Who should do the work?"


async def test_silence_ends_assign(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with started(
        database_url, sandbox_app, sessions, conversation_timeout_minutes=0.002
    ) as bot:
        await staff(bot)
        chat = bot.chat(MANAGER_TG)
        await chat.send("/assign")
        for _ in range(50):
            await asyncio.sleep(0.02)
            if "I stopped waiting" in _last(bot):
                break
        assert "send /assign to pick up where you left off" in _last(bot)
        await chat.press(_press("w", TOM))
        assert _alerts(bot)[-1].startswith("This button is no longer active.")


async def test_a_restart_in_the_middle_finishes_on_the_second_app(
    database_url: str, sandbox_app: Starlette, sessions: async_sessionmaker[AsyncSession]
) -> None:
    persistence = DatabasePersistence(sessions)
    async with started(database_url, sandbox_app, sessions, persistence=persistence) as first:
        await staff(first)
        chat = first.chat(MANAGER_TG)
        await chat.send("/assign")
        await chat.press(_press("w", TOM))
        await chat.press(_press("r", A_1201))
        await chat.press(_press("rdone"))
        await chat.press(_press("d", LOCK_1201))
        await first.app.update_persistence()
    count = len(_tuya(sandbox_app)._tasks)
    persistence = DatabasePersistence(sessions)
    async with started(
        database_url, sandbox_app, sessions, persistence=persistence, telegram=first.telegram
    ) as second:
        chat = second.chat(MANAGER_TG)
        await chat.press(_press("ddone"))
        assert _last(second) == (
            "New task for Tom (tom@demo.community):\n• Block A 1201: Smart door lock"
        )
        await chat.press(_press("create"))
        assert _last(second).startswith("✅ Task ")
        assert len(_tuya(sandbox_app)._tasks) == count + 1
