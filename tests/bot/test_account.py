"""Linking an Akubela account, invites, and the account commands, as a user lives them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from bot.storage.models import Role
from sandbox.core import Clock
from tests.support_bot import BotUnderTest, running_bot
from tests.support_telegram import Chat


@pytest.fixture
async def bot(database_url: str, sandbox_app: Starlette) -> Any:
    async with running_bot(database_url, sandbox_app) as running:
        yield running


def _demo(sandbox_app: Starlette) -> dict[str, Any]:
    info: dict[str, Any] = sandbox_app.state.control.vendors["akubela"].demo_info()
    return info


def _resident(sandbox_app: Starlette, *, homes: int) -> dict[str, Any]:
    return next(r for r in _demo(sandbox_app)["residents"] if len(r["residence_ids"]) == homes)


def _link_url(bot: BotUnderTest) -> str:
    for call in reversed(bot.telegram.replies()):
        for row in call.buttons:
            for button in row:
                if "url" in button:
                    return str(button["url"])
    raise AssertionError("no login link was offered")


async def _log_in(sandbox_app: Starlette, login_url: str, email: str, password: str) -> str:
    """Plays the browser on the sandbox's login page; returns the redirect back to the bot."""
    parts = urlsplit(login_url)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox_app), base_url=f"{parts.scheme}://{parts.netloc}"
    ) as browser:
        page = await browser.get(f"{parts.path}?{parts.query}")
        assert page.status_code == 200
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        answer = await browser.post(
            parts.path, data=query | {"email": email, "password": password}
        )
    assert answer.status_code == 302
    return answer.headers["location"]


async def _follow(bot: BotUnderTest, redirect: str) -> httpx.Response:
    return await bot.complete_login(redirect)


async def test_a_new_resident_is_offered_a_login_link(bot: BotUnderTest) -> None:
    await bot.chat(501).send("/start")
    texts = [call.text or "" for call in bot.telegram.replies()]
    assert any("Concierge" in t for t in texts)
    url = _link_url(bot)
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8081/oauth/akubela/callback"]
    assert query["state"][0]


async def test_linking_end_to_end_with_one_residence(
    bot: BotUnderTest, sandbox_app: Starlette, database_url: str
) -> None:
    person = _resident(sandbox_app, homes=1)
    chat = bot.chat(502)
    await chat.send("/start")
    redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    page = await _follow(bot, redirect)
    assert page.status_code == 200
    assert "linked" in page.text
    assert f"Your Akubela account {person['email']} is linked" in (bot.telegram.last.text or "")
    assert bot.telegram.button("Report a repair")

    link = await bot.services.accounts.resident(502)
    assert link is not None
    assert link.residence_id == person["residence_ids"][0]
    # Tokens at rest are encrypted: the raw row holds no token the sandbox issued.
    holder = bot.services.linker.tokens_for(link)
    assert holder is not None
    assert holder.tokens is not None
    plain = holder.tokens.access_token.get_secret_value()
    async with bot.services.storage.engine.connect() as connection:
        raw = (await connection.execute(text("SELECT * FROM resident_links"))).all()
    assert plain not in repr(raw)

    await chat.send("/whoami")
    assert person["email"] in (bot.telegram.last.text or "")


async def test_the_same_login_link_cannot_be_used_twice(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=1)
    await bot.chat(503).send("/start")
    url = _link_url(bot)
    redirect = await _log_in(sandbox_app, url, person["email"], person["password"])
    assert (await _follow(bot, redirect)).status_code == 200
    # A replayed state with a fresh code from another login is refused.
    second = await _log_in(sandbox_app, url, person["email"], person["password"])
    replay = await _follow(bot, second)
    assert replay.status_code == 400
    assert "already used" in replay.text


async def test_a_forged_or_expired_state_is_refused(
    database_url: str, sandbox_app: Starlette
) -> None:
    moments = [datetime.now(UTC)]

    async with running_bot(database_url, sandbox_app) as bot:
        bot.services.linker._clock = lambda: moments[-1]
        await bot.chat(504).send("/start")
        url = _link_url(bot)
        async with bot.web() as web:
            forged = await web.get("/oauth/akubela/callback", params={"code": "x", "state": "abc"})
        assert forged.status_code == 400
        person = _resident(sandbox_app, homes=1)
        redirect = await _log_in(sandbox_app, url, person["email"], person["password"])
        moments.append(moments[0] + timedelta(hours=1))
        late = await _follow(bot, redirect)
        assert late.status_code == 400
        assert await bot.services.accounts.resident(504) is None


async def test_declined_login_says_so(bot: BotUnderTest) -> None:
    async with bot.web() as web:
        page = await web.get("/oauth/akubela/callback", params={"error": "access_denied"})
    assert page.status_code == 400
    assert "cancelled" in page.text
    assert "取消" in page.text


async def test_two_residences_pick_one_and_switch(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=2)
    chat = bot.chat(505)
    await chat.send("/start")
    redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    await _follow(bot, redirect)
    assert "Which residence" in (bot.telegram.last.text or "")
    second = person["residence_ids"][1]
    choice = next(
        b["callback_data"]
        for row in bot.telegram.last.buttons
        for b in row
        if b["callback_data"].endswith(second)
    )
    await chat.press(choice)
    assert "you are now using" in (bot.telegram.last.text or "")
    link = await bot.services.accounts.resident(505)
    assert link is not None
    assert link.residence_id == second

    # A forged press naming somebody else's residence is refused and changes nothing.
    other = next(
        r["residence_ids"][0]
        for r in _demo(sandbox_app)["residents"]
        if r["residence_ids"][0] not in person["residence_ids"]
    )
    await chat.press(f"1:acct:res:{other}")
    answers = bot.telegram.sent("answerCallbackQuery")
    assert "not yours" in str(answers[-1].params.get("text"))
    link = await bot.services.accounts.resident(505)
    assert link is not None
    assert link.residence_id == second


async def test_language_switch_is_remembered(bot: BotUnderTest) -> None:
    chat = bot.chat(506)
    await chat.send("/language")
    await chat.press(bot.telegram.button("中文"))
    assert "中文" in (bot.telegram.last.text or "")
    await chat.send("/whoami")
    assert "尚未绑定" in (bot.telegram.last.text or "")
    user = await bot.services.storage.users.get(506)
    assert user is not None
    assert user.language == "zh"


async def test_telegram_language_is_the_default(bot: BotUnderTest) -> None:
    await bot.chat(507, language_code="zh-hans").send("/start")
    assert any("您好" in (call.text or "") for call in bot.telegram.replies())


async def test_unlink_forgets_the_tokens(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    person = _resident(sandbox_app, homes=1)
    chat = bot.chat(508)
    await chat.send("/start")
    await _follow(
        bot, await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    )
    await chat.send("/unlink")
    await chat.press(bot.telegram.button("Yes, unlink"))
    assert "unlinked" in (bot.telegram.last.text or "")
    assert await bot.services.accounts.resident(508) is None


async def test_worker_invite_binds_once(bot: BotUnderTest) -> None:
    code = await bot.services.invites.create(
        Role.WORKER, worker_id="w-tom", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    await bot.chat(509).send(f"/start {code}")
    assert "maintenance worker" in (bot.telegram.last.text or "")
    actor = await bot.services.accounts.actor(509)
    assert actor.worker_id == "w-tom"
    await bot.chat(510).send(f"/start {code}")
    assert "already used" in (bot.telegram.last.text or "")
    assert (await bot.services.accounts.actor(510)).worker_id is None


async def test_manager_invite_and_expired_invite(bot: BotUnderTest) -> None:
    good = await bot.services.invites.create(
        Role.MANAGER, project_id="p-1", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    stale = await bot.services.invites.create(
        Role.MANAGER, project_id="p-1", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    await bot.chat(511).send(f"/start {stale}")
    assert "expired" in (bot.telegram.last.text or "")
    await bot.chat(511).send(f"/start {good}")
    assert bot.telegram.button("Assign a task")
    assert (await bot.services.accounts.actor(511)).project_ids == frozenset({"p-1"})


async def test_guessing_invite_codes_is_locked_out(bot: BotUnderTest) -> None:
    real = await bot.services.invites.create(
        Role.ADMIN, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    chat = bot.chat(512)
    for attempt in range(5):
        await chat.send(f"/start wrong-guess-{attempt}")
    await chat.send(f"/start {real}")
    assert "Too many wrong codes" in (bot.telegram.last.text or "")
    assert (await bot.services.accounts.actor(512)).role.value == "resident"


async def test_a_stale_button_gets_a_polite_notice(bot: BotUnderTest) -> None:
    chat: Chat = bot.chat(513)
    await chat.press("1:nothing:here")
    await chat.press("garbage that is not ours")
    answers = bot.telegram.sent("answerCallbackQuery")
    assert len(answers) == 2
    assert all("no longer active" in str(a.params.get("text")) for a in answers)


async def test_help_lists_what_the_role_can_do(bot: BotUnderTest) -> None:
    await bot.chat(514).send("/help")
    help_text = bot.telegram.last.text or ""
    assert "/repair" in help_text
    assert "/assign" not in help_text


def test_sandbox_clock_fixture_is_shared(clock: Clock) -> None:
    assert clock.now().tzinfo is not None


async def test_the_link_notice_speaks_the_users_telegram_language(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=1)
    await bot.chat(515, language_code="zh-hans").send("/start")
    redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    await _follow(bot, redirect)
    assert "已绑定" in (bot.telegram.last.text or "")


async def test_after_linking_the_resident_is_brought_back_to_their_repair(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=1)
    chat = bot.chat(516)
    await chat.send("/repair")
    redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    await _follow(bot, redirect)
    first = bot.telegram.last.buttons[0][0]
    assert first["text"] == "▶ Carry on: 🔧 Report a repair"
    await chat.press(first["callback_data"])
    assert "What needs repairing?" in (bot.telegram.last.text or "")


async def test_a_user_who_unblocks_the_bot_and_writes_again_gets_alerts_again(
    bot: BotUnderTest,
) -> None:
    from conversations.notify import tell

    chat = bot.chat(517)
    await chat.send("/start")
    bot.telegram.blocked_chats.add(517)
    assert not await tell(bot.app, bot.services, 517, "Nothing changed.")
    user = await bot.services.storage.users.get(517)
    assert user is not None
    assert user.blocked_at is not None
    bot.telegram.blocked_chats.clear()
    await chat.send("/help")
    user = await bot.services.storage.users.get(517)
    assert user is not None
    assert user.blocked_at is None
    assert await tell(bot.app, bot.services, 517, "Nothing changed.")
