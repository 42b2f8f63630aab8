"""The bot's web server: OAuth callback page, health, and the webhook's secret check."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bot.web import SECRET_HEADER, CallbackPage, create_web_app


class Recorder:
    def __init__(self) -> None:
        self.callbacks: list[tuple[str | None, str | None, str | None]] = []
        self.updates: list[dict[str, Any]] = []
        self.healthy = True

    async def on_callback(
        self, code: str | None, state: str | None, error: str | None
    ) -> CallbackPage:
        self.callbacks.append((code, state, error))
        if code == "good":
            return CallbackPage(ok=True, message="Concierge")
        return CallbackPage(
            ok=False,
            message="Nothing was linked. You can close this page.",
        )

    async def health(self) -> bool:
        return self.healthy

    async def on_update(self, payload: dict[str, Any]) -> None:
        self.updates.append(payload)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _client(recorder: Recorder, secret: str | None = "s3cret-token") -> httpx.AsyncClient:
    app = create_web_app(
        on_oauth_callback=recorder.on_callback,
        health=recorder.health,
        on_update=recorder.on_update,
        webhook_secret=secret,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")


async def test_callback_page_speaks_both_languages(recorder: Recorder) -> None:
    async with _client(recorder) as http:
        ok = await http.get("/oauth/akubela/callback", params={"code": "good", "state": "s"})
        bad = await http.get("/oauth/akubela/callback", params={"error": "access_denied"})
    assert ok.status_code == 200
    assert "lang='zh'" in ok.text
    assert bad.status_code == 400
    assert "没有绑定" in bad.text
    assert "Nothing was linked" in bad.text
    assert recorder.callbacks == [("good", "s", None), (None, None, "access_denied")]


async def test_health_reports_trouble(recorder: Recorder) -> None:
    async with _client(recorder) as http:
        assert (await http.get("/healthz")).json() == {"ok": True}
        recorder.healthy = False
        assert (await http.get("/healthz")).status_code == 503


async def test_webhook_requires_telegrams_secret_header(recorder: Recorder) -> None:
    update = {"update_id": 1}
    async with _client(recorder) as http:
        assert (await http.post("/telegram/webhook", json=update)).status_code == 403
        wrong = await http.post("/telegram/webhook", json=update, headers={SECRET_HEADER: "nope"})
        assert wrong.status_code == 403
        right = await http.post(
            "/telegram/webhook", json=update, headers={SECRET_HEADER: "s3cret-token"}
        )
        assert right.status_code == 200
        garbage = await http.post(
            "/telegram/webhook", content=b"{", headers={SECRET_HEADER: "s3cret-token"}
        )
        assert garbage.status_code == 400
    assert recorder.updates == [update]


async def test_webhook_without_a_configured_secret_refuses_everything(recorder: Recorder) -> None:
    async with _client(recorder, secret=None) as http:
        response = await http.post("/telegram/webhook", json={}, headers={SECRET_HEADER: ""})
    assert response.status_code == 403


@pytest.mark.parametrize(
    "header",
    [b"\xe2\x9c\x93-not-ascii", b"s3cret-token\xff", "s3cret-tokén".encode("latin-1"), b""],
)
async def test_a_bad_or_non_ascii_secret_is_a_quiet_403(
    recorder: Recorder, header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with _client(recorder) as http:
        response = await http.post(
            "/telegram/webhook", json={"update_id": 2}, headers={SECRET_HEADER.encode(): header}
        )
    assert response.status_code == 403
    assert recorder.updates == []
    assert not any(record.exc_info or record.exc_text for record in caplog.records)
    assert "Traceback" not in caplog.text


async def test_a_confirmation_page_posts_its_token_back(recorder: Recorder) -> None:
    confirmed: list[tuple[str | None, bool]] = []

    async def ask(code: str | None, state: str | None, error: str | None) -> CallbackPage:
        return CallbackPage(
            ok=True,
            message="Link the Akubela account {email} to the Telegram account {name}? Confirm "
            "only if that Telegram account is yours.",
            values={"email": "alice@demo.community", "name": "<b>Alice</b>"},
            confirm_token="tok'en",
        )

    async def confirm(token: str | None, yes: bool) -> CallbackPage:
        confirmed.append((token, yes))
        return CallbackPage(ok=True, message="Nothing was linked. You can close this page.")

    app = create_web_app(on_oauth_callback=ask, on_oauth_confirm=confirm, health=recorder.health)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bot"
    ) as http:
        page = await http.get("/oauth/akubela/callback", params={"code": "c", "state": "s"})
        assert "alice@demo.community" in page.text
        assert "&lt;b&gt;Alice&lt;/b&gt;" in page.text  # a Telegram name is text, not markup
        assert "value='tok&#x27;en'" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        await http.post("/oauth/akubela/confirm", data={"token": "tok'en", "decision": "yes"})
        await http.post("/oauth/akubela/confirm", data={"token": "tok'en", "decision": "no"})
        assert (await http.get("/oauth/akubela/confirm")).status_code == 405
    assert confirmed == [("tok'en", True), ("tok'en", False)]
