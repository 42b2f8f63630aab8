"""Garbage sent to the sandbox gets each vendor's error shape, never a crash."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

METHOD = "/akubela/api/v1.0/invoke/open-ability/method"


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        (f"{METHOD}/user-commands", b"\xff\xfe not utf-8", "application/json"),
        (f"{METHOD}/user-commands", b"{", "application/json"),
        (f"{METHOD}/manager-commands", b"[1, 2]", "application/json"),
        (f"{METHOD}/oauth2/token", b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (f"{METHOD}/oauth2/auth", b"\x00\x01", "application/x-www-form-urlencoded"),
    ],
)
async def test_akubela_answers_garbage_politely(
    sandbox_app: Starlette, path: str, body: bytes, content_type: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox_app), base_url="http://sandbox"
    ) as http:
        response = await http.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code < 500
    if response.headers.get("content-type", "").startswith("application/json"):
        assert response.json().get("success") is False
