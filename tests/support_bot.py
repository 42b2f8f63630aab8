"""The whole bot in-process for tests: real Application, real clients, the vendor sandbox,
a migrated database, and the Telegram stand-in."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette

from bot.app import build_application
from bot.app_type import ConciergeApp
from bot.persistence import DatabasePersistence
from bot.services import Services
from bot.settings import Settings
from bot.storage.migrate import upgrade
from bot.web import create_web_app
from tests.support_telegram import Chat, FakeTelegram


@dataclass
class BotUnderTest:
    """What a test drives and inspects."""

    app: ConciergeApp
    services: Services
    telegram: FakeTelegram
    settings: Settings

    def chat(self, user_id: int, *, language_code: str = "en", first_name: str = "Ann") -> Chat:
        """A private chat with the bot as this user."""
        return Chat(self.app, user_id, first_name=first_name, language_code=language_code)

    def web(self) -> httpx.AsyncClient:
        """The bot's own web server (OAuth callback and confirmation, health), in-process."""
        app = create_web_app(
            on_oauth_callback=self.services.linker.complete,
            on_oauth_confirm=self.services.linker.confirm,
            health=_healthy,
        )
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")

    async def complete_login(self, redirect: str, *, confirm: bool = True) -> httpx.Response:
        """Plays the browser back at the bot: the callback page, then its Yes (or No) button.
        Returns the last page (the callback's own when it asked nothing)."""
        parts = urlsplit(redirect)
        async with self.web() as web:
            page = await web.get(f"{parts.path}?{parts.query}")
            token = confirm_token(page.text)
            if token is None:
                return page
            decision = "yes" if confirm else "no"
            return await web.post(
                "/oauth/akubela/confirm", data={"token": token, "decision": decision}
            )


def confirm_token(page: str) -> str | None:
    """The confirmation token a callback page carries in its form, if it asks to confirm."""
    found = re.search(r"name='token' value='([^']+)'", page)
    return html.unescape(found.group(1)) if found else None


async def _no_wait(seconds: float) -> None:
    return None


async def _healthy() -> bool:
    return True


@asynccontextmanager
async def running_bot(
    database_url: str,
    sandbox_app: Starlette,
    *,
    persistence: Any = None,
    clock: Any = None,
    telegram: FakeTelegram | None = None,
    **settings_overrides: Any,
) -> AsyncIterator[BotUnderTest]:
    """Starts the bot on `database_url` against the sandbox; stops it cleanly afterwards.
    `telegram`: the Telegram of an earlier run, for a restart (Telegram keeps its chats and
    messages while the bot is down)."""
    # The repeating jobs run when a test calls them, not on their own in the middle of one.
    quiet_jobs = {"outbox_interval_seconds": 3600, "alert_poll_seconds": 3600}
    # A test sends updates far faster than a person; flood control is tested on its own.
    quiet_jobs["flood_rate"] = 0
    settings = Settings(
        _env_file=None, database_url=database_url, **(quiet_jobs | settings_overrides)
    )
    await upgrade(database_url)
    transport = httpx.ASGITransport(app=sandbox_app)
    # Retries back off for real in production; tests need not wait for them.
    services = (
        Services.open(settings, vendor_transport=transport, clock=clock, vendor_sleep=_no_wait)
        if clock is not None
        else Services.open(settings, vendor_transport=transport, vendor_sleep=_no_wait)
    )
    telegram = telegram or FakeTelegram()
    if persistence is None:
        # Conversations are persistent, and PTB refuses them on an app without persistence.
        persistence = DatabasePersistence(services.storage.sessions)
    app = build_application(
        settings, services, persistence=persistence, request=telegram, rate_limiter=False
    )
    try:
        async with app:
            # Conversation time-outs are JobQueue jobs: without it running they are ignored.
            assert app.job_queue is not None
            await app.job_queue.start()
            try:
                yield BotUnderTest(app, services, telegram, settings)
            finally:
                await app.job_queue.stop(wait=False)
    finally:
        await services.aclose()


def demo_residents(sandbox_app: Starlette, *, every_project: bool = False) -> list[dict[str, Any]]:
    """The sandbox's demo residents (email, password, name, residence_ids): those of the
    settings' project, the one community a test deployment serves, unless `every_project`
    (the second demo community's too)."""
    info: dict[str, Any] = sandbox_app.state.control.vendors["akubela"].demo_info()
    project_of = {home["residence_id"]: home["project_id"] for home in info["residences"]}
    return [
        person
        for person in info["residents"]
        if every_project
        or all(project_of[rid] == info["project_id"] for rid in person["residence_ids"])
    ]


async def link_demo_resident(
    bot: BotUnderTest,
    sandbox_app: Starlette,
    telegram_id: int,
    *,
    homes: int = 1,
    email: str | None = None,
) -> dict[str, Any]:
    """Links a demo resident (with `homes` residences, or the one with that e-mail) the quick
    way, as a completed OAuth login would: tokens from the sandbox, stored encrypted, each
    residence with its project (as Akubela's family list gives it), the first one chosen."""
    from bot.storage.accounts import StoredTokens

    person = next(
        r
        for r in demo_residents(sandbox_app, every_project=True)
        if (r["email"] == email if email else len(r["residence_ids"]) == homes)
    )
    info = sandbox_app.state.control.vendors["akubela"].demo_info()
    project_of = {home["residence_id"]: home["project_id"] for home in info["residences"]}
    services = bot.services
    tokens = await services.akubela.password_login(
        person["email"], SecretStr(person["password"]), scope="user"
    )
    await services.storage.users.get_or_create(telegram_id)
    cipher = services.cipher
    refresh = tokens.refresh_token
    await services.accounts.link_resident(
        telegram_id,
        account_id=person["account_id"],
        email=person["email"],
        residences=[
            {"residence_id": rid, "project_id": project_of[rid]} for rid in person["residence_ids"]
        ],
        tokens=StoredTokens(
            access_token_encrypted=cipher.encrypt(tokens.access_token.get_secret_value()),
            refresh_token_encrypted=cipher.encrypt(refresh.get_secret_value())
            if refresh
            else None,
            expires_at=tokens.expires_at,
        ),
    )
    await services.accounts.choose_residence(telegram_id, person["residence_ids"][0])
    return person


async def vendor_writes(bot: BotUnderTest) -> list[Any]:
    """Every vendor write the bot recorded, oldest first."""
    return await bot.services.storage.writes.all()


async def run_writes_job(bot: BotUnderTest) -> None:
    """Makes every waiting write due now and runs the job that retries them (the outbox)."""
    from sqlalchemy import update

    from bot.storage.models import WriteRecord, WriteStatus

    async with bot.services.storage.sessions() as session:
        await session.execute(
            update(WriteRecord)
            .where(WriteRecord.status == WriteStatus.PENDING)
            .values(next_attempt_at=bot.services.clock(), owner=None)
        )
        await session.commit()
    assert bot.app.job_queue is not None
    [job] = bot.app.job_queue.get_jobs_by_name("outbox")
    await job.run(bot.app)


async def keep_demo_communities(bot: BotUnderTest, sandbox_app: Starlette) -> None:
    """The demo's two communities, Garden Court (Shanghai, 1) and Marina Bay (Singapore, 2),
    kept and loaded as `concierge demo` runs them."""
    from bot.communities import stored_values
    from bot.demo import demo_communities

    services = bot.services
    for access in demo_communities(bot.settings, sandbox_app):
        await services.storage.communities.save(
            access.community.id, stored_values(access, services.cipher)
        )
    await services.load_communities()
