"""The local Bot API plays by Telegram's rules: edits, groups, blocking, presses that expire,
flood control, and the limits of the methods the bot uses."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from sandbox.botapi import Rules, create_botapi_app
from sandbox.botapi.rules import DELETE_WINDOW_SECONDS, FloodControl, url_is_public
from tests.sandbox.botapi.conftest import MANAGER, PERSONAS, RESIDENT, TOKEN

# These tests send what Telegram refuses, to see it refused.
pytestmark = pytest.mark.telegram_refusals()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _client(rules: Rules, clock: Clock) -> httpx.AsyncClient:
    app = create_botapi_app(token=TOKEN, personas=PERSONAS, clock=clock, rules=rules)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://botapi")


@pytest.fixture
async def api(clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(Rules(), clock) as client:
        yield client


async def call(api: httpx.AsyncClient, method: str, **params: Any) -> httpx.Response:
    return await api.post(f"/bot{TOKEN}/{method}", json=params)


async def updates(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await call(api, "getUpdates", **params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["result"]
    if found:
        await call(api, "getUpdates", offset=found[-1]["update_id"] + 1)
    return found


def _buttons(*data: str) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": d, "callback_data": d} for d in data]]}


async def test_a_person_edits_their_message_and_the_bot_gets_edited_message(
    api: httpx.AsyncClient,
) -> None:
    sent = await api.post(f"/api/chats/{RESIDENT.user_id}/messages", json={"text": "/start"})
    message_id = sent.json()["message_id"]
    await updates(api)
    edited = await api.post(
        f"/api/chats/{RESIDENT.user_id}/messages/{message_id}/edit", json={"text": "/bookings"}
    )
    assert edited.status_code == 200
    assert edited.json()["edited"]
    [update] = await updates(api)
    assert update["edited_message"]["text"] == "/bookings"
    assert update["edited_message"]["edit_date"]
    # Only one's own text can be edited.
    bot = await call(api, "sendMessage", chat_id=RESIDENT.user_id, text="hi")
    own = await api.post(
        f"/api/chats/{RESIDENT.user_id}/messages/{bot.json()['result']['message_id']}/edit",
        json={"text": "x"},
    )
    assert own.status_code == 400


async def test_allowed_updates_leave_out_edits(api: httpx.AsyncClient) -> None:
    await updates(api, allowed_updates=["message", "callback_query"])
    sent = await api.post(f"/api/chats/{RESIDENT.user_id}/messages", json={"text": "hello"})
    await updates(api)
    await api.post(
        f"/api/chats/{RESIDENT.user_id}/messages/{sent.json()['message_id']}/edit",
        json={"text": "hello again"},
    )
    assert await updates(api) == []


async def test_a_group_of_personas_with_the_bot(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/api/groups",
        json={"title": "Block B", "members": [RESIDENT.user_id, MANAGER.user_id]},
    )
    assert created.status_code == 200, created.text
    chat_id = created.json()["chat_id"]
    assert chat_id < 0
    [added] = await updates(api)
    member = added["my_chat_member"]
    assert member["chat"] == {"id": chat_id, "type": "group", "title": "Block B"}
    assert (member["old_chat_member"]["status"], member["new_chat_member"]["status"]) == (
        "left",
        "member",
    )
    # Privacy mode: commands reach the bot, chatter does not.
    await api.post(
        f"/api/groups/{chat_id}/messages", json={"from": MANAGER.user_id, "text": "morning"}
    )
    await api.post(
        f"/api/groups/{chat_id}/messages", json={"from": RESIDENT.user_id, "text": "/whoami"}
    )
    [command] = await updates(api)
    assert command["message"]["chat"]["type"] == "group"
    assert command["message"]["from"]["id"] == RESIDENT.user_id
    sent = await call(
        api, "sendMessage", chat_id=chat_id, text="In private, please", reply_markup=_buttons("x")
    )
    assert sent.status_code == 200
    shown = (await api.get(f"/api/groups/{chat_id}/messages")).json()
    assert [m["from"] for m in shown] == ["user", "user", "bot"]
    assert shown[0]["sender"]["user_id"] == MANAGER.user_id
    pressed = await api.post(
        f"/api/groups/{chat_id}/callbacks",
        json={"from": MANAGER.user_id, "message_id": shown[-1]["message_id"], "data": "x"},
    )
    assert pressed.status_code == 200
    [press] = await updates(api)
    assert press["callback_query"]["from"]["id"] == MANAGER.user_id
    # Telegram asks for a phone number only in private chats.
    contact = await call(
        api,
        "sendMessage",
        chat_id=chat_id,
        text="Share",
        reply_markup={"keyboard": [[{"text": "Phone", "request_contact": True}]]},
    )
    assert contact.status_code == 400
    assert (await api.get("/api/groups")).json()[0]["title"] == "Block B"


async def test_a_blocked_user_gets_nothing_and_the_bot_hears_of_it(
    api: httpx.AsyncClient,
) -> None:
    blocked = await api.post(f"/api/chats/{RESIDENT.user_id}/block")
    assert blocked.json()["blocked"]
    [update] = await updates(api)
    assert update["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    refused = await call(api, "sendMessage", chat_id=RESIDENT.user_id, text="An alert")
    assert refused.status_code == 403
    assert refused.json()["description"] == "Forbidden: bot was blocked by the user"
    await api.post(f"/api/chats/{RESIDENT.user_id}/unblock")
    [update] = await updates(api)
    assert update["my_chat_member"]["old_chat_member"]["status"] == "kicked"
    assert update["my_chat_member"]["new_chat_member"]["status"] == "member"
    assert (await call(api, "sendMessage", chat_id=RESIDENT.user_id, text="Hi")).is_success


async def test_a_press_is_answered_once_within_its_window_and_old_buttons_still_press(
    api: httpx.AsyncClient, clock: Clock
) -> None:
    first = await call(
        api, "sendMessage", chat_id=RESIDENT.user_id, text="One", reply_markup=_buttons("a")
    )
    await call(
        api, "sendMessage", chat_id=RESIDENT.user_id, text="Two", reply_markup=_buttons("b")
    )
    old_id = first.json()["result"]["message_id"]

    async def press(data: str) -> str:
        answer = await api.post(
            f"/api/chats/{RESIDENT.user_id}/callbacks",
            json={"message_id": old_id, "data": data},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["callback_query_id"])

    query = await press("a")  # a button of an earlier message
    assert (await call(api, "answerCallbackQuery", callback_query_id=query)).is_success
    again = await call(api, "answerCallbackQuery", callback_query_id=query)
    assert again.status_code == 400
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    assert again.json()["description"] == too_old
    late = await press("a")
    clock.now += 15.5
    refused = await call(api, "answerCallbackQuery", callback_query_id=late)
    assert refused.json()["description"] == too_old
    # Data that is not on that message stays refused.
    wrong = await api.post(
        f"/api/chats/{RESIDENT.user_id}/callbacks", json={"message_id": old_id, "data": "b"}
    )
    assert wrong.status_code == 400


async def test_flood_control_answers_429_with_whole_seconds(clock: Clock) -> None:
    async with await _client(Rules(flood_control=True), clock) as api:
        answers = [
            await call(api, "sendMessage", chat_id=RESIDENT.user_id, text=f"n{n}")
            for n in range(6)
        ]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        retry_after = answers[-1].json()["parameters"]["retry_after"]
        assert isinstance(retry_after, int)
        assert retry_after >= 1
        clock.now += retry_after
        assert (await call(api, "sendMessage", chat_id=RESIDENT.user_id, text="later")).is_success
        # Another chat is not held up by the first one's burst.
        assert (await call(api, "sendMessage", chat_id=MANAGER.user_id, text="hi")).is_success


def test_flood_control_limits_groups_per_minute_and_everyone_per_second() -> None:
    clock = Clock()
    flood = FloodControl(clock)
    assert all(flood.admit(-1, group=True) is None for _ in range(20))
    assert flood.admit(-1, group=True) == 60
    clock.now += 60
    overall = [flood.admit(n, group=False) for n in range(40)]
    assert overall[:30] == [None] * 30
    assert overall[30] == 1


def _image(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_photo_dimensions_file_size_and_delete_window(
    api: httpx.AsyncClient, clock: Clock
) -> None:
    narrow = await api.post(
        f"/bot{TOKEN}/sendPhoto",
        data={"chat_id": str(RESIDENT.user_id)},
        files={"photo": ("p.png", _image(2100, 100), "image/png")},
    )
    assert narrow.json()["description"] == "Bad Request: PHOTO_INVALID_DIMENSIONS"
    sent = await call(api, "sendMessage", chat_id=RESIDENT.user_id, text="old")
    message_id = sent.json()["result"]["message_id"]
    clock.now += DELETE_WINDOW_SECONDS + 1
    late = await call(api, "deleteMessage", chat_id=RESIDENT.user_id, message_id=message_id)
    assert late.json()["description"] == "Bad Request: message can't be deleted"


async def test_get_file_stops_at_20_mb(api: httpx.AsyncClient) -> None:
    app_state = api._transport.app.state.botapi  # type: ignore[attr-defined]
    big = app_state.store_file(b"0" * (20 * 1024 * 1024 + 1), kind="documents", mime_type="x/y")
    answer = await call(api, "getFile", file_id=big.file_id)
    assert answer.json()["description"] == "Bad Request: file is too big"


async def test_button_urls_must_be_public_in_production(clock: Clock) -> None:
    login = {"inline_keyboard": [[{"text": "Log in", "url": "http://127.0.0.1:8081/login"}]]}
    async with await _client(Rules(public_urls_only=True), clock) as api:
        refused = await call(
            api, "sendMessage", chat_id=RESIDENT.user_id, text="Link", reply_markup=login
        )
        assert refused.status_code == 400
        assert "Wrong HTTP URL" in refused.json()["description"]
    async with await _client(Rules(), clock) as api:
        sent = await call(
            api, "sendMessage", chat_id=RESIDENT.user_id, text="Link", reply_markup=login
        )
        assert sent.is_success
    assert url_is_public("https://t.me/concierge_bot?start=x")
    assert not url_is_public("http://localhost:8081/")
    assert not url_is_public("http://192.168.1.4/")


@pytest.mark.parametrize("name", ["/start", "Start", " start", "start now"])
async def test_command_names_are_checked_as_typed(api: httpx.AsyncClient, name: str) -> None:
    answer = await call(api, "setMyCommands", commands=[{"command": name, "description": "Menu"}])
    assert answer.json()["description"] == "Bad Request: BOT_COMMAND_INVALID"
