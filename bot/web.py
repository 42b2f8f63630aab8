"""The bot's small web server: the OAuth callback, health, metrics, and Telegram's webhook.

It runs in the bot's own process beside the Application (PTB's custom-webhook pattern), so the
callback can tell the user in Telegram the moment their account is linked.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from conversations.i18n import LANGUAGES, N_, tr

logger = logging.getLogger(__name__)

OAUTH_CALLBACK_PATH = "/oauth/akubela/callback"
OAUTH_CONFIRM_PATH = "/oauth/akubela/confirm"
WEBHOOK_PATH = "/telegram/webhook"
METRICS_PATH = "/metrics"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
CONFIRM_YES = N_("Yes, link them")
CONFIRM_NO = N_("No, cancel")
# A reverse proxy adds one of these; /metrics is for the machine itself, never through a proxy.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
# The pages carry a one-time confirmation: not cached, not framed (no click-jacking), no referrer.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class CallbackPage:
    """What the browser shows after the OAuth round trip, or asks it to confirm."""

    ok: bool
    message: str  # an English message id, shown in both languages
    values: Mapping[str, str] = field(default_factory=dict)  # its placeholders, as given
    confirm_token: str | None = None  # set: the page asks to confirm, and posts this back


OAuthHandler = Callable[[str | None, str | None, str | None], Awaitable[CallbackPage]]
ConfirmHandler = Callable[[str | None, bool], Awaitable[CallbackPage]]
HealthCheck = Callable[[], Awaitable[bool]]
UpdateSink = Callable[[dict[str, Any]], Awaitable[None]]
MetricsSource = Callable[[], Awaitable[tuple[bytes, str]]]


def _confirm_form(token: str) -> str:
    def label(message: str) -> str:
        return html.escape(" / ".join(tr(lang, message) for lang in LANGUAGES))

    return (
        f"<form method='post' action='{OAUTH_CONFIRM_PATH}'>"
        f"<input type='hidden' name='token' value='{html.escape(token, quote=True)}'>"
        f"<button name='decision' value='yes'>{label(CONFIRM_YES)}</button> "
        f"<button name='decision' value='no'>{label(CONFIRM_NO)}</button></form>"
    )


def _page(result: CallbackPage) -> HTMLResponse:
    title = tr("en", "Concierge")
    lines = "".join(
        f"<p lang='{lang}'>{html.escape(tr(lang, result.message, **result.values))}</p>"
        for lang in LANGUAGES
    )
    form = _confirm_form(result.confirm_token) if result.confirm_token else ""
    icon = "🔗" if result.confirm_token else "✅" if result.ok else "⚠️"
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;"
        "padding:0 1rem;line-height:1.5}h1{font-size:1.4rem}button{font-size:1rem;"
        "margin:.5rem .5rem 0 0;padding:.5rem 1rem}</style></head><body>"
        f"<h1>{icon} {html.escape(title)}</h1>{lines}{form}</body></html>"
    )
    return HTMLResponse(body, status_code=200 if result.ok else 400, headers=PAGE_HEADERS)


def secret_matches(given: str, expected: str | None) -> bool:
    """Whether a header carries the expected secret; any other value (also non-ASCII) is no."""
    if expected is None:
        return False
    # Starlette decodes header bytes as latin-1, so this gives back exactly what was sent.
    return hmac.compare_digest(given.encode("latin-1"), expected.encode("ascii"))


def _networks(allowed: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(network, strict=False) for network in allowed]


def _may_read_metrics(
    request: Request, allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in allowed)


def create_web_app(
    *,
    on_oauth_callback: OAuthHandler,
    health: HealthCheck,
    on_oauth_confirm: ConfirmHandler | None = None,
    on_update: UpdateSink | None = None,
    webhook_secret: str | None = None,
    metrics: MetricsSource | None = None,
    metrics_allow_from: Sequence[str] = ("127.0.0.1/8", "::1/128"),
) -> Starlette:
    """Builds the web app; the webhook route exists only in webhook mode."""
    metrics_readers = _networks(metrics_allow_from)

    async def oauth_callback(request: Request) -> HTMLResponse:
        params = request.query_params
        result = await on_oauth_callback(
            params.get("code"), params.get("state"), params.get("error")
        )
        return _page(result)

    async def oauth_confirm(request: Request) -> HTMLResponse:
        assert on_oauth_confirm is not None
        form = await request.form()
        token = form.get("token")
        decision = form.get("decision")
        result = await on_oauth_confirm(
            token if isinstance(token, str) else None, decision == "yes"
        )
        return _page(result)

    async def metrics_page(request: Request) -> Response:
        assert metrics is not None
        if not _may_read_metrics(request, metrics_readers):
            return Response(status_code=403)
        body, content_type = await metrics()
        return Response(body, media_type=content_type)

    async def healthz(request: Request) -> JSONResponse:
        healthy = await health()
        return JSONResponse({"ok": healthy}, status_code=200 if healthy else 503)

    async def webhook(request: Request) -> Response:
        if not secret_matches(request.headers.get(SECRET_HEADER, ""), webhook_secret):
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
    if on_oauth_confirm is not None:
        routes.append(Route(OAUTH_CONFIRM_PATH, oauth_confirm, methods=["POST"]))
    if metrics is not None:
        routes.append(Route(METRICS_PATH, metrics_page, methods=["GET"]))
    if on_update is not None:
        routes.append(Route(WEBHOOK_PATH, webhook, methods=["POST"]))
    return Starlette(routes=routes)
