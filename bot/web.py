"""The bot's small web server: the OAuth callback, health, and Telegram's webhook.

It runs in the bot's own process beside the Application (PTB's custom-webhook pattern), so the
callback can tell the user in Telegram the moment their account is linked.
"""

from __future__ import annotations

import hmac
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from conversations.i18n import LANGUAGES, tr

logger = logging.getLogger(__name__)

OAUTH_CALLBACK_PATH = "/oauth/akubela/callback"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


@dataclass(frozen=True, slots=True)
class CallbackPage:
    """What the browser shows after the OAuth round trip."""

    ok: bool
    message: str  # an English message id, shown in both languages


OAuthHandler = Callable[[str | None, str | None, str | None], Awaitable[CallbackPage]]
HealthCheck = Callable[[], Awaitable[bool]]
UpdateSink = Callable[[dict[str, Any]], Awaitable[None]]


def _page(result: CallbackPage) -> HTMLResponse:
    title = tr("en", "Concierge")
    lines = "".join(
        f"<p lang='{lang}'>{html.escape(tr(lang, result.message))}</p>" for lang in LANGUAGES
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;"
        "padding:0 1rem;line-height:1.5}h1{font-size:1.4rem}</style></head><body>"
        f"<h1>{'✅' if result.ok else '⚠️'} {html.escape(title)}</h1>{lines}</body></html>"
    )
    return HTMLResponse(body, status_code=200 if result.ok else 400)


def create_web_app(
    *,
    on_oauth_callback: OAuthHandler,
    health: HealthCheck,
    on_update: UpdateSink | None = None,
    webhook_secret: str | None = None,
) -> Starlette:
    """Builds the web app; the webhook route exists only in webhook mode."""

    async def oauth_callback(request: Request) -> HTMLResponse:
        params = request.query_params
        result = await on_oauth_callback(
            params.get("code"), params.get("state"), params.get("error")
        )
        return _page(result)

    async def healthz(request: Request) -> JSONResponse:
        healthy = await health()
        return JSONResponse({"ok": healthy}, status_code=200 if healthy else 503)

    async def webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if webhook_secret is None or not hmac.compare_digest(given, webhook_secret):
            logger.warning("webhook call without the right secret token refused")
            return Response(status_code=403)
        try:
            payload = await request.json()
        except ValueError:
            return Response(status_code=400)
        if not isinstance(payload, dict) or on_update is None:
            return Response(status_code=400)
        await on_update(payload)
        return Response(status_code=200)

    routes = [
        Route(OAUTH_CALLBACK_PATH, oauth_callback, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if on_update is not None:
        routes.append(Route(WEBHOOK_PATH, webhook, methods=["POST"]))
    return Starlette(routes=routes)
