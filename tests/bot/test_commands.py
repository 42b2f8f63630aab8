"""Each user's command menu shows their role's commands, in their language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from conversations.commands import DEFAULT_COMMANDS, commands_for
from conversations.domain import Actor, Role
from tests.bot.test_account import _follow, _link_url, _log_in, _resident
from tests.support_bot import BotUnderTest, running_bot


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> Any:
    async with running_bot(database_url, sandbox_app) as running:
        yield running


def _names(entries: Any) -> list[str]:
    return [name for name, _ in entries]


def test_each_role_sees_its_own_commands() -> None:
    resident = _names(commands_for(Actor(1, residence_ids=frozenset({"r"}))))
    worker = _names(commands_for(Actor(2, role=Role.WORKER, worker_id="w")))
    manager = _names(commands_for(Actor(3, role=Role.MANAGER, project_ids=frozenset({"p"}))))
    assert "assign" not in resident
    assert "tasks" not in resident
    assert "book" in resident
    assert "tasks" in worker
    assert "assign" not in worker
    assert "book" not in worker
    assert {"tasks", "assign", "repairs_all", "bookings_pending", "alerts"} <= set(manager)
    assert "book" not in manager
    assert "assign" not in _names(DEFAULT_COMMANDS)
    assert "tasks" not in _names(DEFAULT_COMMANDS)


def _chat_menu(bot: BotUnderTest, chat_id: int) -> dict[str, str]:
    """The last command menu set for this chat: command -> description."""
    calls = [
        c
        for c in bot.telegram.sent("setMyCommands")
        if c.params.get("scope") == {"type": "chat", "chat_id": chat_id}
    ]
    assert calls, "no menu was set for this chat"
    assert "language_code" not in calls[-1].params
    return {c["command"]: c["description"] for c in calls[-1].params["commands"]}


async def test_a_linked_resident_gets_a_resident_menu_in_their_language(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=1)
    chat = bot.chat(531, language_code="zh")
    await chat.send("/start")
    await _follow(
        bot, await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    )
    menu = _chat_menu(bot, 531)
    assert menu["book"] == "预约设施"
    assert "assign" not in menu
    await chat.send("/language")
    await chat.press(bot.telegram.button("English"))
    assert _chat_menu(bot, 531)["book"] == "Book an amenity"


async def test_a_manager_invite_gives_the_manager_menu(bot: BotUnderTest) -> None:
    code = await bot.services.invites.create(
        Role.MANAGER,
        project_id="p-1",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
    )
    await bot.chat(532).send(f"/start {code}")
    menu = _chat_menu(bot, 532)
    assert menu["assign"] == "Assign a task"
    assert "book" not in menu


async def test_a_worker_invite_gives_the_worker_menu(bot: BotUnderTest) -> None:
    code = await bot.services.invites.create(
        Role.WORKER,
        worker_id="w-tom",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
    )
    await bot.chat(533).send(f"/start {code}")
    menu = _chat_menu(bot, 533)
    assert "tasks" in menu
    assert "assign" not in menu


async def test_a_manager_who_unlinks_their_home_loses_the_resident_commands(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    code = await bot.services.invites.create(
        Role.MANAGER,
        project_id="p-1",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
    )
    chat = bot.chat(534)
    await chat.send(f"/start {code}")
    person = _resident(sandbox_app, homes=1)
    await chat.send("/repair")  # a manager is offered the link when they act as a resident
    await _follow(
        bot, await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    )
    assert {"book", "assign"} <= set(_chat_menu(bot, 534))
    await chat.send("/unlink")
    await chat.press(bot.telegram.button("Yes, unlink"))
    menu = _chat_menu(bot, 534)
    assert "assign" in menu
    assert "book" not in menu


async def test_everyone_else_gets_the_default_menu_per_language(bot: BotUnderTest) -> None:
    assert bot.app.post_init is not None
    await bot.app.post_init(bot.app)  # what run_polling and the webhook runner call at start
    defaults = [c for c in bot.telegram.sent("setMyCommands") if "scope" not in c.params]
    by_language = {c.params.get("language_code"): c.params["commands"] for c in defaults}
    assert set(by_language) == {None, "zh"}
    assert by_language[None][0] == {"command": "start", "description": "Menu"}
    assert "assign" not in [c["command"] for c in by_language["zh"]]
