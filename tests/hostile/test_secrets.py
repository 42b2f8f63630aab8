"""No secret at rest, in logs, in exceptions or in chat; invites cannot be guessed.

A stormy run: a resident links through the real OAuth login, reports a repair while Akubela
fails, comes back after every token expired; a manager accepts a task after Tuya's token
expired (refreshed through a URL that carries the refresh token) and the maintenance log
logs in with its API key; the bot talks to a Bot API over HTTP whose URLs carry the bot
token, and one call fails. Every logger runs at DEBUG (httpx, httpcore, telegram, uvicorn,
SQLAlchemy, aiosqlite) behind the filter `concierge` installs at start. Then every secret of
the settings and every token the sandbox issued is looked for in the log, in the raw
database, in what the bot sent to Telegram, and in the reprs of settings and services.

Already covered elsewhere, not repeated here: a replayed or forged OAuth `state` is refused
(tests/bot/test_account.py: test_the_same_login_link_cannot_be_used_twice,
test_a_forged_or_expired_state_is_refused); the webhook refuses calls without Telegram's
secret header (tests/bot/test_web.py); webhook mode refuses to start without a secret
(tests/bot/test_settings.py).
"""

from __future__ import annotations

import io
import logging
import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import inspect, text
from starlette.applications import Starlette
from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from api import redaction
from bot.settings import Settings
from bot.storage.accounts import INVITE_CODE_BYTES, MAX_FAILED_INVITE_ATTEMPTS
from conversations.domain import Role
from sandbox.botapi.app import create_botapi_app
from sandbox.botapi.state import Persona
from sandbox.faults import FaultKind, FaultRule
from tests.hostile.community import MANAGER, TUYA_PROJECT, join
from tests.support_bot import BotUnderTest, demo_residents, running_bot

RESIDENT = 901
WEBHOOK_SECRET = "hook-" + "s3cr3t" * 6
CHATTY_LOGGERS = (
    "httpx",
    "httpcore",
    "telegram",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
)


@pytest.fixture
def every_log_line() -> Iterator[io.StringIO]:
    """Every logger at DEBUG into one buffer, behind the filter the CLI installs at start."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *CHATTY_LOGGERS)}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    # As bot/cli.py does at start: the filter on every handler of the root logger.
    redaction.install()
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for other in root.handlers:
            other.removeFilter(redaction.secrets_filter)


class Issued:
    """Every credential the sandbox handed out during the run, including spent ones."""

    def __init__(self, sandbox: Starlette) -> None:
        self.sandbox = sandbox
        self.values: set[str] = set()

    def collect(self) -> None:
        """Notes what the vendors hold now (call it between steps: refreshes spend tokens)."""
        vendors = self.sandbox.state.control.vendors
        akubela, tuya, servitly = vendors["akubela"], vendors["tuya"], vendors["servitly"]
        self.values |= set(akubela._access) | set(akubela._refresh) | set(akubela._codes)
        self.values |= set(tuya._grants) | set(tuya._refresh)
        self.values |= set(servitly._store.sessions) | set(servitly._store.refresh)


def _settings_secrets(settings: Settings) -> set[str]:
    found = {
        value.get_secret_value()
        for value in settings.__dict__.values()
        if hasattr(value, "get_secret_value")
    }
    return {value for value in found if value}


async def _log_in(sandbox: Starlette, login_url: str, email: str, password: str) -> str:
    parts = urlsplit(login_url)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox), base_url=f"{parts.scheme}://{parts.netloc}"
    ) as browser:
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        answer = await browser.post(
            parts.path, data=query | {"email": email, "password": password}
        )
    assert answer.status_code == 302
    return str(answer.headers["location"])


async def _link_for_real(bot: BotUnderTest, sandbox: Starlette) -> dict[str, Any]:
    person = next(r for r in demo_residents(sandbox) if len(r["residence_ids"]) == 1)
    await bot.chat(RESIDENT).send("/start")
    url = next(
        str(button["url"])
        for call in reversed(bot.telegram.replies())
        for row in call.buttons
        for button in row
        if "url" in button
    )
    redirect = await _log_in(sandbox, url, person["email"], person["password"])
    page = await bot.complete_login(redirect)
    assert page.status_code == 200
    return person


async def _talk_to_a_bot_api_over_http(token: str) -> list[BaseException]:
    """The Bot API over HTTP (httpx logs each URL, which carries the token); one call fails."""
    app = create_botapi_app(
        token=token, personas=[Persona(RESIDENT, "Bob", "resident")], bot_username="c_bot"
    )
    request = HTTPXRequest(httpx_kwargs={"transport": httpx.ASGITransport(app=app)})
    bot = Bot(token, base_url="http://127.0.0.1:8080/bot", request=request)
    failures: list[BaseException] = []
    try:
        async with bot:
            await bot.send_message(RESIDENT, "Hello from the secrets test")
            try:
                await bot.send_message(424242, "nobody is in this chat")
            except TelegramError as error:
                logging.getLogger("bot.errors").exception("a Bot API call failed")
                failures.append(error)
    finally:
        await app.state.botapi.aclose()
    return failures


async def _raw_database(bot: BotUnderTest) -> str:
    """Every row of every table, as text."""
    rows: list[str] = []
    async with bot.services.storage.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        for table in tables:
            result = await connection.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608
            rows += [repr(tuple(row)) for row in result]
    assert len(rows) > 10
    return "\n".join(rows)


# One Bot API call is meant to fail, to see its error logged without the token.
@pytest.mark.telegram_refusals("chat not found")
async def test_no_secret_at_rest_in_logs_exceptions_or_chat(
    database_url: str,
    sandbox_app: Starlette,
    every_log_line: io.StringIO,
    figures: Counter[str],
) -> None:
    issued = Issued(sandbox_app)
    vendors = sandbox_app.state.control.vendors
    faults = sandbox_app.state.control.faults
    async with running_bot(
        database_url, sandbox_app, webhook_secret=WEBHOOK_SECRET, admin_telegram_ids=[7]
    ) as bot:
        person = await _link_for_real(bot, sandbox_app)
        issued.collect()
        chat = bot.chat(RESIDENT)
        # A repair while Akubela fails twice, then answers.
        faults.add(FaultRule(FaultKind.ERROR, path="/akubela/api", status=503, times=2))
        await chat.send("/repair")
        await chat.send("The bathroom fan rattles loudly at night.")
        await chat.press("1:repair:skip")
        await chat.press("1:repair:when:1m")
        await chat.press("1:repair:ok")
        await chat.send("+86 138 0000 1234")
        await chat.press("1:repair:confirm")
        issued.collect()
        # Every token expires: the next look at the repairs refreshes them.
        vendors["akubela"].expire_tokens()
        await chat.send("/repairs")
        issued.collect()
        # Garbage from Akubela on the next read.
        faults.add(FaultRule(FaultKind.MALFORMED, path="/akubela/api", times=1))
        await chat.send("/repairs")
        # A manager accepts a task after Tuya's token expired; Servitly logs in meanwhile.
        await join(bot, MANAGER, Role.MANAGER, project_id=TUYA_PROJECT)
        await bot.chat(MANAGER).send("/tasks")
        issued.collect()
        vendors["tuya"].expire_tokens()
        await bot.chat(MANAGER).press("1:tasks:accept:1112382396505300003")
        issued.collect()
        # Telegram says no to a message: the bot token travels in the URL of every call.
        failures = await _talk_to_a_bot_api_over_http(
            bot.settings.telegram_bot_token.get_secret_value()
        )
        issued.collect()

        secrets_ = _settings_secrets(bot.settings) | issued.values | {person["password"]}
        assert WEBHOOK_SECRET in secrets_
        assert len(issued.values) >= 8
        log = every_log_line.getvalue()
        chat_params = repr([call.params for call in bot.telegram.calls])
        at_rest = await _raw_database(bot)
        reprs = repr(bot.settings) + repr(bot.services) + repr(failures)
        reprs += "".join(repr(getattr(bot.services, n)) for n in ("akubela", "tuya", "servitly"))

    figures["secrets_checked"] += len(secrets_)
    figures["log_lines_checked"] += log.count("\n")
    # The run really logged URLs with credentials in them, masked.
    assert "/bot***/sendMessage" in log
    assert "/v1.0/token/***" in log
    leaks = {
        where: sorted(s[:4] + "…" for s in secrets_ if s in found)
        for where, found in (
            ("log", log),
            ("chat", chat_params),
            ("database", at_rest),
            ("reprs", reprs),
        )
    }
    assert leaks == {"log": [], "chat": [], "database": [], "reprs": []}


# ---- invite codes ----------------------------------------------------------------------------


def test_invite_codes_are_out_of_guessing_range() -> None:
    # 15 random bytes: 2**120 codes; at a million guesses a second that is 10**22 years.
    assert INVITE_CODE_BYTES * 8 >= 120
    assert len({secrets.token_urlsafe(INVITE_CODE_BYTES) for _ in range(1000)}) == 1000


async def test_a_used_code_does_not_reset_the_count_of_wrong_guesses(
    database_url: str, sandbox_app: Starlette
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        invites = bot.services.invites
        expires = datetime.now(UTC) + timedelta(hours=1)
        spent = await invites.create(Role.ADMIN, expires_at=expires)
        await bot.chat(950).send(f"/start {spent}")
        real = await invites.create(Role.ADMIN, expires_at=expires)
        guesser = bot.chat(951)
        # Slipping a known, used code between guesses must not buy more guesses.
        for attempt in range(MAX_FAILED_INVITE_ATTEMPTS - 1):
            await guesser.send(f"/start guess-{attempt}")
        await guesser.send(f"/start {spent}")
        await guesser.send("/start guess-last")
        await guesser.send(f"/start {real}")
        assert "Too many wrong codes" in (bot.telegram.last.text or "")
        assert (await bot.services.accounts.actor(951)).role.value == "resident"


async def test_many_users_guessing_invite_codes_get_nowhere(
    database_url: str, sandbox_app: Starlette, figures: Counter[str]
) -> None:
    async with running_bot(database_url, sandbox_app) as bot:
        real = await bot.services.invites.create(
            Role.ADMIN, expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
        guesses = 0
        for user in range(2000, 2020):
            chat = bot.chat(user)
            for _ in range(MAX_FAILED_INVITE_ATTEMPTS + 1):
                await chat.send(f"/start {secrets.token_urlsafe(INVITE_CODE_BYTES)}")
                guesses += 1
            # Locked out now, even with the right code.
            await chat.send(f"/start {real}")
            assert "Too many wrong codes" in (bot.telegram.last.text or "")
        figures["invite_guesses_refused"] += guesses
        roles = {(await bot.services.accounts.actor(u)).role.value for u in range(2000, 2020)}
        assert roles == {"resident"}
        # The real code still works for the person it was meant for.
        await bot.chat(3000).send(f"/start {real}")
        assert "Welcome aboard" in (bot.telegram.last.text or "")


# ---- webhook ---------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "has space", "bad/char", "ü-umlaut", "x" * 257], ids=repr)
def test_a_webhook_secret_telegram_would_refuse_is_refused_at_start(secret: str) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings(_env_file=None, run_mode="webhook", webhook_secret=secret)


def test_a_good_webhook_secret_is_accepted() -> None:
    settings = Settings(_env_file=None, run_mode="webhook", webhook_secret=WEBHOOK_SECRET)
    assert settings.webhook_secret is not None
    assert WEBHOOK_SECRET not in repr(settings)
