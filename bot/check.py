"""`concierge check`: is this deployment healthy? One line per item, ok or the problem.

Each check only reads: the database's schema version, a token grant and one small page from
each vendor, a login as each stored community's manager with one page of its project,
Telegram's getMe and (in webhook mode) getWebhookInfo. Nothing is written anywhere, so it is
safe to run beside the bot, before a start and after an upgrade. No password or token is
printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from urllib.parse import urlsplit

import httpx
from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.request import BaseRequest, HTTPXRequest

from api.errors import ApiError, AuthError, InvalidRequest, NotFound, RateLimited
from api.redaction import secrets_filter
from bot.app import file_url_for
from bot.communities import access_of
from bot.crypto import TokenDecryptError
from bot.services import Services
from bot.settings import Settings, is_loopback_host
from bot.storage.db import DatabaseError
from bot.storage.migrate import current_revision, head_revision
from bot.web import WEBHOOK_PATH


@dataclass(frozen=True, slots=True)
class Result:
    """One item checked: its name, whether it is fine, and what was found, in words."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """How the item is printed."""
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def _short(error: BaseException) -> str:
    """An error in one line, with anything credential-shaped masked."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return secrets_filter.redact(
        f"{type(error).__name__}: {text}" if text else type(error).__name__
    )


async def check_database(settings: Settings) -> Result:
    """Reachable, and at the schema this code needs."""
    try:
        current = await current_revision(settings.database_url)
    except (DatabaseError, OSError) as exc:
        return Result("database", False, f"cannot be reached ({_short(exc)})")
    head = head_revision()
    if current is None:
        return Result("database", False, "has no schema yet: run `concierge migrate`")
    if current != head:
        return Result(
            "database",
            False,
            f"is at schema {current}, this version needs {head}: run `concierge migrate`",
        )
    return Result("database", True, f"reachable, schema up to date ({head})")


def _vendor_problem(exc: ApiError, *, credentials: str, scope: str, base_url: str) -> str:
    if isinstance(exc, AuthError):
        return f"refused the credentials ({credentials}): {exc.message}"
    if isinstance(exc, NotFound | InvalidRequest):
        return f"refused the request; check {scope}: {exc.message}"
    if isinstance(exc, RateLimited):
        return f"asked us to slow down (rate limited): {exc.message}"
    return f"not answering at {base_url}: {exc.message}"


async def _vendor(
    name: str,
    read: Callable[[], Awaitable[object]],
    *,
    credentials: str,
    scope: str,
    base_url: str,
    ok: str,
) -> Result:
    try:
        await read()
    except ApiError as exc:
        problem = _vendor_problem(exc, credentials=credentials, scope=scope, base_url=base_url)
        return Result(name, False, problem)
    return Result(name, True, ok)


async def check_vendors(services: Services) -> list[Result]:
    """Each vendor grants a token for our credentials and lets us read one small page."""
    settings = services.settings
    return [
        await _vendor(
            "akubela",
            lambda: services.akubela.get_project_maintenance_page(
                services.manager_auth, settings.akubela_project_id, page_size=1
            ),
            credentials="AKUBELA_CLIENT_ID, AKUBELA_CLIENT_SECRET, AKUBELA_MANAGER_USERNAME, "
            "AKUBELA_MANAGER_PASSWORD",
            scope="AKUBELA_PROJECT_ID",
            base_url=settings.akubela_base_url,
            ok=f"manager token granted, project {settings.akubela_project_id} readable",
        ),
        await _vendor(
            "tuya",
            lambda: services.tuya.list_tasks(page_size=1),
            credentials="TUYA_CLIENT_ID, TUYA_CLIENT_SECRET",
            scope="TUYA_PROJECT_ID",
            base_url=settings.tuya_base_url,
            ok=f"token granted, tasks of project {settings.tuya_project_id} readable",
        ),
        await _vendor(
            "servitly",
            lambda: services.servitly.list_historical_events(size=1),
            credentials="SERVITLY_API_KEY, SERVITLY_PAT, SERVITLY_TENANT",
            scope="SERVITLY_TENANT and SERVITLY_TENANT_HEADER",
            base_url=settings.servitly_base_url,
            ok=f"signed in to tenant {settings.servitly_tenant}, events readable",
        ),
    ]


async def check_community_managers(services: Services) -> list[Result]:
    """Each stored community's manager logs in at its Akubela and reads one page of its
    project, so a wrong password in `concierge community` shows before the watcher meets it."""
    results: list[Result] = []
    for row in await services.storage.communities.all():
        name = f"manager of {row.name_en} ({row.id})"
        fix = (
            f"its manager login: `concierge community edit {row.id} --manager-username ... "
            "--manager-password-env VARIABLE`"
        )
        try:
            access = access_of(row, services.cipher)
        except TokenDecryptError:
            results.append(
                Result(name, False, f"the stored password cannot be read with SECRET_KEY; {fix}")
            )
            continue
        client = services.vendors.akubela(access.akubela_base_url)
        # A login of its own, from what is stored: the run may share one login per account.
        login = client.manager_tokens(access.manager_username, access.manager_password)
        project = access.community.akubela_project_id
        results.append(
            await _vendor(
                name,
                partial(client.get_project_maintenance_page, login, project, page_size=1),
                credentials=fix,
                scope=f"its Akubela project ({project})",
                base_url=access.akubela_base_url,
                ok=f"manager login works, project {project} readable",
            )
        )
    return results


def webhook_url(settings: Settings) -> str:
    """Where Telegram should post updates in webhook mode."""
    return settings.public_base_url.rstrip("/") + WEBHOOK_PATH


async def check_telegram(
    settings: Settings, *, request: BaseRequest | None = None, now: datetime | None = None
) -> list[Result]:
    """getMe answers; in webhook mode, the webhook Telegram holds is ours, HTTPS and healthy."""
    own = request is None
    request = request or HTTPXRequest()
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_base_url,
        base_file_url=file_url_for(settings.telegram_base_url),
        request=request,
    )
    try:
        return await _check_bot(bot, settings, now or datetime.now(UTC))
    finally:
        if own:
            await request.shutdown()


async def _check_bot(bot: Bot, settings: Settings, now: datetime) -> list[Result]:
    where = urlsplit(settings.telegram_base_url).netloc
    try:
        me = await bot.get_me()
    except InvalidToken:
        return [Result("telegram", False, f"{where} refused TELEGRAM_BOT_TOKEN")]
    except NetworkError as exc:
        return [Result("telegram", False, f"not answering at {where} ({_short(exc)})")]
    except TelegramError as exc:
        return [Result("telegram", False, f"getMe failed at {where} ({_short(exc)})")]
    results = [Result("telegram", True, f"getMe answers: @{me.username} ({me.first_name})")]
    if settings.run_mode == "webhook":
        results += await _check_webhook(bot, settings, now)
    return results


async def _check_webhook(bot: Bot, settings: Settings, now: datetime) -> list[Result]:
    wanted = webhook_url(settings)
    parts = urlsplit(wanted)
    if parts.scheme == "https":
        secure = Result("webhook https", True, f"{parts.scheme}://{parts.netloc} is HTTPS")
    elif settings.is_demo and is_loopback_host(parts.hostname):
        secure = Result("webhook https", True, "plain http on loopback, for the local Bot API")
    else:
        secure = Result(
            "webhook https",
            False,
            f"PUBLIC_BASE_URL {settings.public_base_url} is not HTTPS; Telegram posts to https:// "
            "only (put the bot behind a TLS reverse proxy)",
        )
    try:
        info = await bot.get_webhook_info()
    except TelegramError as exc:
        return [secure, Result("webhook", False, f"getWebhookInfo failed ({_short(exc)})")]
    if not info.url:
        registered = Result(
            "webhook", False, "Telegram has no webhook: start the bot (`concierge run`) to set it"
        )
    elif info.url != wanted:
        registered = Result(
            "webhook", False, f"Telegram posts to {info.url}, not to {wanted}: restart the bot"
        )
    else:
        registered = Result(
            "webhook", True, f"Telegram posts to {wanted} ({info.pending_update_count} waiting)"
        )
    if info.last_error_date is None:
        delivery = Result("webhook errors", True, "Telegram reports no failed delivery")
    else:
        ago = max(0, int((now - info.last_error_date).total_seconds()))
        delivery = Result(
            "webhook errors",
            False,
            f"Telegram's last delivery failed {_ago(ago)} ago: {info.last_error_message}",
        )
    return [secure, registered, delivery]


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


async def run_checks(
    settings: Settings,
    *,
    vendor_transport: httpx.AsyncBaseTransport | None = None,
    telegram_request: BaseRequest | None = None,
) -> list[Result]:
    """Every check, in the order they are printed (settings loaded, or none would run)."""
    mode = "demo: the local Bot API" if settings.is_demo else "production"
    results = [Result("settings", True, f"loaded ({mode}, {settings.run_mode})")]
    database = await check_database(settings)
    results.append(database)

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    # Retries go at once: a health check says how things are now, it does not wait them out.
    services = Services.open(settings, vendor_transport=vendor_transport, vendor_sleep=no_wait)
    try:
        results += await check_vendors(services)
        if database.ok:
            results += await check_community_managers(services)
    finally:
        await services.aclose()
    results += await check_telegram(settings, request=telegram_request)
    return results
