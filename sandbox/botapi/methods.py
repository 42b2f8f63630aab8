"""The Bot API methods, with the checks Telegram makes and the descriptions it answers with."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from sandbox.botapi import entities as entity_parser
from sandbox.botapi import rules
from sandbox.botapi.state import (
    JSON,
    BotApiError,
    BotApiState,
    Chat,
    Message,
    StoredFile,
    Webhook,
    bad_request,
)

MAX_TEXT = rules.MAX_TEXT
MAX_CAPTION = rules.MAX_CAPTION
MAX_CALLBACK_DATA = rules.MAX_CALLBACK_DATA
MAX_POLL_TIMEOUT = 50.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
NOT_MODIFIED = rules.NOT_MODIFIED
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
INLINE_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Params:
    """A method's parameters from a query string, form, multipart or JSON body."""

    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        """Whether the parameter was given (an empty string counts as absent, as in Telegram)."""
        return self.values.get(name) not in (None, "")

    def get_str(self, name: str) -> str | None:
        """A string parameter, or None."""
        value = self.values.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def get_int(self, name: str) -> int | None:
        """An integer parameter, or None; garbage is a Bad Request."""
        value = self.values.get(name)
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            raise bad_request(f"invalid {name} specified")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def get_float(self, name: str) -> float | None:
        """A number parameter, or None."""
        value = self.values.get(name)
        if value in (None, ""):
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def get_bool(self, name: str) -> bool:
        """A boolean parameter (`true`/`false` in forms, JSON booleans in JSON bodies)."""
        value = self.values.get(name)
        if isinstance(value, str):
            return value.strip().lower() in {"true", "1"}
        return bool(value)

    def get_json(self, name: str, error: str) -> Any:
        """A JSON-typed parameter (a JSON string in forms, a value in JSON bodies)."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(error) from None
        return value


Method = Callable[[BotApiState, Params], Awaitable[Any]]
METHODS: dict[str, Method] = {}


def method(name: str) -> Callable[[Method], Method]:
    """Registers a Bot API method under its case-insensitive name."""

    def register(func: Method) -> Method:
        METHODS[name.lower()] = func
        return func

    return register


async def call(state: BotApiState, name: str, params: Params) -> Any:
    """Runs one Bot API method, honouring injected faults."""
    func = METHODS.get(name.lower())
    if func is None:
        # Telegram answers 404 here, which PTB reads as a bad token; 400 tells the truth.
        raise bad_request(f"method {name!r} not found")
    state.calls.append(name.lower())
    fault = state.faults.take(name)
    if fault is not None:
        retry_after: float | int = fault.retry_after
        if float(retry_after).is_integer():
            retry_after = int(retry_after)
        raise BotApiError(
            429,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
        )
    return await func(state, params)


# --- shared checks --------------------------------------------------------------------------


def _chat(state: BotApiState, p: Params, method: str = "") -> Chat:
    """The chat a call names, refused when the bot may not write there (blocked, flood)."""
    if not p.has("chat_id"):
        raise bad_request("chat_id is empty")
    chat = state.chat(p.values["chat_id"])
    state.check_can_send(chat, method)
    return chat


def _formatted(p: Params, text_name: str, entities_name: str) -> tuple[str, list[JSON]]:
    """Text and entities from explicit entities or from parse_mode, refusing bad markup."""
    raw = p.get_str(text_name) or ""
    explicit = p.get_json(entities_name, "can't parse entities JSON object")
    if explicit is not None:
        return raw.strip(), _check_entities(explicit)
    try:
        return entity_parser.parse(raw, p.get_str("parse_mode"))
    except entity_parser.EntityParseError as exc:
        raise bad_request(f"can't parse entities: {exc}") from None


def _check_entities(value: Any) -> list[JSON]:
    if not isinstance(value, list) or not all(
        isinstance(e, dict)
        and isinstance(e.get("type"), str)
        and isinstance(e.get("offset"), int)
        and isinstance(e.get("length"), int)
        for e in value
    ):
        raise bad_request("can't parse entities JSON object")
    return value


def _text(p: Params) -> tuple[str, list[JSON]]:
    text, found = _formatted(p, "text", "entities")
    if not text:
        raise bad_request("message text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return text, found


def _caption(
    p: Params, name: str = "caption", entities: str = "caption_entities"
) -> tuple[str | None, list[JSON]]:
    caption, found = _formatted(p, name, entities)
    if len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return (caption or None), found


@dataclass(slots=True)
class Markup:
    """A parsed reply_markup: at most one of its fields is set."""

    inline: list[list[JSON]] | None = None
    reply: JSON | None = None
    remove: bool = False


def _markup(
    p: Params, *, inline_only: bool = False, rulebook: rules.Rules | None = None
) -> Markup:
    data = p.get_json("reply_markup", "can't parse reply keyboard markup JSON object")
    if data is None:
        return Markup()
    if not isinstance(data, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in data:
        return Markup(inline=_inline_keyboard(data["inline_keyboard"], rulebook or rules.Rules()))
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in data:
        return Markup(reply=_reply_keyboard(data))
    if data.get("remove_keyboard") is True:
        return Markup(remove=True)
    if data.get("force_reply") is True:
        return Markup()
    raise bad_request("can't parse reply keyboard markup JSON object")


def _rows(value: Any, what: str) -> list[list[Any]]:
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise bad_request(f"can't parse {what}: field must be an Array of Arrays")
    return value


def _inline_keyboard(value: Any, rulebook: rules.Rules) -> list[list[JSON]]:
    rows = _rows(value, "inline keyboard")
    keyboard: list[list[JSON]] = []
    for row in rows:
        buttons: list[JSON] = []
        for button in row:
            if not isinstance(button, dict):
                raise bad_request(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            text = button.get("text")
            if not isinstance(text, str):
                raise bad_request(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not text.strip():
                raise bad_request("BUTTON_TEXT_EMPTY")
            actions = INLINE_ACTIONS.intersection(button)
            if not actions:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button:
                refusal = rules.button_url_error(button["url"], rulebook)
                if refusal is not None:
                    raise bad_request(refusal)
            buttons.append(dict(button))
        if buttons:
            keyboard.append(buttons)
    return keyboard


def _reply_keyboard(data: JSON) -> JSON:
    rows = _rows(data["keyboard"], "keyboard")
    keyboard: list[list[JSON]] = []
    for row in rows:
        buttons: list[JSON] = []
        for button in row:
            entry = {"text": button} if isinstance(button, str) else button
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                raise bad_request(
                    "can't parse keyboard button: KeyboardButton must be a String or an Object"
                )
            if not entry["text"].strip():
                raise bad_request("keyboard button text must be non-empty")
            buttons.append(dict(entry))
        if buttons:
            keyboard.append(buttons)
    if not keyboard:
        raise bad_request("keyboard must be non-empty")
    return {**data, "keyboard": keyboard}


def _apply_reply_keyboard(state: BotApiState, chat: Chat, markup: Markup) -> None:
    if markup.reply is not None:
        chat.reply_keyboard = markup.reply
    elif markup.remove:
        chat.reply_keyboard = None
    else:
        return
    state.touch(chat)


def _reply_target(chat: Chat, p: Params) -> int | None:
    target = p.get_json("reply_parameters", "can't parse reply parameters JSON object")
    allow_missing = p.get_bool("allow_sending_without_reply")
    message_id: Any = p.get_int("reply_to_message_id")
    if isinstance(target, dict):
        message_id = target.get("message_id")
        allow_missing = bool(target.get("allow_sending_without_reply", allow_missing))
    if message_id is None:
        return None
    found = chat.messages.get(int(message_id))
    if found is None or found.deleted:
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")
    return found.message_id


def _send(state: BotApiState, chat: Chat, p: Params, markup: Markup, **fields: Any) -> Message:
    if markup.reply is not None and not chat.is_private:
        wants_contact = any(
            isinstance(button, dict) and button.get("request_contact")
            for row in markup.reply["keyboard"]
            for button in row
        )
        if wants_contact:
            raise bad_request(rules.CONTACT_IN_GROUP)
    message = state.add_message(
        chat,
        from_bot=True,
        inline_keyboard=markup.inline,
        reply_keyboard=markup.reply,
        reply_to_message_id=_reply_target(chat, p),
        **fields,
    )
    _apply_reply_keyboard(state, chat, markup)
    return message


# --- files ----------------------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and (parts.hostname or "") in LOOPBACK_HOSTS


async def _fetch(state: BotApiState, url: str) -> tuple[bytes, str]:
    """Fetches a loopback URL; anything else is refused as Telegram refuses a bad URL."""
    if not _is_loopback(url):
        # The sandbox never reaches the internet; only loopback URLs are fetched.
        raise bad_request("wrong file identifier/HTTP URL specified")
    try:
        response = await state.http().get(url)
    except httpx.HTTPError:
        raise bad_request("failed to get HTTP URL content") from None
    if response.status_code != 200:
        raise bad_request("failed to get HTTP URL content")
    content_type = response.headers.get("content-type", "application/octet-stream")
    return response.content, content_type.split(";")[0].strip()


async def _input_bytes(
    state: BotApiState, p: Params, value: Any, name: str
) -> tuple[Upload | None, str | None]:
    """Resolves an InputFile value: an upload (direct or attach://) or else a file_id/URL."""
    if name in p.files and value in (None, ""):
        return p.files[name], None
    if not isinstance(value, str) or not value:
        raise bad_request(f"there is no {name} in the request")
    if value.startswith("attach://"):
        upload = p.files.get(value.removeprefix("attach://"))
        if upload is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return upload, None
    if value.startswith(("http://", "https://")):
        data, content_type = await _fetch(state, value)
        filename = urlsplit(value).path.rsplit("/", 1)[-1] or "file"
        return Upload(filename, content_type, data), None
    return None, value


async def _input_photo(state: BotApiState, p: Params, value: Any, name: str) -> list[StoredFile]:
    upload, file_id = await _input_bytes(state, p, value, name)
    if upload is not None:
        stored = state.store_photo(upload.data)
        full = stored[-1]
        refusal = rules.photo_error(len(full.data), full.width or 0, full.height or 0)
        if refusal is not None:
            raise bad_request(refusal)
        return stored
    assert file_id is not None
    sizes = state.photo_sets.get(file_id)
    if sizes is None:
        if file_id in state.files:
            raise bad_request("can't use file of type Document as Photo")
        raise bad_request("wrong file identifier/HTTP URL specified")
    return sizes


async def _input_document(state: BotApiState, p: Params, value: Any, name: str) -> StoredFile:
    upload, file_id = await _input_bytes(state, p, value, name)
    if upload is not None:
        return state.store_file(
            upload.data,
            kind="documents",
            mime_type=upload.content_type or "application/octet-stream",
            file_name=upload.filename,
        )
    assert file_id is not None
    stored = state.files.get(file_id)
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    return stored


# --- identity, updates, webhooks ------------------------------------------------------------


@method("getMe")
async def get_me(state: BotApiState, p: Params) -> JSON:
    """Answers the bot's own User."""
    return {
        **state.bot_user(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut")
@method("close")
async def log_out(state: BotApiState, p: Params) -> bool:
    """Accepted and ignored: the local server has nothing to hand over."""
    return True


@method("getUpdates")
async def get_updates(state: BotApiState, p: Params) -> list[JSON]:
    """Long-polls for updates; an offset confirms everything before it."""
    if state.webhook is not None:
        raise BotApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
            "to delete the webhook first",
        )
    allowed = p.get_json("allowed_updates", "can't parse allowed_updates JSON object")
    if allowed is not None and not isinstance(allowed, list):
        raise bad_request("can't parse allowed_updates JSON object")
    state.set_allowed_updates(allowed)
    offset = p.get_int("offset")
    if offset:
        state.confirm_updates(offset)
    limit = min(100, max(1, p.get_int("limit") or 100))
    timeout = min(MAX_POLL_TIMEOUT, max(0.0, p.get_float("timeout") or 0.0))
    # Telegram lets one poll run at a time: a newer request ends the older one with 409.
    me = object()
    state.poller = me
    state.updates_signal.fire()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if state.poller is not me:
            raise BotApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot "
                "instance is running",
            )
        if state.webhook is not None:
            raise BotApiError(409, "Conflict: terminated by setWebhook request")
        remaining = deadline - loop.time()
        if state.updates or remaining <= 0 or state.closed:
            if state.poller is me:
                state.poller = None
            return state.updates[:limit]
        await state.updates_signal.wait(remaining)


@method("setWebhook")
async def set_webhook(state: BotApiState, p: Params) -> bool:
    """Switches to webhook delivery (loopback URLs only); an empty url removes the webhook."""
    url = (p.get_str("url") or "").strip()
    if p.get_bool("drop_pending_updates"):
        state.drop_pending_updates()
    allowed = p.get_json("allowed_updates", "can't parse allowed_updates JSON object")
    if allowed is not None and not isinstance(allowed, list):
        raise bad_request("can't parse allowed_updates JSON object")
    if not url:
        state.webhook = None
        return True
    if not _is_loopback(url):
        raise bad_request("bad webhook: the local Bot API delivers only to 127.0.0.1/localhost")
    secret = p.get_str("secret_token")
    if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise bad_request("secret token contains unallowed characters")
    state.set_allowed_updates(allowed)
    state.webhook = Webhook(
        url=url,
        secret_token=SecretStr(secret) if secret else None,
        max_connections=p.get_int("max_connections") or 40,
    )
    state.updates_signal.fire()
    return True


@method("deleteWebhook")
async def delete_webhook(state: BotApiState, p: Params) -> bool:
    """Returns to getUpdates."""
    if p.get_bool("drop_pending_updates"):
        state.drop_pending_updates()
    state.webhook = None
    state.updates_signal.fire()
    return True


@method("getWebhookInfo")
async def get_webhook_info(state: BotApiState, p: Params) -> JSON:
    """Reports the webhook and its delivery backlog."""
    hook = state.webhook
    info: JSON = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(state.updates),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        info["allowed_updates"] = sorted(state.allowed_updates)
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    return info


# --- commands and profile -------------------------------------------------------------------


# Telegram's BotCommandScope types, and which of them name a chat.
_SCOPES: Final = frozenset(
    {"default", "all_private_chats", "all_group_chats", "all_chat_administrators"}
)
_CHAT_SCOPES: Final = frozenset({"chat", "chat_administrators", "chat_member"})
_LANGUAGE_CODE: Final = re.compile(r"[a-z]{2}")


def _command_key(state: BotApiState, p: Params) -> tuple[str, str]:
    """(scope, language_code) as Telegram keys a command menu; an unknown scope type, a chat
    scope without a known chat, or a language code that is not two letters is refused."""
    scope = p.get_json("scope", "can't parse BotCommandScope JSON object") or {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in _SCOPES | _CHAT_SCOPES:
        raise bad_request("can't parse BotCommandScope JSON object")
    where = scope["type"]
    if where in _CHAT_SCOPES:
        if "chat_id" not in scope:
            raise bad_request("can't parse BotCommandScope JSON object")
        where += f":{state.chat(scope['chat_id']).persona.user_id}"
    language = p.get_str("language_code") or ""
    if language and not _LANGUAGE_CODE.fullmatch(language):
        raise bad_request("invalid language code specified")
    return where, language


@method("setMyCommands")
async def set_my_commands(state: BotApiState, p: Params) -> bool:
    """Stores the command menu for a scope and language."""
    commands = p.get_json("commands", "can't parse commands JSON object")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    cleaned: list[JSON] = []
    for entry in commands:
        if not isinstance(entry, dict):
            raise bad_request("can't parse commands JSON object")
        # Telegram checks the name as given: no slash, no capitals, no padding.
        command = str(entry.get("command", ""))
        description = str(entry.get("description", "")).strip()
        if not rules.COMMAND_NAME.fullmatch(command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad_request("command description must be 1-256 characters long")
        cleaned.append({"command": command, "description": description})
    state.commands[_command_key(state, p)] = cleaned
    for chat in state.chats.values():
        state.touch(chat)
    return True


@method("getMyCommands")
async def get_my_commands(state: BotApiState, p: Params) -> list[JSON]:
    """Answers the command menu for exactly that scope and language."""
    return state.commands.get(_command_key(state, p), [])


@method("deleteMyCommands")
async def delete_my_commands(state: BotApiState, p: Params) -> bool:
    """Forgets the command menu for a scope and language."""
    state.commands.pop(_command_key(state, p), None)
    return True


@method("setMyDescription")
@method("setMyShortDescription")
@method("setMyName")
@method("setChatMenuButton")
async def set_profile(state: BotApiState, p: Params) -> bool:
    """Accepted; the web chat shows none of these."""
    return True


@method("getChatMenuButton")
async def get_chat_menu_button(state: BotApiState, p: Params) -> JSON:
    """The default menu button."""
    return {"type": "commands"}


@method("getChat")
async def get_chat(state: BotApiState, p: Params) -> JSON:
    """A chat the bot is in."""
    chat = _chat(state, p)
    return {**chat.chat_json(), "accent_color_id": 0, "max_reaction_count": 11}


# --- sending --------------------------------------------------------------------------------


@method("sendMessage")
async def send_message(state: BotApiState, p: Params) -> JSON:
    """Sends text, with an inline keyboard, a reply keyboard or a keyboard removal."""
    chat = _chat(state, p, "sendmessage")
    text, found = _text(p)
    markup = _markup(p, rulebook=state.rules)
    message = _send(state, chat, p, markup, text=text, entities=found)
    return state.message_json(message)


@method("sendPhoto")
async def send_photo(state: BotApiState, p: Params) -> JSON:
    """Sends a photo from an upload, a file_id or a loopback URL."""
    chat = _chat(state, p, "sendphoto")
    caption, found = _caption(p)
    markup = _markup(p, rulebook=state.rules)
    sizes = await _input_photo(state, p, p.values.get("photo"), "photo")
    message = _send(state, chat, p, markup, photo=sizes, caption=caption, caption_entities=found)
    return state.message_json(message)


@method("sendDocument")
async def send_document(state: BotApiState, p: Params) -> JSON:
    """Sends a document from an upload, a file_id or a loopback URL."""
    chat = _chat(state, p, "senddocument")
    caption, found = _caption(p)
    markup = _markup(p, rulebook=state.rules)
    document = await _input_document(state, p, p.values.get("document"), "document")
    message = _send(
        state, chat, p, markup, document=document, caption=caption, caption_entities=found
    )
    return state.message_json(message)


@method("sendMediaGroup")
async def send_media_group(state: BotApiState, p: Params) -> list[JSON]:
    """Sends 2-10 photos or documents as one album."""
    chat = _chat(state, p, "sendmediagroup")
    media = p.get_json("media", "can't parse media JSON object")
    if not isinstance(media, list) or not all(isinstance(item, dict) for item in media):
        raise bad_request("can't parse media JSON object")
    if not 2 <= len(media) <= 10:
        raise bad_request("wrong number of messages in the media group: must be 2-10")
    kinds = {item.get("type") for item in media}
    if not kinds <= {"photo", "document"}:
        raise bad_request("the local Bot API supports photo and document media only")
    if len(kinds) > 1:
        raise bad_request("documents can't be mixed with other media types")
    prepared: list[JSON] = []
    for item in media:
        caption, found = _caption(
            Params({**item, "parse_mode": item.get("parse_mode")}), "caption", "caption_entities"
        )
        if item["type"] == "photo":
            content: JSON = {"photo": await _input_photo(state, p, item.get("media"), "photo")}
        else:
            content = {"document": await _input_document(state, p, item.get("media"), "document")}
        prepared.append({**content, "caption": caption, "caption_entities": found})
    group_id = str(secrets.randbits(62))
    reply_to = _reply_target(chat, p)
    messages = [
        state.add_message(
            chat, from_bot=True, media_group_id=group_id, reply_to_message_id=reply_to, **fields
        )
        for fields in prepared
    ]
    return [state.message_json(message) for message in messages]


@method("sendChatAction")
async def send_chat_action(state: BotApiState, p: Params) -> bool:
    """Shows "typing…" (or another action) in the page for five seconds."""
    chat = _chat(state, p, "sendchataction")
    if p.get_str("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.typing_until = state.clock() + 5.0
    state.touch(chat)
    return True


# --- editing and deleting -------------------------------------------------------------------


def _editable(state: BotApiState, p: Params, method: str) -> tuple[Chat, Message]:
    if p.has("inline_message_id"):
        raise bad_request("the local Bot API has no inline messages")
    chat = _chat(state, p, method)
    message_id = p.get_int("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        raise bad_request("message to edit not found")
    if not message.from_bot:
        raise bad_request("message can't be edited")
    return chat, message


def _edited(state: BotApiState, chat: Chat, message: Message) -> JSON:
    message.edit_date = state.now()
    state.touch(chat)
    return state.message_json(message)


@method("editMessageText")
async def edit_message_text(state: BotApiState, p: Params) -> JSON:
    """Replaces a bot message's text; without reply_markup its inline keyboard goes."""
    chat, message = _editable(state, p, "editmessagetext")
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text, found = _text(p)
    keyboard = _markup(p, inline_only=True, rulebook=state.rules).inline
    if (text, found, keyboard) == (message.text, message.entities, message.inline_keyboard):
        raise bad_request(NOT_MODIFIED)
    message.text, message.entities, message.inline_keyboard = text, found, keyboard
    return _edited(state, chat, message)


@method("editMessageCaption")
async def edit_message_caption(state: BotApiState, p: Params) -> JSON:
    """Replaces a media message's caption; without reply_markup its inline keyboard goes."""
    chat, message = _editable(state, p, "editmessagecaption")
    if not message.has_media:
        raise bad_request("there is no caption in the message to edit")
    caption, found = _caption(p)
    keyboard = _markup(p, inline_only=True, rulebook=state.rules).inline
    current = (message.caption, message.caption_entities, message.inline_keyboard)
    if (caption, found, keyboard) == current:
        raise bad_request(NOT_MODIFIED)
    message.caption, message.caption_entities, message.inline_keyboard = caption, found, keyboard
    return _edited(state, chat, message)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(state: BotApiState, p: Params) -> JSON:
    """Replaces (or, without reply_markup, removes) a bot message's inline keyboard."""
    chat, message = _editable(state, p, "editmessagereplymarkup")
    keyboard = _markup(p, inline_only=True, rulebook=state.rules).inline
    if keyboard == message.inline_keyboard:
        raise bad_request(NOT_MODIFIED)
    message.inline_keyboard = keyboard
    return _edited(state, chat, message)


def _delete(state: BotApiState, chat: Chat, message_id: int) -> bool:
    message = chat.messages.get(message_id)
    if message is None or message.deleted:
        return False
    if not rules.may_delete(message.date, state.clock()):
        raise bad_request(rules.CANT_DELETE)
    message.deleted = True
    message.inline_keyboard = None
    state.touch(chat)
    return True


@method("deleteMessage")
async def delete_message(state: BotApiState, p: Params) -> bool:
    """Deletes one message of either side, as a bot may in a private chat."""
    chat = _chat(state, p)
    message_id = p.get_int("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    if not _delete(state, chat, message_id):
        raise bad_request("message to delete not found")
    return True


@method("deleteMessages")
async def delete_messages(state: BotApiState, p: Params) -> bool:
    """Deletes the listed messages that exist and may go, silently skipping the others."""
    chat = _chat(state, p)
    ids = p.get_json("message_ids", "can't parse message_ids JSON object")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad_request("message_ids must be a list of 1-100 identifiers")
    for message_id in ids:
        if isinstance(message_id, int):
            with contextlib.suppress(BotApiError):
                _delete(state, chat, message_id)
    return True


# --- callbacks and files --------------------------------------------------------------------


@method("answerCallbackQuery")
async def answer_callback_query(state: BotApiState, p: Params) -> bool:
    """Stops the button's spinner, once, within the answer window; text becomes a toast."""
    text = p.get_str("text") or ""
    if len(text) > rules.MAX_ANSWER_TEXT:
        raise bad_request("MESSAGE_TOO_LONG")
    query = state.answer_press(p.get_str("callback_query_id") or "")
    chat = state.chats[query.chat_id]
    if text:
        state.toast(chat, text, show_alert=p.get_bool("show_alert"))
    return True


@method("getFile")
async def get_file(state: BotApiState, p: Params) -> JSON:
    """Gives a file's download path (under /file/bot<token>/)."""
    stored = state.files.get(p.get_str("file_id") or "")
    if stored is None:
        raise bad_request("invalid file_id")
    if len(stored.data) > rules.MAX_DOWNLOAD_BYTES:
        raise bad_request(rules.FILE_TOO_BIG)
    return stored.file()
