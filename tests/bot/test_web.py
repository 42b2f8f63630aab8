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
