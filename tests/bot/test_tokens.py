"""One token holder per linked Akubela account: shared in a process, locked across processes,
and a login lost with a refresh answer handled once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from bot.storage.models import ResidentLink
from bot.tokens import MSG_LINK_AGAIN
from conversations.domain import Role
from conversations.i18n import tr
from sandbox.faults import FaultKind, FaultRule, FaultWhen
from tests.bot.test_account import _follow, _link_url, _log_in
from tests.bot.test_alerts import _join
from tests.bot.test_writes import _repair, keep
from tests.support_bot import BotUnderTest, link_demo_resident, running_bot

BOB, BOSS = 7101, 7102
TOKEN_PATH = "/akubela/api/v1.0/invoke/open-ability/method/oauth2/token"
USER_COMMANDS = "/akubela/api/v1.0/invoke/open-ability/method/user-commands"
# Whatever asks a resident to sign in again, in any words the bot has for it.
LINK_AGAIN_WORDS = (
    tr("en", MSG_LINK_AGAIN),
    tr("zh", MSG_LINK_AGAIN),
    "link your account again",
    "link your Akubela account",
)


def _akubela(sandbox_app: Starlette) -> Any:
    return sandbox_app.state.control.vendors["akubela"]


def _texts(bot: BotUnderTest, telegram_id: int | None = None) -> list[str]:
    return [
        call.text or ""
        for call in bot.telegram.sent("sendMessage")
        if telegram_id is None or int(call.params["chat_id"]) == telegram_id
    ]


def _asked_to_link_again(bot: BotUnderTest) -> list[str]:
    return [t for t in _texts(bot) if any(words in t for words in LINK_AGAIN_WORDS)]


async def _join_as_manager(bot: BotUnderTest, telegram_id: int) -> None:
    await _join(bot, telegram_id, Role.MANAGER, project_id=bot.settings.akubela_project_id)


async def _expire_stored_tokens(bot: BotUnderTest, telegram_id: int) -> None:
    """The bot's own record says the access token expired a minute ago."""
    async with bot.services.storage.sessions.begin() as session:
        await session.execute(
            update(ResidentLink)
            .where(ResidentLink.telegram_id == telegram_id)
            .values(token_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )


async def _run(bot: BotUnderTest, job_name: str) -> None:
    assert bot.app.job_queue is not None
    (job,) = bot.app.job_queue.get_jobs_by_name(job_name)
    await job.run(bot.app)


def _everyone(bot: BotUnderTest, residence_id: str) -> list[Callable[[], Awaitable[Any]]]:
    """The five kinds of users of one resident's token in one bot process."""

    async def desk_read() -> None:
        desk = await bot.services.desk_for_residence(BOB, residence_id)
        assert desk is not None
        await desk.bookings()

    return [
        lambda: bot.chat(BOB).send("/repairs"),  # the resident's own update
        lambda: _run(bot, "alerts"),  # the alert watcher polls the residence's bookings
        lambda: _run(bot, "outbox"),  # a deferred write of the resident's
        lambda: bot.chat(BOSS).send("/bookings_pending"),  # a manager's sweep
        desk_read,
    ]


@pytest.mark.parametrize("database_kind", ["postgresql"])
@pytest.mark.parametrize("expired", ["by-clock", "refused-by-akubela"])
async def test_ten_users_of_one_expired_token_in_two_processes_spend_one_refresh(
    database_url: str, sandbox_app: Starlette, expired: str
) -> None:
    akubela = _akubela(sandbox_app)
    # Two bot processes on one PostgreSQL: each has its own services, registry and holder.
    async with (
        running_bot(database_url, sandbox_app) as first,
        running_bot(database_url, sandbox_app) as second,
    ):
        person = await link_demo_resident(first, sandbox_app, BOB)
        home = person["residence_ids"][0]
        await _join_as_manager(first, BOSS)
        for n in range(2):
            await keep(
                first, _repair(home, f"Window latch {n} is broken"), maybe_sent=False, user=BOB
            )
        akubela.expire_tokens()  # Akubela refuses the access token from now on
        if expired == "by-clock":
            await _expire_stored_tokens(first, BOB)  # and the bot knows it is past its time
        akubela.token_requests.clear()

        users = _everyone(first, home) + _everyone(second, home)
        assert len(users) == 10
        await asyncio.gather(*(user() for user in users))

        assert akubela.token_requests["refresh_token"] == 1
        for bot in (first, second):
            assert _asked_to_link_again(bot) == []
            # The manager's sweep read Bob's bookings in both processes.
            assert not [t for t in _texts(bot, BOSS) if "could not be read" in t]
        told_bob = _texts(first, BOB) + _texts(second, BOB)
        assert sum("went through" in t for t in told_bob) == 2  # the outbox, once per write
        assert not [t for t in told_bob if "not answering" in t or "could not" in t]
        link = await first.services.accounts.resident(BOB)
        assert link is not None
        assert link.relink_required_at is None
        assert link.access_token_encrypted is not None
        # Each process has its own holder, and both use the one renewed token, as stored.
        renewed = first.services.cipher.decrypt(link.access_token_encrypted)
        holders = [bot.services.tokens.holder(link) for bot in (first, second)]
        assert holders[0] is not holders[1]
        for holder in holders:
            assert holder is not None
            assert holder.tokens is not None
            assert holder.tokens.access_token.get_secret_value() == renewed
    # Both deferred repairs went through, once each.
    repairs = [r for r in akubela._repairs.values() if r.description.startswith("Window latch")]
    assert sorted(r.description for r in repairs) == [
        "Window latch 0 is broken",
        "Window latch 1 is broken",
    ]


async def test_every_desk_of_an_account_in_a_process_shares_one_holder(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        person = await link_demo_resident(bot, sandbox_app, BOB, homes=2)
        desks = [
            await bot.services.resident_desk(BOB),
            await bot.services.desk_for_residence(BOB, person["residence_ids"][0]),
            await bot.services.desk_for_residence(BOB, person["residence_ids"][1]),
        ]
        assert len({id(desk._tokens) for desk in desks if desk is not None}) == 1  # type: ignore[attr-defined]
        assert len(bot.services.tokens) == 1


async def test_unlinking_and_linking_again_replace_the_holder(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, BOB)
        link = await bot.services.accounts.resident(BOB)
        assert link is not None
        before = bot.services.tokens.holder(link)
        chat = bot.chat(BOB)
        await chat.send("/unlink")
        await chat.press(bot.telegram.button("Yes, unlink"))
        assert len(bot.services.tokens) == 0
        assert await bot.services.resident_desk(BOB) is None

        await link_demo_resident(bot, sandbox_app, BOB)
        link = await bot.services.accounts.resident(BOB)
        assert link is not None
        assert bot.services.tokens.holder(link) is not before


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_refresh_answer_lost_after_akubela_rotated_the_token_asks_once_to_link_again(
    database_url: str, sandbox_app: Starlette, language: str
) -> None:
    akubela = _akubela(sandbox_app)
    faults = sandbox_app.state.control.faults
    async with running_bot(database_url, sandbox_app) as bot:
        person = await link_demo_resident(bot, sandbox_app, BOB)
        await bot.services.storage.users.set_language(BOB, language)
        await _join_as_manager(bot, BOSS)
        await bot.services.manager_auth.access_token()  # the manager's login is not at stake
        await _expire_stored_tokens(bot, BOB)  # Bob's token is due for renewal
        akubela.token_requests.clear()
        # Akubela rotates the refresh token, and its answer is lost on the way back.
        faults.add(FaultRule(FaultKind.DROP, path=TOKEN_PATH, times=1, when=FaultWhen.AFTER))

        await asyncio.gather(_run(bot, "alerts"), _run(bot, "alerts"))

        # The lost refresh, then the same refresh token once more, which Akubela refuses.
        assert akubela.token_requests["refresh_token"] == 2
        assert _asked_to_link_again(bot) == [tr(language, MSG_LINK_AGAIN)]
        assert [int(c.params["chat_id"]) for c in bot.telegram.sent("sendMessage")] == [BOB]
        link = await bot.services.accounts.resident(BOB)
        assert link is not None
        assert link.relink_required_at is not None

        # From now on the watcher leaves the account alone: no token request, no command.
        counter = faults.add(FaultRule(FaultKind.LATENCY, path=USER_COMMANDS, latency=0.0))
        for _ in range(3):
            await _run(bot, "alerts")
        assert counter.hits == 0
        assert akubela.token_requests["refresh_token"] == 2
        assert len(_asked_to_link_again(bot)) == 1

        # The resident's own commands offer the login instead of failing on Akubela.
        bot.telegram.clear()
        chat = bot.chat(BOB, language_code=language)
        await chat.send("/bookings")
        assert counter.hits == 0
        assert _link_url(bot)

        # Linking again clears the mark; the watcher and the desks use the new login.
        await chat.send("/start")
        redirect = await _log_in(sandbox_app, _link_url(bot), person["email"], person["password"])
        assert (await _follow(bot, redirect)).status_code == 200
        link = await bot.services.accounts.resident(BOB)
        assert link is not None
        assert link.relink_required_at is None
        await _run(bot, "alerts")
        assert counter.hits >= 1
        desk = await bot.services.resident_desk(BOB)
        assert desk is not None
        await desk.bookings()


async def test_a_refresh_answer_lost_before_akubela_acted_is_recovered(
    database_url: str, sandbox_app: Starlette
) -> None:
    akubela = _akubela(sandbox_app)
    faults = sandbox_app.state.control.faults
    async with running_bot(database_url, sandbox_app) as bot:
        await link_demo_resident(bot, sandbox_app, BOB)
        akubela.expire_tokens()
        await _expire_stored_tokens(bot, BOB)
        akubela.token_requests.clear()
        faults.add(FaultRule(FaultKind.DROP, path=TOKEN_PATH, times=1))

        await bot.chat(BOB).send("/bookings")

        assert akubela.token_requests["refresh_token"] == 1  # the dropped one never arrived
        assert _asked_to_link_again(bot) == []
        link = await bot.services.accounts.resident(BOB)
        assert link is not None
        assert link.relink_required_at is None
