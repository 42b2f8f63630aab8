"""Webhook delivery as Telegram does it: one chat's updates in order, each only after the bot
acknowledged the one before; chats side by side up to max_connections; a time-out retried."""

from __future__ import annotations

import asyncio
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.botapi.webhook import WebhookDelivery
from tests.sandbox.botapi.conftest import MANAGER, RESIDENT, LiveBotApi, serve_in_loop


def _text(body: bytes) -> str:
    update = json.loads(body)
    return str(update["message"]["text"])


async def test_a_chat_waits_for_its_answer_while_other_chats_go_on(botapi: LiveBotApi) -> None:
    seen: list[str] = []
    release = asyncio.Event()

    async def hook(request: Request) -> Response:
        text = _text(await request.body())
        seen.append(text)
        if text == "resident 1":
            await release.wait()  # the bot is still busy with the resident's first message
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_in_loop(receiver) as hook_url, botapi.bot() as bot:
        await bot.set_webhook(f"{hook_url}/hook")
        await botapi.say(RESIDENT.user_id, "resident 1")
        await botapi.say(RESIDENT.user_id, "resident 2")
        await botapi.say(MANAGER.user_id, "manager 1")

        async def manager_through() -> bool:
            return "manager 1" in seen

        await botapi.wait_for(manager_through)
        # The resident's second message is not sent while their first is unanswered.
        assert "resident 2" not in seen
        release.set()

        async def all_through() -> bool:
            return not botapi.state.updates

        await botapi.wait_for(all_through)
    assert seen.index("resident 1") < seen.index("resident 2")


async def test_no_more_than_max_connections_at_once(botapi: LiveBotApi) -> None:
    running = 0
    most = 0

    async def hook(request: Request) -> Response:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_in_loop(receiver) as hook_url, botapi.bot() as bot:
        await bot.set_webhook(f"{hook_url}/hook", max_connections=1)
        await botapi.say(RESIDENT.user_id, "one")
        await botapi.say(MANAGER.user_id, "two")

        async def all_through() -> bool:
            return not botapi.state.updates

        await botapi.wait_for(all_through)
    assert most == 1


async def test_an_answer_that_takes_too_long_is_sent_again(botapi: LiveBotApi) -> None:
    calls = 0

    async def slow_first(request: Request) -> Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(1.0)
        return Response(status_code=200)

    delivery = botapi.state.webhook_delivery
    assert isinstance(delivery, WebhookDelivery)
    delivery.timeout = 0.2
    receiver = Starlette(routes=[Route("/hook", slow_first, methods=["POST"])])
    async with serve_in_loop(receiver) as hook_url, botapi.bot() as bot:
        await bot.set_webhook(f"{hook_url}/hook")
        await botapi.say(RESIDENT.user_id, "are you there?")

        async def delivered() -> bool:
            return calls >= 2 and not botapi.state.updates

        await botapi.wait_for(delivered)
        info = await bot.get_webhook_info()
    assert info.last_error_message == "Read timeout expired"
