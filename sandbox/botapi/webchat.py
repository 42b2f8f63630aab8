"""The web chat's JSON API: what a person does in the page becomes Bot API updates.

- `GET /api/personas` → `[{"user_id", "name", "role", "language_code", "community"}]`
  (`community`: the ids of the communities the persona belongs to)
- `GET /api/chats/{user_id}` → the chat's state: `version`, `typing`, `typing_for` (seconds),
  `reply_keyboard` (the keyboard shown under the input, or null), `commands` (the bot's menu
  for the persona's language), `toasts` (`[{"seq", "text", "show_alert"}]`, newest last) and
  `bot` (`{"name", "username"}`).
- `GET /api/chats/{user_id}/events?since=<version>&timeout=<s>` → the same, answered as soon
  as `version` passes `since` or after `timeout` seconds (at most 25): a long poll.
- `GET /api/chats/{user_id}/messages` → every message in the chat, oldest first (see
  `message_view`).
- `POST /api/chats/{user_id}/messages` with `{"text": ...}`, or `{"contact":
  {"phone_number", "first_name"}}` (both optional: the persona's own by default), or a
  multipart body with a `photo` file and an optional `caption` → the new message.
- `POST /api/chats/{user_id}/callbacks` with `{"message_id", "data"}` → presses that inline
  button: `{"callback_query_id"}`; 400 when the message has no such button.
- `POST /api/chats/{user_id}/messages/{message_id}/edit` with `{"text"}` → edits the persona's
  own text message; the bot gets an `edited_message`.
- `POST /api/chats/{user_id}/block` and `/unblock` → the persona blocks or unblocks the bot
  (`my_chat_member` updates; while blocked the bot's sends answer 403).
- `GET /api/groups` → the groups; `POST /api/groups` with `{"title", "members": [user_id, ...],
  "type": "group"|"supergroup"}` → `{"chat_id"}` (the bot is added: `my_chat_member`).
- `GET /api/groups/{chat_id}`, `/events`, `GET/POST /api/groups/{chat_id}/messages` (a post
  needs `"from"`: a member's user_id) and `POST /api/groups/{chat_id}/callbacks` with
  `{"from", "message_id", "data"}`: a group, the same shapes as a private chat.
- `GET /api/files/{file_unique_id}` → a photo or document's bytes, for the page.

Errors answer `{"error": "..."}` with 400 (bad input) or 404 (unknown persona or message).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.botapi.state import JSON, BotApiState, Chat, Message

MAX_EVENT_WAIT = 25.0
MAX_PHOTO_BYTES = 10 * 1024 * 1024


def _state(request: Request) -> BotApiState:
    state: BotApiState = request.app.state.botapi
    return state


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _NotFound(Exception):
    pass


def _chat(request: Request) -> Chat:
    """The private chat (`/api/chats/{user_id}`) or group (`/api/groups/{chat_id}`) addressed."""
    state = _state(request)
    try:
        if "chat_id" in request.path_params:
            chat = state.group_chat(int(request.path_params["chat_id"]))
        else:
            chat = state.persona_chat(int(request.path_params["user_id"]))
    except ValueError:
        raise _NotFound from None
    if chat is None:
        raise _NotFound
    return chat


def _sender(chat: Chat, body: JSON) -> int | None:
    """Who acts: in a group, the member named by `from`; in a private chat, the persona."""
    if chat.is_private:
        return None
    sender = body.get("from")
    if not isinstance(sender, int) or sender not in chat.members:
        raise ValueError('"from" must be the user_id of a member of the group')
    return sender


def message_view(state: BotApiState, message: Message) -> JSON:
    """A message as the page shows it (ids, side, content, buttons, flags)."""
    view: JSON = {
        "message_id": message.message_id,
        "from": "bot" if message.from_bot else "user",
        "date": message.date,
        "edited": message.edit_date is not None,
        "deleted": message.deleted,
    }
    if not message.from_bot and message.sender is not None:
        sender = state.personas.get(message.sender)
        view["sender"] = {
            "user_id": message.sender,
            "name": sender.name if sender else str(message.sender),
        }
    if message.deleted:
        return view
    if message.text is not None:
        view["text"] = message.text
        view["entities"] = message.entities
    if message.caption is not None:
        view["caption"] = message.caption
        view["entities"] = message.caption_entities
    if message.photo:
        view["photo"] = f"/api/files/{message.photo[-1].file_unique_id}"
    if message.document is not None:
        view["document"] = {
            "name": message.document.file_name or "document",
            "url": f"/api/files/{message.document.file_unique_id}",
            "size": len(message.document.data),
        }
    if message.contact is not None:
        view["contact"] = message.contact
    if message.media_group_id is not None:
        view["media_group_id"] = message.media_group_id
    if message.reply_to_message_id is not None:
        view["reply_to"] = message.reply_to_message_id
    view["buttons"] = [
        [_button_view(button) for button in row] for row in message.inline_keyboard or []
    ]
    if message.reply_keyboard is not None:
        view["reply_keyboard"] = message.reply_keyboard
    return view


def _button_view(button: JSON) -> JSON:
    view: JSON = {"text": button["text"]}
    for key in ("callback_data", "url"):
        if key in button:
            view[key] = button[key]
    return view


def chat_view(state: BotApiState, chat: Chat) -> JSON:
    """The chat's live state for the page: typing, keyboard, toasts, command menu."""
    persona = chat.persona
    group = None
    if not chat.is_private:
        group = {
            "chat_id": chat.chat_id,
            "title": chat.title,
            "type": chat.kind,
            "members": [_persona_view(state.chats[m]) for m in chat.members if m in state.chats],
        }
    # Telegram's documented order: this chat's menu, then all private (or group) chats', then
    # the default; each first in the user's language, then without one.
    everyone_here = "all_private_chats" if chat.is_private else "all_group_chats"
    scopes = (f"chat:{persona.user_id}", everyone_here, "default")
    languages = (persona.language_code, "")
    commands = next(
        (
            state.commands[(scope, language)]
            for scope in scopes
            for language in languages
            if (scope, language) in state.commands
        ),
        [],
    )
    typing_for = state.typing_for(chat)
    return {
        "version": chat.version,
        "typing": typing_for > 0,
        "typing_for": round(typing_for, 2),
        "reply_keyboard": chat.reply_keyboard,
        "commands": commands,
        "toasts": [
            {"seq": t.seq, "text": t.text, "show_alert": t.show_alert} for t in chat.toasts
        ],
        "bot": {"name": state.bot_name, "username": state.bot_username},
        "persona": _persona_view(chat),
        "blocked": chat.blocked,
        "group": group,
    }


def _persona_view(chat: Chat) -> JSON:
    persona = chat.persona
    return {
        "user_id": persona.user_id,
        "name": persona.name,
        "role": persona.role,
        "language_code": persona.language_code,
        "community": list(persona.communities),
    }


async def personas(request: Request) -> Response:
    """Lists who one can chat as."""
    state = _state(request)
    return JSONResponse([_persona_view(chat) for chat in state.chats.values() if chat.is_private])


async def chat_state(request: Request) -> Response:
    """The chat's live state."""
    try:
        chat = _chat(request)
    except _NotFound:
        return _error(404, "unknown persona")
    return JSONResponse(chat_view(_state(request), chat))


async def events(request: Request) -> Response:
    """Long poll: answers when the chat changes after `since`, or after `timeout` seconds."""
    try:
        chat = _chat(request)
    except _NotFound:
        return _error(404, "unknown persona")
    state = _state(request)
    try:
        since = int(request.query_params.get("since", "-1"))
        timeout = min(MAX_EVENT_WAIT, max(0.0, float(request.query_params.get("timeout", "0"))))
    except ValueError:
        return _error(400, "since and timeout must be numbers")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while chat.version <= since and not state.closed:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await state.chats_signal.wait(remaining)
    return JSONResponse(chat_view(state, chat))


async def list_messages(request: Request) -> Response:
    """Every message in the chat, oldest first."""
    try:
        chat = _chat(request)
    except _NotFound:
        return _error(404, "unknown persona")
    state = _state(request)
    return JSONResponse([message_view(state, m) for m in chat.messages.values()])


async def post_message(request: Request) -> Response:
    """A persona sends text, a photo or their contact."""
    try:
        chat = _chat(request)
    except _NotFound:
        return _error(404, "unknown persona")
    state = _state(request)
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            if not chat.is_private:
                raise ValueError("photos go to private chats only here")
            message = await _post_photo(request, state, chat)
        else:
            message = _post_json(state, chat, await _json_body(request))
    except ValueError as exc:
        return _error(400, str(exc))
    return JSONResponse(message_view(state, message))


async def _json_body(request: Request) -> JSON:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ValueError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _post_json(state: BotApiState, chat: Chat, body: JSON) -> Message:
    sender = _sender(chat, body)
    contact = body.get("contact")
    if contact is not None:
        if not chat.is_private:
            raise ValueError("contacts go to private chats only")
        if not isinstance(contact, dict):
            raise ValueError("contact must be an object")
        return state.user_sends_contact(
            chat, _opt_str(contact, "phone_number"), _opt_str(contact, "first_name")
        )
    text = body.get("text")
    if not isinstance(text, str):
        raise ValueError('send {"text": ...}, {"contact": {...}} or a multipart photo')
    return state.user_sends_text(chat, text, sender=sender)


def _opt_str(data: JSON, key: str) -> str | None:
    value: Any = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


async def _post_photo(request: Request, state: BotApiState, chat: Chat) -> Message:
    async with request.form(max_files=1, max_fields=10) as form:
        photo = form.get("photo")
        caption = form.get("caption")
        if not isinstance(photo, UploadFile):
            raise ValueError("a multipart body needs a photo file")
        data = await photo.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise ValueError("the photo is larger than 10 MB")
    return state.user_sends_photo(chat, data, caption if isinstance(caption, str) else None)


async def post_callback(request: Request) -> Response:
    """A persona presses an inline button."""
    try:
        chat = _chat(request)
    except _NotFound:
        return _error(404, "unknown persona")
    state = _state(request)
    try:
        body = await _json_body(request)
        message_id = body.get("message_id")
        data = body.get("data")
        if not isinstance(message_id, int) or not isinstance(data, str):
            raise ValueError('send {"message_id": <int>, "data": <str>}')
        query_id = state.user_presses(chat, message_id, data, sender=_sender(chat, body))
    except LookupError as exc:
        return _error(404, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    return JSONResponse({"callback_query_id": query_id})


async def edit_message(request: Request) -> Response:
    """A person edits a text message of their own (the bot gets an `edited_message`)."""
    try:
        chat = _chat(request)
    except _NotFound:
        return _error(404, "unknown chat")
    state = _state(request)
    try:
        body = await _json_body(request)
        text = body.get("text")
        if not isinstance(text, str):
            raise ValueError('send {"text": ...}')
        message = state.user_edits_text(
            chat, int(request.path_params["message_id"]), text, sender=_sender(chat, body)
        )
    except LookupError as exc:
        return _error(404, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    return JSONResponse(message_view(state, message))


async def block(request: Request) -> Response:
    """The persona blocks (`/block`) or unblocks (`/unblock`) the bot."""
    try:
        chat = _chat(request)
    except _NotFound:
        return _error(404, "unknown persona")
    state = _state(request)
    if request.url.path.endswith("/unblock"):
        state.unblock(chat)
    else:
        state.block(chat)
    return JSONResponse(chat_view(state, chat))


async def groups(request: Request) -> Response:
    """GET lists the groups; POST creates one with the bot in it."""
    state = _state(request)
    if request.method == "GET":
        return JSONResponse(
            [
                {"chat_id": chat.chat_id, "title": chat.title, "type": chat.kind}
                for chat in state.chats.values()
                if not chat.is_private
            ]
        )
    try:
        body = await _json_body(request)
        members = body.get("members")
        if not isinstance(members, list) or not all(isinstance(m, int) for m in members):
            raise ValueError('"members" must be a list of user ids')
        chat = state.create_group(
            str(body.get("title") or ""), members, str(body.get("type") or "group")
        )
    except ValueError as exc:
        return _error(400, str(exc))
    return JSONResponse({"chat_id": chat.chat_id})


async def file_bytes(request: Request) -> Response:
    """A stored file for the page (by its unique id, so the token never reaches the page)."""
    stored = _state(request).files_by_unique_id.get(request.path_params["file_unique_id"])
    if stored is None:
        return _error(404, "unknown file")
    return Response(
        stored.data,
        media_type=stored.mime_type,
        headers={"Cache-Control": "private, max-age=3600"},
    )


def webchat_routes() -> list[Route]:
    """The JSON API routes, mounted by the app factory."""
    return [
        Route("/api/personas", personas),
        Route("/api/chats/{user_id}", chat_state),
        Route("/api/chats/{user_id}/events", events),
        Route("/api/chats/{user_id}/messages", list_messages, methods=["GET"]),
        Route("/api/chats/{user_id}/messages", post_message, methods=["POST"]),
        Route("/api/chats/{user_id}/callbacks", post_callback, methods=["POST"]),
        Route(
            "/api/chats/{user_id}/messages/{message_id:int}/edit", edit_message, methods=["POST"]
        ),
        Route("/api/chats/{user_id}/block", block, methods=["POST"]),
        Route("/api/chats/{user_id}/unblock", block, methods=["POST"]),
        Route("/api/groups", groups, methods=["GET", "POST"]),
        Route("/api/groups/{chat_id}", chat_state),
        Route("/api/groups/{chat_id}/events", events),
        Route("/api/groups/{chat_id}/messages", list_messages, methods=["GET"]),
        Route("/api/groups/{chat_id}/messages", post_message, methods=["POST"]),
        Route("/api/groups/{chat_id}/callbacks", post_callback, methods=["POST"]),
        Route(
            "/api/groups/{chat_id}/messages/{message_id:int}/edit", edit_message, methods=["POST"]
        ),
        Route("/api/files/{file_unique_id}", file_bytes),
    ]
