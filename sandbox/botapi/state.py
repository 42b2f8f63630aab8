"""Everything the local Bot API remembers: personas' chats, messages, updates, files, faults.

One `BotApiState` lives on `app.state.botapi`; the Bot API methods, the web chat and tests all
work on it. It is in memory only and belongs to one event loop (the server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError
from pydantic import SecretStr

from sandbox.botapi import rules
from sandbox.botapi.rules import DEFAULT_UPDATE_TYPES, FloodControl, Rules

JSON = dict[str, Any]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

TYPING_SECONDS = 5.0


class BotApiError(Exception):
    """A Bot API call refused the way Telegram refuses it (status, description, parameters)."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSON:
        """The JSON body Telegram answers with."""
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> BotApiError:
    """A 400 with Telegram's `Bad Request: ` prefix."""
    return BotApiError(400, f"Bad Request: {reason}")


@dataclass(frozen=True, slots=True)
class Persona:
    """Someone a person can chat as in the web page: a private chat with the bot."""

    user_id: int
    name: str
    role: str
    language_code: str = "en"
    phone_number: str | None = None
    # The communities the persona belongs to (ids of the bot's deployment), for the web chat.
    communities: tuple[int, ...] = ()

    def user(self) -> JSON:
        """The Telegram `User` object for this persona."""
        return {
            "id": self.user_id,
            "is_bot": False,
            "first_name": self.name,
            "language_code": self.language_code,
        }

    def chat(self) -> JSON:
        """The Telegram private `Chat` object for this persona."""
        return {"id": self.user_id, "type": "private", "first_name": self.name}

    @property
    def phone(self) -> str:
        """The phone number shared by the contact button (made up when none was given)."""
        return self.phone_number or f"+8613800{self.user_id % 1_000_000:06d}"


@dataclass(slots=True)
class StoredFile:
    """A file the server holds: uploaded by the bot, by a persona, or fetched from a URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    mime_type: str
    file_name: str | None = None
    width: int | None = None
    height: int | None = None

    def file(self) -> JSON:
        """The Telegram `File` object (what getFile answers)."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }

    def photo_size(self) -> JSON:
        """The Telegram `PhotoSize` object."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "width": self.width or 0,
            "height": self.height or 0,
        }

    def document(self) -> JSON:
        """The Telegram `Document` object."""
        doc: JSON = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "mime_type": self.mime_type,
        }
        if self.file_name:
            doc["file_name"] = self.file_name
        return doc


@dataclass(slots=True)
class Message:
    """One message in a chat, sent by the bot or by a person (`sender`)."""

    message_id: int
    chat_id: int
    from_bot: bool
    date: int
    sender: int | None = None  # the user who sent it (None for the bot's own)
    text: str | None = None
    entities: list[JSON] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[JSON] = field(default_factory=list)
    photo: list[StoredFile] = field(default_factory=list)
    document: StoredFile | None = None
    contact: JSON | None = None
    inline_keyboard: list[list[JSON]] | None = None
    reply_keyboard: JSON | None = None
    media_group_id: str | None = None
    reply_to_message_id: int | None = None
    sticker: JSON | None = None
    edit_date: int | None = None
    deleted: bool = False

    @property
    def has_media(self) -> bool:
        """Whether the message carries a photo or a document (and so may have a caption)."""
        return bool(self.photo) or self.document is not None


@dataclass(slots=True)
class Toast:
    """An answerCallbackQuery notice for the page to show once."""

    seq: int
    text: str
    show_alert: bool


@dataclass(slots=True)
class Chat:
    """A chat with the bot: a persona's private chat, or a group of personas and the bot."""

    persona: Persona  # the private chat's person; for a group, the member who created it
    chat_id: int = 0
    kind: str = "private"  # "private", "group" or "supergroup"
    title: str = ""
    members: list[int] = field(default_factory=list)
    bot_member: bool = True  # a group: whether the bot is in it
    blocked: bool = False  # a private chat: whether the person blocked the bot
    messages: dict[int, Message] = field(default_factory=dict)
    next_message_id: int = 1
    reply_keyboard: JSON | None = None
    typing_until: float = 0.0
    toasts: list[Toast] = field(default_factory=list)
    version: int = 0

    def __post_init__(self) -> None:
        if not self.chat_id:
            self.chat_id = self.persona.user_id

    @property
    def is_private(self) -> bool:
        """Whether this is a one-to-one chat with a person."""
        return self.kind == "private"

    def chat_json(self) -> JSON:
        """The Telegram `Chat` object."""
        if self.is_private:
            return self.persona.chat()
        return {"id": self.chat_id, "type": self.kind, "title": self.title}


@dataclass(slots=True)
class CallbackQuery:
    """A button press waiting for answerCallbackQuery (once, within the answer window)."""

    query_id: str
    chat_id: int
    message_id: int
    received_at: float = 0.0
    answered: bool = False


@dataclass(slots=True)
class Fault:
    """The next `remaining` calls of a method answer 429 with `retry_after`."""

    remaining: int
    retry_after: float


class Faults:
    """Fault injection for tests: make the next N calls of a method fail with 429."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}

    def inject(self, method: str, *, count: int = 1, retry_after: float = 1) -> None:
        """Makes the next `count` calls of `method` answer 429 Too Many Requests."""
        if count < 1 or retry_after < 0:
            raise ValueError("count must be >= 1 and retry_after >= 0")
        self._faults[method.lower()] = Fault(count, retry_after)

    def take(self, method: str) -> Fault | None:
        """Consumes one injected failure for `method`, if any is left."""
        fault = self._faults.get(method.lower())
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.remaining <= 0:
            del self._faults[method.lower()]
        return fault

    def clear(self) -> None:
        """Removes every injected failure."""
        self._faults.clear()

    def snapshot(self) -> dict[str, JSON]:
        """What is still injected, by lower-cased method name."""
        return {
            name: {"count": f.remaining, "retry_after": f.retry_after}
            for name, f in self._faults.items()
        }


class Signal:
    """Wakes every waiter when something changed; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def fire(self) -> None:
        """Wakes all current waiters."""
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, seconds: float) -> None:
        """Waits until the next `fire` or `seconds`, whichever comes first."""
        if seconds <= 0:
            return
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


@dataclass(slots=True)
class Webhook:
    """The webhook a bot set with setWebhook, and how delivery is going."""

    url: str
    secret_token: SecretStr | None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None


def _new_file_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(24)


class BotApiState:
    """The server's memory; methods here are what both the Bot API and the web chat call."""

    def __init__(
        self,
        *,
        token: str,
        personas: Sequence[Persona],
        bot_username: str = "concierge_demo_bot",
        bot_name: str = "Concierge",
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rules: Rules | None = None,
    ) -> None:
        bot_id, _, _ = token.partition(":")
        if not bot_id.isdigit():
            raise ValueError("a bot token starts with the bot's numeric id and a colon")
        self._token = SecretStr(token)
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.clock = clock
        self.sleep = sleep
        self.personas: dict[int, Persona] = {p.user_id: p for p in personas}
        if len(self.personas) != len(personas):
            raise ValueError("persona user ids must be unique")
        self.chats: dict[int, Chat] = {p.user_id: Chat(p) for p in personas}
        self.rules = rules or Rules()
        self.flood = FloodControl(clock)
        self._next_group = 1
        self.updates: list[JSON] = []
        self.next_update_id = secrets.randbelow(100_000_000) + 100_000
        self.allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self.webhook: Webhook | None = None
        self.webhook_delivery: object | None = None  # the running delivery, for tests
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.files_by_unique_id: dict[str, StoredFile] = {}
        self.callbacks: dict[str, CallbackQuery] = {}
        self.faults = Faults()
        self.updates_signal = Signal()
        self.chats_signal = Signal()
        self.poller: object | None = None
        self.closed = False
        self.calls: list[str] = []
        self.photo_sets: dict[str, list[StoredFile]] = {}
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"BotApiState(bot=@{self.bot_username}, chats={len(self.chats)})"

    # --- identity ---------------------------------------------------------------------------

    def token_matches(self, token: str) -> bool:
        """Compares a presented token with ours in constant time."""
        return secrets.compare_digest(token.encode(), self._token.get_secret_value().encode())

    def bot_user(self) -> JSON:
        """The bot's `User` object, as getMe and message `from` show it."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    def chat(self, chat_id: Any) -> Chat:
        """The chat with this id, or Telegram's "chat not found"."""
        try:
            key = int(chat_id)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        found = self.chats.get(key)
        if found is None:
            raise bad_request("chat not found")
        return found

    def persona_chat(self, user_id: int) -> Chat | None:
        """The chat of a persona, for the web chat (None when unknown)."""
        found = self.chats.get(user_id)
        return found if found is not None and found.is_private else None

    def group_chat(self, chat_id: int) -> Chat | None:
        """A group the web chat created (None when unknown)."""
        found = self.chats.get(chat_id)
        return found if found is not None and not found.is_private else None

    def add_persona(self, persona: Persona) -> Chat:
        """Someone new who has started the bot: a private chat of their own."""
        if persona.user_id in self.personas:
            raise ValueError("persona user ids must be unique")
        self.personas[persona.user_id] = persona
        chat = self.chats[persona.user_id] = Chat(persona)
        self.touch(chat)
        return chat

    def check_can_send(self, chat: Chat, method: str) -> None:
        """Refuses a call to a chat the bot may not write to, or over Telegram's flood limits."""
        if chat.is_private and chat.blocked:
            raise BotApiError(403, rules.BLOCKED)
        if not chat.is_private and not chat.bot_member:
            raise BotApiError(403, rules.NOT_MEMBER)
        if self.rules.flood_control and method in rules.SENDING_METHODS:
            wait = self.flood.admit(chat.chat_id, group=not chat.is_private)
            if wait is not None:
                raise BotApiError(
                    429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
                )

    def close(self) -> None:
        """Wakes every long poll so the server can stop at once."""
        self.closed = True
        self.updates_signal.fire()
        self.chats_signal.fire()

    def http(self) -> httpx.AsyncClient:
        """The client for webhook deliveries and loopback photo URLs (never the internet)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        """Stops long polls and closes the HTTP client."""
        self.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- messages ---------------------------------------------------------------------------

    def now(self) -> int:
        """The current Unix time in whole seconds, as Telegram dates are."""
        return int(self.clock())

    def add_message(self, chat: Chat, *, from_bot: bool, **fields: Any) -> Message:
        """Appends a message to a chat and tells the page."""
        message = Message(
            message_id=chat.next_message_id,
            chat_id=chat.chat_id,
            from_bot=from_bot,
            date=self.now(),
            **fields,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        if from_bot:
            # Telegram clears the chat action as soon as the bot sends something.
            chat.typing_until = 0.0
        self.touch(chat)
        return message

    def touch(self, chat: Chat) -> None:
        """Marks a chat as changed so the page's long poll returns."""
        chat.version += 1
        self.chats_signal.fire()

    def message_json(self, message: Message, *, with_reply: bool = True) -> JSON:
        """The Telegram `Message` object for a stored message."""
        chat = self.chats[message.chat_id]
        data: JSON = {
            "message_id": message.message_id,
            "from": self.bot_user() if message.from_bot else self._sender(chat, message).user(),
            "chat": chat.chat_json(),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.text is not None:
            data["text"] = message.text
            if message.entities:
                data["entities"] = message.entities
        if message.photo:
            data["photo"] = [size.photo_size() for size in message.photo]
        if message.document is not None:
            data["document"] = message.document.document()
        if message.caption is not None:
            data["caption"] = message.caption
            if message.caption_entities:
                data["caption_entities"] = message.caption_entities
        if message.contact is not None:
            data["contact"] = message.contact
        if message.sticker is not None:
            data["sticker"] = message.sticker
        if message.media_group_id is not None:
            data["media_group_id"] = message.media_group_id
        if message.inline_keyboard is not None:
            # Only inline keyboards travel with a Message; reply keyboards belong to the chat.
            data["reply_markup"] = {"inline_keyboard": message.inline_keyboard}
        if with_reply and message.reply_to_message_id is not None:
            replied = chat.messages.get(message.reply_to_message_id)
            if replied is not None and not replied.deleted:
                data["reply_to_message"] = self.message_json(replied, with_reply=False)
        return data

    def _sender(self, chat: Chat, message: Message) -> Persona:
        return self.personas.get(message.sender or chat.persona.user_id, chat.persona)

    # --- updates ----------------------------------------------------------------------------

    def push_update(self, kind: str, payload: JSON) -> JSON | None:
        """Queues an update for getUpdates or the webhook, unless the bot does not want it."""
        if kind not in self.allowed_updates:
            return None
        update: JSON = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        self.updates.append(update)
        self.updates_signal.fire()
        return update

    def set_allowed_updates(self, kinds: Iterable[str] | None) -> None:
        """Applies a bot's allowed_updates; None keeps the previous setting, [] is the default."""
        if kinds is None:
            return
        chosen = frozenset(kinds)
        self.allowed_updates = chosen or DEFAULT_UPDATE_TYPES
        self.updates = [u for u in self.updates if _update_kind(u) in self.allowed_updates]

    def confirm_updates(self, offset: int) -> None:
        """Forgets updates before `offset` (getUpdates' confirmation); negative keeps the last."""
        if offset < 0:
            self.updates = self.updates[offset:]
        else:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

    def drop_pending_updates(self) -> None:
        """Forgets every queued update."""
        self.updates.clear()

    # --- files ------------------------------------------------------------------------------

    def store_file(
        self,
        data: bytes,
        *,
        kind: str,
        mime_type: str,
        file_name: str | None = None,
        size: tuple[int, int] | None = None,
    ) -> StoredFile:
        """Keeps a file and gives it a Telegram-like file_id and a download path."""
        unique = "AQAD" + hashlib.sha256(data + secrets.token_bytes(8)).hexdigest()[:16]
        extension = _extension(mime_type, file_name)
        stored = StoredFile(
            file_id=_new_file_id("AgACAgUAAxkBAAI" if kind == "photos" else "BQACAgUAAxkBAAI"),
            file_unique_id=unique,
            file_path=f"{kind}/file_{len(self.files)}{extension}",
            data=data,
            mime_type=mime_type,
            file_name=file_name,
            width=size[0] if size else None,
            height=size[1] if size else None,
        )
        self.files[stored.file_id] = stored
        self.files_by_path[stored.file_path] = stored
        self.files_by_unique_id[stored.file_unique_id] = stored
        return stored

    def store_photo(self, data: bytes) -> list[StoredFile]:
        """Stores a photo as Telegram does: a small thumbnail then the full size."""
        image = _open_image(data)
        if image is None:
            raise bad_request("IMAGE_PROCESS_FAILED")
        width, height = image.size
        sizes: list[StoredFile] = []
        if max(width, height) > 90:
            thumb = image.copy()
            thumb.thumbnail((90, 90))
            buffer = io.BytesIO()
            thumb.convert("RGB").save(buffer, format="JPEG")
            sizes.append(
                self.store_file(
                    buffer.getvalue(), kind="photos", mime_type="image/jpeg", size=thumb.size
                )
            )
        mime = "image/png" if image.format == "PNG" else "image/jpeg"
        sizes.append(self.store_file(data, kind="photos", mime_type=mime, size=(width, height)))
        for size in sizes:
            self.photo_sets[size.file_id] = sizes
        return sizes

    # --- the web chat's side ------------------------------------------------------------------

    def user_message(self, chat: Chat, *, sender: int | None = None, **fields: Any) -> Message:
        """Records a message a person sent and queues its update (as Telegram would)."""
        if chat.reply_keyboard and chat.reply_keyboard.get("one_time_keyboard"):
            chat.reply_keyboard = None
        sender = chat.persona.user_id if sender is None else sender
        message = self.add_message(chat, from_bot=False, sender=sender, **fields)
        if self._delivered(chat, message):
            self.push_update("message", self.message_json(message))
        return message

    def _delivered(self, chat: Chat, message: Message) -> bool:
        """Privacy mode: in a group the bot gets commands and replies to itself, nothing else."""
        if chat.is_private:
            return not chat.blocked
        if not chat.bot_member:
            return False
        if message.text is not None and message.text.startswith("/"):
            return True
        replied = chat.messages.get(message.reply_to_message_id or 0)
        return replied is not None and replied.from_bot

    def user_sends_text(self, chat: Chat, text: str, *, sender: int | None = None) -> Message:
        """A person types text (a leading /command gets its bot_command entity, as typed)."""
        text = text.strip()
        if not text:
            raise ValueError("message text is empty")
        if len(text) > rules.MAX_TEXT:
            raise ValueError("message is too long")
        entities: list[JSON] = []
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            entities.append({"type": "bot_command", "offset": 0, "length": len(command)})
        return self.user_message(chat, sender=sender, text=text, entities=entities)

    def user_edits_text(
        self, chat: Chat, message_id: int, text: str, *, sender: int | None = None
    ) -> Message:
        """A person edits a text message of their own: Telegram sends an `edited_message`."""
        sender = chat.persona.user_id if sender is None else sender
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise LookupError("message not found")
        if message.from_bot or message.sender != sender or message.text is None:
            raise ValueError("only a text message of your own can be edited")
        text = text.strip()
        if not text:
            raise ValueError("message text is empty")
        if len(text) > rules.MAX_TEXT:
            raise ValueError("message is too long")
        if text == message.text:
            raise ValueError("the text is unchanged")
        message.text = text
        message.entities = (
            [{"type": "bot_command", "offset": 0, "length": len(text.split(maxsplit=1)[0])}]
            if text.startswith("/")
            else []
        )
        message.edit_date = self.now()
        self.touch(chat)
        if self._delivered(chat, message):
            self.push_update("edited_message", self.message_json(message))
        return message

    def user_sends_photo(
        self, chat: Chat, data: bytes, caption: str | None, *, sender: int | None = None
    ) -> Message:
        """A person sends a photo from disk, with an optional caption."""
        try:
            sizes = self.store_photo(data)
        except BotApiError:
            raise ValueError("that file is not an image") from None
        caption = (caption or "").strip() or None
        if caption is not None and len(caption) > rules.MAX_CAPTION:
            raise ValueError("caption is too long")
        return self.user_message(chat, sender=sender, photo=sizes, caption=caption)

    def user_sends_contact(
        self, chat: Chat, phone_number: str | None, first_name: str | None
    ) -> Message:
        """A persona presses a share-contact button (their own number, so user_id is set)."""
        contact: JSON = {
            "phone_number": (phone_number or chat.persona.phone).strip(),
            "first_name": (first_name or chat.persona.name).strip(),
            "user_id": chat.persona.user_id,
        }
        return self.user_message(chat, contact=contact)

    def user_presses(
        self, chat: Chat, message_id: int, data: str, *, sender: int | None = None
    ) -> str:
        """A person presses an inline button of any bot message still there; returns the
        callback query id. Data that is not on that message is refused, as the client would."""
        sender = chat.persona.user_id if sender is None else sender
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise LookupError("message not found")
        pressable = {
            button.get("callback_data")
            for row in message.inline_keyboard or []
            for button in row
            if "callback_data" in button
        }
        if data not in pressable:
            raise ValueError("no button with that callback_data on this message")
        if not chat.is_private and sender not in chat.members:
            raise ValueError("only a member of the group can press its buttons")
        query_id = str(secrets.randbits(63))
        self.callbacks[query_id] = CallbackQuery(
            query_id, chat.chat_id, message_id, received_at=self.clock()
        )
        self._forget_old_callbacks()
        instance = hashlib.sha256(f"{self.bot_id}:{chat.chat_id}".encode()).hexdigest()
        self.push_update(
            "callback_query",
            {
                "id": query_id,
                "from": self.personas[sender].user(),
                "message": self.message_json(message),
                "chat_instance": str(int(instance[:15], 16)),
                "data": data,
            },
        )
        return query_id

    def _forget_old_callbacks(self) -> None:
        # Memory stays bounded: a press past its answer window can never be answered anyway.
        if len(self.callbacks) < 10_000:
            return
        now = self.clock()
        for key in [
            key
            for key, query in self.callbacks.items()
            if not rules.may_answer(query.received_at, now, self.rules)
        ]:
            del self.callbacks[key]

    def answer_press(self, query_id: str) -> CallbackQuery:
        """Marks a press answered; a second answer or a late one is Telegram's 400."""
        query = self.callbacks.get(query_id)
        if (
            query is None
            or query.answered
            or not rules.may_answer(query.received_at, self.clock(), self.rules)
        ):
            raise bad_request(rules.QUERY_TOO_OLD)
        query.answered = True
        return query

    # --- blocking and groups ---------------------------------------------------------------

    def _member_update(self, chat: Chat, by: Persona, old: str, new: str) -> None:
        self.push_update(
            "my_chat_member",
            {
                "chat": chat.chat_json(),
                "from": by.user(),
                "date": self.now(),
                "old_chat_member": self._bot_member(old),
                "new_chat_member": self._bot_member(new),
            },
        )

    def _bot_member(self, status: str) -> JSON:
        member: JSON = {"status": status, "user": self.bot_user()}
        if status == "kicked":
            member["until_date"] = 0  # for ever
        return member

    def block(self, chat: Chat) -> bool:
        """The person blocks the bot: sends to them answer 403; the bot hears `kicked`."""
        if not chat.is_private:
            raise ValueError("only a private chat can be blocked")
        if chat.blocked:
            return False
        chat.blocked = True
        self._member_update(chat, chat.persona, "member", "kicked")
        self.touch(chat)
        return True

    def unblock(self, chat: Chat) -> bool:
        """The person unblocks the bot: the bot hears `member` again."""
        if not chat.is_private:
            raise ValueError("only a private chat can be unblocked")
        if not chat.blocked:
            return False
        chat.blocked = False
        self._member_update(chat, chat.persona, "kicked", "member")
        self.touch(chat)
        return True

    def create_group(self, title: str, members: Sequence[int], kind: str = "group") -> Chat:
        """A group of personas with the bot in it; adding the bot sends `my_chat_member`."""
        if kind not in ("group", "supergroup"):
            raise ValueError('type must be "group" or "supergroup"')
        title = title.strip()
        if not title or len(title) > 128:
            raise ValueError("a group needs a title of 1-128 characters")
        if not members or any(member not in self.personas for member in members):
            raise ValueError("members must be known user ids, at least one")
        number = self._next_group
        self._next_group += 1
        chat_id = -(1_000_000_000_000 + number) if kind == "supergroup" else -(400_000 + number)
        owner = self.personas[members[0]]
        chat = Chat(owner, chat_id=chat_id, kind=kind, title=title, members=list(members))
        self.chats[chat_id] = chat
        self._member_update(chat, owner, "left", "member")
        self.touch(chat)
        return chat

    def toast(self, chat: Chat, text: str, *, show_alert: bool) -> None:
        """Queues an answerCallbackQuery notice for the page."""
        seq = chat.toasts[-1].seq + 1 if chat.toasts else 1
        chat.toasts.append(Toast(seq, text, show_alert))
        del chat.toasts[:-20]
        self.touch(chat)

    def typing_for(self, chat: Chat) -> float:
        """Seconds the "typing…" status still shows."""
        return max(0.0, chat.typing_until - self.clock())


def _update_kind(update: JSON) -> str:
    return next(key for key in update if key != "update_id")


def _extension(mime_type: str, file_name: str | None) -> str:
    if file_name and "." in file_name:
        suffix = "." + file_name.rsplit(".", 1)[1].lower()
        if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6:
            return suffix
    return {
        "image/jpeg": ".jpg",
        "image/png": ".png",
        "image/gif": ".gif",
        "image/webp": ".webp",
        "application/pdf": ".pdf",
        "text/plain": ".txt",
    }.get(mime_type, "")


def _open_image(data: bytes) -> Image.Image | None:
    """Opens image bytes with Pillow, or None when they are not an image."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return image
