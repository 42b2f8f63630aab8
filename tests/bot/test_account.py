"""Linking an Akubela account, invites, and the account commands, as a user lives them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from conversations.domain import Role
from sandbox.core import Clock
from tests.support_bot import BotUnderTest, confirm_token, running_bot
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
    holder = bot.services.tokens.holder(link)
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
        Role.WORKER,
        worker_id="w-tom",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
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
        Role.MANAGER,
        project_id="p-1",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
    )
    stale = await bot.services.invites.create(
        Role.MANAGER,
        project_id="p-1",
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
        community_ids=[1],
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


# ---- no account mix-ups ------------------------------------------------------------------------


async def _callback_page(bot: BotUnderTest, redirect: str) -> httpx.Response:
    parts = urlsplit(redirect)
    async with bot.web() as web:
        return await web.get(f"{parts.path}?{parts.query}")


async def _answer(bot: BotUnderTest, token: str | None, decision: str) -> httpx.Response:
    async with bot.web() as web:
        return await web.post(
            "/oauth/akubela/confirm", data={"token": token or "", "decision": decision}
        )


async def test_the_callback_page_names_both_sides_and_links_only_when_confirmed(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=1)
    await bot.chat(520, first_name="Alice").send("/start")
    redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    page = await _callback_page(bot, redirect)
    assert page.status_code == 200
    assert (
        f"Link the Akubela account {person['email']} to the Telegram account Alice?" in page.text
    )
    assert "Telegram 账户 Alice" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    # Nothing is linked and nobody is told before the person says yes.
    assert await bot.services.accounts.resident(520) is None
    assert "is linked" not in (bot.telegram.last.text or "")

    token = confirm_token(page.text)
    done = await _answer(bot, token, "yes")
    assert done.status_code == 200
    assert "is now linked to the Telegram account Alice" in done.text
    assert await bot.services.accounts.resident(520) is not None
    assert f"Your Akubela account {person['email']} is linked" in (bot.telegram.last.text or "")
    # The confirmation works once.
    again = await _answer(bot, token, "yes")
    assert again.status_code == 400
    assert "already used" in again.text


async def test_saying_no_links_nothing_and_the_token_is_spent(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=1)
    await bot.chat(521).send("/start")
    redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    token = confirm_token((await _callback_page(bot, redirect)).text)
    page = await _answer(bot, token, "no")
    assert page.status_code == 200
    assert "Nothing was linked" in page.text
    assert "没有绑定" in page.text
    assert (await _answer(bot, token, "yes")).status_code == 400
    assert await bot.services.accounts.resident(521) is None


async def test_a_forged_confirmation_is_refused(bot: BotUnderTest) -> None:
    for token in ("", "not-a-token", "gAAAAABlZm9yZ2Vk"):
        page = await _answer(bot, token, "yes")
        assert page.status_code == 400
        assert "expired" in page.text


async def test_a_victim_sees_whose_telegram_it_is_and_the_earlier_holder_is_told(
    bot: BotUnderTest, sandbox_app: Starlette
) -> None:
    person = _resident(sandbox_app, homes=1)
    # The victim uses the bot with their account.
    await bot.chat(522, first_name="Victor").send("/start")
    await _follow(
        bot, await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    )
    # Someone else sends the victim their own login link; the page says whose Telegram it is.
    await bot.chat(523, first_name="Mallory").send("/start")
    redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
    page = await _callback_page(bot, redirect)
    assert "to the Telegram account Mallory?" in page.text
    # Confirmed anyway: the victim hears of it in Telegram, naming both.
    bot.telegram.clear()
    await _answer(bot, confirm_token(page.text), "yes")
    told = [call for call in bot.telegram.replies() if call.params.get("chat_id") == 522]
    assert len(told) == 1
    assert person["email"] in (told[0].text or "")
    assert "Mallory" in (told[0].text or "")
    mine = [call for call in bot.telegram.replies() if call.params.get("chat_id") == 523]
    assert any(person["email"] in (call.text or "") for call in mine)


async def _manager(bot: BotUnderTest, telegram_id: int, project: str = "p-1") -> None:
    code = await bot.services.invites.create(
        Role.MANAGER,
        project_id=project,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
    )
    await bot.services.invites.redeem(code, telegram_id, now=datetime.now(UTC))


async def _worker_invite(bot: BotUnderTest, worker_id: str = "w-tom") -> str:
    return await bot.services.invites.create(
        Role.WORKER,
        worker_id=worker_id,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
    )


async def test_a_manager_opening_a_worker_invite_is_asked_first(bot: BotUnderTest) -> None:
    from bot.alert_kinds import AlertKind
    from bot.storage.models import AlertStatus

    await _manager(bot, 530)
    await bot.services.storage.alerts.record(
        "repair:new:r1", recipient=530, kind=AlertKind.REPAIR_NEW.value
    )
    await bot.services.storage.alerts.record(
        "repair:state:r1", recipient=530, kind=AlertKind.REPAIR_STATE.value
    )
    code = await _worker_invite(bot)
    chat = bot.chat(530)
    await chat.send(f"/start {code}")
    question = bot.telegram.last.text or ""
    assert "You are a property manager now" in question
    assert "maintenance worker instead" in question
    assert "stop managing Community 1," in question  # its name, never its project "p-1"
    # Nothing changed yet, and the code is not spent.
    actor = await bot.services.accounts.actor(530)
    assert actor.project_ids == frozenset({"p-1"})
    assert actor.worker_id is None

    await chat.press(bot.telegram.button("Yes, switch"))
    actor = await bot.services.accounts.actor(530)
    assert actor.role.value == "worker"
    assert actor.worker_id == "w-tom"
    assert actor.project_ids == frozenset()  # no half of the old role left behind
    assert await bot.services.accounts.managers_of("p-1") == []
    stale = await bot.services.storage.alerts.get("repair:new:r1")
    assert stale is None or stale.status is not AlertStatus.PENDING
    kept = await bot.services.storage.alerts.get("repair:state:r1")
    assert kept is not None
    assert kept.status is AlertStatus.PENDING
    assert "You are now a maintenance worker" in (bot.telegram.last.text or "")


async def test_keeping_the_role_changes_nothing(bot: BotUnderTest) -> None:
    await _manager(bot, 531)
    code = await _worker_invite(bot)
    chat = bot.chat(531, language_code="zh-hans")
    await chat.send(f"/start {code}")
    assert "此邀请会让您改为维修人员" in (bot.telegram.last.text or "")
    await chat.press(bot.telegram.button("保持不变"))
    actor = await bot.services.accounts.actor(531)
    assert actor.role.value == "manager"
    assert actor.project_ids == frozenset({"p-1"})
    # The code is still good for the person it was meant for.
    await bot.chat(532).send(f"/start {code}")
    assert (await bot.services.accounts.actor(532)).worker_id == "w-tom"


async def test_a_worker_becoming_a_manager_loses_the_worker_binding(bot: BotUnderTest) -> None:
    chat = bot.chat(533)
    await chat.send(f"/start {await _worker_invite(bot)}")
    code = await bot.services.invites.create(
        Role.MANAGER,
        project_id="p-2",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        community_ids=[1],
    )
    await chat.send(f"/start {code}")
    assert "binding to maintenance worker w-tom ends" in (bot.telegram.last.text or "")
    await chat.press(bot.telegram.button("Yes, switch"))
    actor = await bot.services.accounts.actor(533)
    assert actor.role.value == "manager"
    assert actor.worker_id is None
    assert await bot.services.accounts.telegram_ids_of_worker("w-tom") == []


async def test_a_resident_joins_staff_without_a_question(bot: BotUnderTest) -> None:
    await bot.chat(534).send(f"/start {await _worker_invite(bot)}")
    assert "Welcome aboard" in (bot.telegram.last.text or "")
