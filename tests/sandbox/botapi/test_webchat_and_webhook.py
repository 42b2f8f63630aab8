"""The page's JSON API, webhook delivery, albums and documents."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import BotCommandScopeChat, InputMediaPhoto, Update
from telegram.error import BadRequest, Conflict

from tests.sandbox.botapi.conftest import (
    FRESH,
    MANAGER,
    PERSONAS,
    RESIDENT,
    LiveBotApi,
    png_bytes,
    serve_in_loop,
)


async def test_personas_are_listed_for_the_picker(botapi: LiveBotApi) -> None:
    listed = (await botapi.http.get("/api/personas")).json()
    assert [(p["user_id"], p["name"], p["role"]) for p in listed] == [
        (p.user_id, p.name, p.role) for p in PERSONAS
    ]
    assert (await botapi.http.get("/api/chats/999/messages")).status_code == 404


async def test_the_page_is_served(botapi: LiveBotApi) -> None:
    page = await botapi.http.get("/")
    assert page.status_code == 200
    assert "chat.js" in page.text
    assert (await botapi.http.get("/static/chat.js")).status_code == 200


async def test_bad_page_input_is_refused(botapi: LiveBotApi) -> None:
    empty = await botapi.http.post(f"/api/chats/{FRESH.user_id}/messages", json={"text": " "})
    not_image = await botapi.http.post(
        f"/api/chats/{FRESH.user_id}/messages", files={"photo": ("x.png", b"nope", "image/png")}
    )
    assert (empty.status_code, not_image.status_code) == (400, 400)
    assert botapi.state.updates == []


async def test_events_long_poll_returns_on_change(botapi: LiveBotApi) -> None:
    base = f"/api/chats/{RESIDENT.user_id}"
    version = (await botapi.http.get(base)).json()["version"]
    waiting = asyncio.create_task(
        botapi.http.get(f"{base}/events", params={"since": version, "timeout": 10})
    )
    await asyncio.sleep(0.05)
    assert not waiting.done()
    async with botapi.bot() as bot:
        await bot.send_message(RESIDENT.user_id, "ping")
    async with asyncio.timeout(2):
        changed = (await waiting).json()
    assert changed["version"] > version
    quick = await botapi.http.get(f"{base}/events", params={"since": changed["version"]})
    assert quick.json()["version"] == changed["version"]


async def test_commands_menu_follows_the_persona_language(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        await bot.set_my_commands([("repair", "Report a repair")])
        await bot.set_my_commands([("repair", "报修")], language_code="zh")
        assert [c.command for c in await bot.get_my_commands()] == ["repair"]
    zh = (await botapi.http.get(f"/api/chats/{RESIDENT.user_id}")).json()["commands"]
    en = (await botapi.http.get(f"/api/chats/{MANAGER.user_id}")).json()["commands"]
    assert zh == [{"command": "repair", "description": "报修"}]
    assert en == [{"command": "repair", "description": "Report a repair"}]


@pytest.mark.telegram_refusals("chat not found", "invalid language code")
async def test_a_chat_menu_comes_before_the_default_as_telegram_documents(
    botapi: LiveBotApi,
) -> None:
    async with botapi.bot() as bot:
        await bot.set_my_commands([("help", "Help")])
        await bot.set_my_commands(
            [("assign", "Assign a task")], scope=BotCommandScopeChat(MANAGER.user_id)
        )
        await bot.set_my_commands(
            [("assign", "派发任务")],
            scope=BotCommandScopeChat(MANAGER.user_id),
            language_code="zh",
        )
        own = await bot.get_my_commands(scope=BotCommandScopeChat(MANAGER.user_id))
        assert [c.description for c in own] == ["Assign a task"]
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.set_my_commands([("help", "Help")], scope=BotCommandScopeChat(424242))
        with pytest.raises(BadRequest, match=r"(?i)invalid language code"):
            await bot.set_my_commands([("help", "Help")], language_code="zh-hans")
    manager = (await botapi.http.get(f"/api/chats/{MANAGER.user_id}")).json()["commands"]
    resident = (await botapi.http.get(f"/api/chats/{RESIDENT.user_id}")).json()["commands"]
    assert manager == [{"command": "assign", "description": "Assign a task"}]
    assert resident == [{"command": "help", "description": "Help"}]


async def test_media_group_documents_and_caption_edits(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        album = await bot.send_media_group(
            MANAGER.user_id,
            [InputMediaPhoto(png_bytes(), caption="before"), InputMediaPhoto(png_bytes(10, 10))],
        )
        document = await bot.send_document(
            MANAGER.user_id, b"report body", filename="report.txt", caption="Monthly report"
        )
        edited = await bot.edit_message_caption(
            MANAGER.user_id, album[0].message_id, caption="<i>after</i>", parse_mode="HTML"
        )
        file = await bot.get_file(document.document.file_id if document.document else "")
        body = await file.download_as_bytearray()
    assert len({m.media_group_id for m in album}) == 1
    assert not isinstance(edited, bool)
    assert edited.caption == "after"
    assert bytes(body) == b"report body"
    shown = await botapi.messages(MANAGER.user_id)
    assert shown[0]["edited"] is True
    assert shown[2]["document"]["name"] == "report.txt"
    assert (await botapi.http.get(shown[2]["document"]["url"])).content == b"report body"


async def test_webhook_delivers_updates_with_the_secret_header(botapi: LiveBotApi) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    arrived = asyncio.Event()

    async def hook(request: Request) -> Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        arrived.set()
        return JSONResponse({})

    receiver = Starlette(routes=[Route("/telegram", hook, methods=["POST"])])
    async with serve_in_loop(receiver) as hook_url, botapi.bot() as bot:
        assert await bot.set_webhook(f"{hook_url}/telegram", secret_token="s3cret-Token_1")
        info = await bot.get_webhook_info()
        assert info.url == f"{hook_url}/telegram"
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        await botapi.say(RESIDENT.user_id, "via webhook")
        async with asyncio.timeout(3):
            await arrived.wait()
        await bot.delete_webhook()
        assert await bot.get_updates() == ()

    [(secret, payload)] = received
    assert secret == "s3cret-Token_1"
    update = Update.de_json(payload, None)
    assert update.message is not None
    assert update.message.text == "via webhook"


@pytest.mark.telegram_refusals("wrong file identifier", "bad webhook")
async def test_webhooks_only_go_to_loopback(botapi: LiveBotApi) -> None:
    async with botapi.bot() as bot:
        with pytest.raises(BadRequest, match=r"(?i)bad webhook"):
            await bot.set_webhook("https://bot.example.org/telegram")


async def test_a_failing_webhook_is_retried_and_reported(botapi: LiveBotApi) -> None:
    calls = 0

    async def flaky(request: Request) -> Response:
        nonlocal calls
        calls += 1
        return Response(status_code=500 if calls == 1 else 200)

    receiver = Starlette(routes=[Route("/hook", flaky, methods=["POST"])])
    async with serve_in_loop(receiver) as hook_url, botapi.bot() as bot:
        await bot.set_webhook(f"{hook_url}/hook")
        await botapi.say(RESIDENT.user_id, "retry me")

        async def delivered() -> bool:
            return calls >= 2 and not botapi.state.updates

        await botapi.wait_for(delivered)
        info = await bot.get_webhook_info()
    assert info.last_error_message is not None
    assert "500" in info.last_error_message
