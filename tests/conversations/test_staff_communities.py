"""Staff of two communities, as they live it against the sandbox's two projects: Garden Court
(Shanghai, 1) and Marina Bay (Singapore, 2). Morgan manages both, each other manager one; every
staff view and alert covers only the asker's communities and names the community where they
serve several."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette

from conversations import callbacks
from conversations.domain import Role
from conversations.records import BookingState
from sandbox.faults import FaultKind, FaultRule
from sandbox.tuya import MARINA_DEVICES, MARINA_PROJECT, MARINA_ROOMS, TOM
from tests.support_bot import (
    BotUnderTest,
    keep_demo_communities,
    link_demo_resident,
    running_bot,
)
from tests.support_telegram import Call

MORGAN, GARDEN_MANAGER, MARINA_MANAGER, TOM_TG = 3001, 3002, 3003, 2001
GRACE, BOB = 1101, 1002  # residents of Marina Bay and of Garden Court
AIRCON = "Aircon drips onto the floor."  # Marina Bay's one repair
MARINA_ROOM = MARINA_ROOMS[0][0]
MARINA_TASKS = f"/tuya/v1.0/osaas/projects/{MARINA_PROJECT}"


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> AsyncIterator[BotUnderTest]:
    async with running_bot(database_url, sandbox_app) as running:
        await keep_demo_communities(running, sandbox_app)
        yield running


async def join(
    bot: BotUnderTest,
    telegram_id: int,
    role: Role,
    communities: list[int],
    *,
    language: str = "en",
    worker_id: str | None = None,
) -> None:
    """Staff join as they do: an invite naming their communities, and /start <code>."""
    code = await bot.services.invites.create(
        role,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        worker_id=worker_id,
        community_ids=communities,
    )
    await bot.chat(telegram_id, language_code=language).send(f"/start {code}")
    assert "欢迎" in _last_to(bot, telegram_id) or "Welcome" in _last_to(bot, telegram_id)


async def staff(bot: BotUnderTest, *, morgan_language: str = "en") -> None:
    await join(bot, MORGAN, Role.MANAGER, [1, 2], language=morgan_language)
    await join(bot, GARDEN_MANAGER, Role.MANAGER, [1])
    await join(bot, MARINA_MANAGER, Role.MANAGER, [2])
    await join(bot, TOM_TG, Role.WORKER, [1], worker_id=TOM)
    bot.telegram.clear()


def _to(bot: BotUnderTest, telegram_id: int) -> list[Call]:
    return [c for c in bot.telegram.replies() if int(c.params.get("chat_id", 0)) == telegram_id]


def _last_to(bot: BotUnderTest, telegram_id: int) -> str:
    return _to(bot, telegram_id)[-1].text or ""


def _labels(call: Call) -> list[str]:
    return [button["text"] for row in call.buttons for button in row]


def _lines(text: str) -> list[str]:
    """The item lines of a list (they carry " · " between their parts)."""
    return [line for line in text.splitlines() if " · " in line]


async def _poll(bot: BotUnderTest) -> None:
    assert bot.app.job_queue is not None
    (job,) = bot.app.job_queue.get_jobs_by_name("alerts")
    await job.run(bot.app)


async def _report(bot: BotUnderTest, resident: int, description: str) -> None:
    """A resident reports a repair straight at Akubela (as in its own app)."""
    desk = await bot.services.resident_desk(resident)
    assert desk is not None
    start = datetime.now(UTC) + timedelta(days=2)
    await desk.report_repair(
        start=start,
        finish=start + timedelta(hours=2),
        description=description,
        contact="+65 8000 0001",
        command_id=f"staff-test-{resident}-{description}",
    )


# ---- /whoami and the invite's question ---------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_whoami_names_the_communities_not_their_projects(
    bot: BotUnderTest, sandbox_app: Starlette, language: str
) -> None:
    await link_demo_resident(bot, sandbox_app, GRACE, email="grace@marina.demo")
    await staff(bot, morgan_language=language)
    marina, garden = ("滨海湾", "花园阁") if language == "zh" else ("Marina Bay", "Garden Court")
    serve, home = (
        ("您服务的社区：", "社区：")
        if language == "zh"
        else ("Communities you serve: ", "Community: ")
    )
    projects = [c.akubela_project_id for c in bot.services.communities()]
    projects += [c.tuya_project_id for c in bot.services.communities()]

    await bot.chat(MORGAN, language_code=language).send("/whoami")
    assert f"{serve}{garden}, {marina}" in _last_to(bot, MORGAN).splitlines()
    await bot.chat(MARINA_MANAGER).send("/whoami")
    assert "Communities you serve: Marina Bay" in _last_to(bot, MARINA_MANAGER).splitlines()
    await bot.chat(TOM_TG).send("/whoami")
    assert "Communities you serve: Garden Court" in _last_to(bot, TOM_TG).splitlines()
    await bot.chat(GRACE, language_code=language).send("/language")
    await bot.chat(GRACE).press(callbacks.build("acct", "lang", language))
    await bot.chat(GRACE).send("/whoami")
    assert f"{home}{marina}" in _last_to(bot, GRACE).splitlines()
    said = "\n".join(c.text or "" for c in bot.telegram.replies())
    assert not [p for p in projects if p and p in said]


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_manager_asked_before_becoming_a_worker_hears_the_communities_named(
    bot: BotUnderTest, language: str
) -> None:
    await staff(bot, morgan_language=language)
    code = await bot.services.invites.create(
        Role.WORKER,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        worker_id=TOM,
        community_ids=[2],
    )
    await bot.chat(MORGAN, language_code=language).send(f"/start {code}")
    question = _last_to(bot, MORGAN)
    if language == "zh":
        assert "您将不再管理花园阁, 滨海湾，物业经理提醒也会停止。" in question
    else:
        assert "You will stop managing Garden Court, Marina Bay, and manager alerts stop." in (
            question
        )
    assert not any(c.akubela_project_id in question for c in bot.services.communities())


async def test_a_manager_of_another_zones_community_reads_its_times(bot: BotUnderTest) -> None:
    # Staff used to read the deployment's first community's zone whatever they served.
    await staff(bot)
    await bot.chat(MARINA_MANAGER).send("/whoami")
    assert "Time zone: Asia/Singapore" in _last_to(bot, MARINA_MANAGER).splitlines()
    await bot.chat(TOM_TG).send("/whoami")
    assert "Time zone: Asia/Shanghai" in _last_to(bot, TOM_TG).splitlines()
    await bot.chat(MORGAN).send("/whoami")
    assert "Time zone: Asia/Shanghai" in _last_to(bot, MORGAN).splitlines()


# ---- /repairs_all ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_manager_of_both_sees_both_named_and_picks_one(
    bot: BotUnderTest, language: str
) -> None:
    await staff(bot, morgan_language=language)
    marina, garden = ("滨海湾", "花园阁") if language == "zh" else ("Marina Bay", "Garden Court")
    chat = bot.chat(MORGAN, language_code=language)
    await chat.send("/repairs_all")
    listed = _to(bot, MORGAN)[-1]
    lines = _lines(listed.text or "")
    # Newest first across both: Marina Bay's aircon, then Garden Court's, each named.
    assert lines[0].startswith(f"🏘 {marina} · ")
    assert all(line.startswith(f"🏘 {garden} · ") for line in lines[1:])
    everything = "全部社区" if language == "zh" else "All communities"
    assert [everything, garden, marina] == [
        label.removeprefix("• ") for label in _labels(listed) if "#" not in label
    ][-4:-1]

    await chat.press(callbacks.build("repairs_all", "community", "2"))
    [line] = _lines(_last_to(bot, MORGAN))
    assert line.startswith(f"🏘 {marina} · ")
    assert AIRCON in line or "Aircon drips" in line
    await chat.press(callbacks.build("repairs_all", "community", "1"))
    lines = _lines(_last_to(bot, MORGAN))
    assert len(lines) == 5
    assert all(line.startswith(f"🏘 {garden} · ") for line in lines)


async def test_a_manager_of_one_community_sees_only_it_unnamed(bot: BotUnderTest) -> None:
    await staff(bot)
    await bot.chat(MARINA_MANAGER).send("/repairs_all")
    listed = _to(bot, MARINA_MANAGER)[-1]
    [line] = _lines(listed.text or "")
    assert "Aircon drips" in line
    assert "🏘" not in (listed.text or "")
    assert "All communities" not in _labels(listed)

    chat = bot.chat(GARDEN_MANAGER)
    await chat.send("/repairs_all")
    await chat.press(callbacks.build("repairs_all", "page", "1"))  # the second, last page
    seen = "\n".join(c.text or "" for c in _to(bot, GARDEN_MANAGER))
    assert "Aircon" not in seen
    assert "🏘" not in seen


# ---- /bookings_pending ---------------------------------------------------------------------


async def test_bookings_waiting_are_gathered_from_the_askers_communities_only(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    await link_demo_resident(bot, sandbox_app, GRACE, email="grace@marina.demo")
    await link_demo_resident(bot, sandbox_app, BOB, email="bob@demo.community")
    await staff(bot)
    bob = await bot.services.resident_desk(BOB)
    assert bob is not None
    [waiting] = [b for b in await bob.bookings() if b.state is BookingState.PENDING]

    await bot.chat(MORGAN).send("/bookings_pending")
    [line] = [line for line in _last_to(bot, MORGAN).splitlines() if line.startswith("• ")]
    assert line.startswith("• 🏘 Garden Court · Meeting room")
    await bot.chat(GARDEN_MANAGER).send("/bookings_pending")
    assert "• Meeting room" in _last_to(bot, GARDEN_MANAGER)
    assert "🏘" not in _last_to(bot, GARDEN_MANAGER)

    await bot.chat(MARINA_MANAGER).send("/bookings_pending")
    assert _last_to(bot, MARINA_MANAGER).startswith("⏳ No bookings are waiting for approval.")
    assert waiting.id not in _last_to(bot, MARINA_MANAGER)
    # Pressing the other community's ids: tests/hostile/test_authorisation.py.


# ---- /assign and /tasks ---------------------------------------------------------------------


async def _assign_in_marina(bot: BotUnderTest) -> str:
    """Morgan gives Tom a task at Marina Bay through /assign; the new task's id."""
    chat = bot.chat(MORGAN)
    await chat.send("/assign")
    assert _last_to(bot, MORGAN).startswith("In which community is the work?")
    assert _labels(_to(bot, MORGAN)[-1])[:2] == ["Garden Court", "Marina Bay"]
    await chat.press(callbacks.build("assign", "community", "2"))
    assert _last_to(bot, MORGAN).startswith("🏘 Marina Bay\nWho should do the work?")
    await chat.press(callbacks.build("assign", "w", TOM))
    rooms = [label for label in _labels(_to(bot, MORGAN)[-1]) if label[:1] in "☐☑"]
    assert rooms == [f"☐ {room[1]}" for room in MARINA_ROOMS]
    await chat.press(callbacks.build("assign", "r", MARINA_ROOM))
    await chat.press(callbacks.build("assign", "rdone"))
    await chat.press(callbacks.build("assign", "d", MARINA_DEVICES[0][0]))
    await chat.press(callbacks.build("assign", "ddone"))
    await chat.press(callbacks.build("assign", "create"))
    assert "is created" in _last_to(bot, MORGAN)
    garden = {t.id for t in await bot.services.task_board_of(1).tasks()}
    [made] = [t.id for t in await bot.services.task_board_of(2).tasks() if t.id not in garden]
    return made


async def test_tasks_are_assigned_listed_and_refused_by_community(bot: BotUnderTest) -> None:
    await staff(bot)
    task_id = await _assign_in_marina(bot)
    assert task_id not in {t.id for t in await bot.services.task_board_of(1).tasks()}

    await bot.chat(MARINA_MANAGER).send("/tasks")
    listed = _to(bot, MARINA_MANAGER)[-1]
    assert [label for label in _labels(listed) if "#" in label] == [
        label for label in _labels(listed) if task_id[-6:] in label
    ]
    assert len([label for label in _labels(listed) if "#" in label]) == 1

    await bot.chat(MORGAN).send("/tasks")
    names = {label.split(" · ")[0] for label in _labels(_to(bot, MORGAN)[-1]) if "#" in label}
    assert names == {"Garden Court", "Marina Bay"}

    # Pressing the other community's tasks: tests/hostile/test_authorisation.py.


# ---- alerts --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_alerts_reach_the_communitys_managers_labelled_for_the_one_of_both(
    bot: BotUnderTest, sandbox_app: Starlette, language: str
) -> None:
    await link_demo_resident(bot, sandbox_app, GRACE, email="grace@marina.demo")
    await link_demo_resident(bot, sandbox_app, BOB, email="bob@demo.community")
    await staff(bot, morgan_language=language)
    await _poll(bot)  # the baseline
    assert bot.telegram.sent("sendMessage") == []

    await _report(bot, GRACE, "Balcony door sticks")
    await _report(bot, BOB, "Hallway light is out")
    await _poll(bot)

    [marina_only] = _to(bot, MARINA_MANAGER)
    assert (marina_only.text or "").startswith("🆕 New repair #")
    assert "Balcony door sticks" in (marina_only.text or "")
    [garden_only] = _to(bot, GARDEN_MANAGER)
    assert "Hallway light is out" in (garden_only.text or "")
    assert "🏘" not in (garden_only.text or "")
    by_text = {(c.text or "").split("\n")[0]: c.text or "" for c in _to(bot, MORGAN)}
    marina, garden = ("滨海湾", "花园阁") if language == "zh" else ("Marina Bay", "Garden Court")
    assert set(by_text) == {f"🏘 {marina}", f"🏘 {garden}"}
    assert "Balcony door sticks" in by_text[f"🏘 {marina}"]
    assert "Hallway light is out" in by_text[f"🏘 {garden}"]
    # Tom works at Garden Court only: Marina Bay's news is not his.
    assert _to(bot, TOM_TG) == []


async def test_a_slow_community_delays_no_other(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    await link_demo_resident(bot, sandbox_app, BOB, email="bob@demo.community")
    await staff(bot)
    await _poll(bot)
    faults = sandbox_app.state.control.faults
    # Marina Bay's task board does not answer at all (in-process, nothing times it out).
    faults.add(FaultRule(FaultKind.LATENCY, path=MARINA_TASKS, latency=3600))
    await _report(bot, BOB, "Hallway light is out")

    polling = asyncio.create_task(_poll(bot))

    async def garden_told() -> None:
        while not _to(bot, GARDEN_MANAGER):
            assert not polling.done(), "the poll ended before Garden Court's alert went out"
            await asyncio.sleep(0.01)

    # Garden Court's alert goes out while Marina Bay's round still waits (the bound only keeps
    # a broken watcher from hanging the test).
    await asyncio.wait_for(garden_told(), timeout=120)
    assert not polling.done()
    assert "Hallway light is out" in _last_to(bot, GARDEN_MANAGER)
    assert _last_to(bot, MORGAN).startswith("🏘 Garden Court\n🆕 New repair")
    polling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await polling
    faults.clear()


async def test_a_failing_community_stops_no_other(
    bot: BotUnderTest, sandbox_app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    await link_demo_resident(bot, sandbox_app, BOB, email="bob@demo.community")
    await staff(bot)
    await _poll(bot)
    marina_before = await bot.services.storage.vendor_states.get_many("tuya", "task")
    sandbox_app.state.control.faults.add(FaultRule(FaultKind.ERROR, path=MARINA_TASKS, status=503))
    await _report(bot, BOB, "Hallway light is out")
    with caplog.at_level(logging.INFO):
        await _poll(bot)
    assert "Hallway light is out" in _last_to(bot, GARDEN_MANAGER)
    assert "Hallway light is out" in _last_to(bot, MORGAN)
    messages = [record.getMessage() for record in caplog.records]
    assert any("Tuya task list of community 2 failed (Unavailable)" in m for m in messages)
    assert not any("of community 1 failed" in m for m in messages)
    # Nothing of Marina Bay's was taken for gone.
    after = await bot.services.storage.vendor_states.get_many("tuya", "task")
    assert {k: v.state for k, v in after.items()} == {k: v.state for k, v in marina_before.items()}
