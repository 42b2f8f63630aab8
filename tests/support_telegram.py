"""A stand-in for Telegram in tests: the local Bot API's own rules and memory, in process.

The application under test is the real one (`build_application`); only the HTTP layer to the
Bot API is replaced. Every request runs through `sandbox.botapi.methods` on a `BotApiState`,
the same rulebook (`sandbox.botapi.rules`) the local Bot API plays by, so a request Telegram
would refuse (a second answer to a press, an edit that changes nothing, a caption too long) is
refused here too, and fails the test that made it unless the test says it means to send it
(`@pytest.mark.telegram_refusals(...)`, see `tests/conftest.py`). Every call is recorded with
its parameters for the test to look at. A user's side (`Chat`) goes through the same state:
messages get real ids, a press comes from a message the bot sent.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from PIL import Image
from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from sandbox.botapi import methods
from sandbox.botapi.rules import MAX_TEXT, Rules
from sandbox.botapi.state import JSON, BotApiError, BotApiState, Persona
from sandbox.botapi.state import Chat as BotApiChat

# The toast a press gets while its handler waits for a vendor (bot.presses.ONE_MOMENT).
MOMENTS = frozenset({"⏳ One moment…", "⏳ 请稍候…"})
BOT_ID = 123456
BOT_USERNAME = "concierge_test_bot"


@dataclass
class Call:
    """One Bot API call the bot made."""

    method: str
    params: dict[str, Any]

    @property
    def text(self) -> str | None:
        value = self.params.get("text", self.params.get("caption"))
        return None if value is None else str(value)

    @property
    def buttons(self) -> list[list[dict[str, Any]]]:
        """Inline keyboard rows (each button a dict with text and callback_data or url)."""
        markup = self.params.get("reply_markup") or {}
        rows: list[list[dict[str, Any]]] = markup.get("inline_keyboard", [])
        return rows

    @property
    def keyboard(self) -> list[list[dict[str, Any]]]:
        """Reply keyboard rows."""
        markup = self.params.get("reply_markup") or {}
        rows: list[list[dict[str, Any]]] = markup.get("keyboard", [])
        return rows


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _png(width: int = 800, height: int = 600) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


class FakeTelegram(BaseRequest):
    """Telegram for the bot under test: the local Bot API's methods on its state, in process."""

    def __init__(self, *, rules: Rules | None = None) -> None:
        self.state = BotApiState(
            token=f"{BOT_ID}:stand-in",
            personas=[],
            bot_username=BOT_USERNAME,
            bot_name="Concierge",
            rules=rules,
        )
        self.calls: list[Call] = []
        self.lock = asyncio.Lock()

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return None

    @property
    def blocked_chats(self) -> _Blocked:
        """User ids that blocked the bot (a test adds one to make sends answer 403)."""
        return _Blocked(self)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        path = urlsplit(url).path
        if "/file/bot" in path:
            stored = self.state.files_by_path.get(path.split("/", 3)[-1])
            if stored is None:
                return 404, b'{"ok": false, "error_code": 404, "description": "Not Found"}'
            return 200, stored.data
        name = path.rsplit("/", 1)[-1]
        values = dict(request_data.parameters) if request_data else {}
        self.calls.append(Call(name, {k: _decode(v) for k, v in values.items()}))
        params = methods.Params(values={k: v for k, v in values.items() if v is not None})
        for key, part in (request_data.multipart_data or {}).items() if request_data else ():
            filename, content, *rest = part
            data = content if isinstance(content, bytes) else bytes(str(content), "utf-8")
            mime = str(rest[0]) if rest else "application/octet-stream"
            params.files[key] = methods.Upload(str(filename or key), mime, data)
        chat_id = params.values.get("chat_id")
        if chat_id is not None:
            self.chat(int(chat_id))
        try:
            result = await methods.call(self.state, name, params)
        except BotApiError as error:
            return error.status, json.dumps(error.payload()).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()

    # -- the user's side ---------------------------------------------------------------------

    def chat(self, chat_id: int, first_name: str = "Ann", language_code: str = "en") -> BotApiChat:
        """A private chat with this user, started on first use (every user id in a test has
        pressed Start before); group ids must be created with `group`."""
        found = self.state.chats.get(chat_id)
        if found is not None:
            return found
        if chat_id < 0:
            raise AssertionError(f"no group {chat_id}: create it with telegram.group(...)")
        persona = Persona(chat_id, first_name, "user", language_code=language_code)
        return self.state.add_persona(persona)

    def photo(self, file_id: str, *, width: int = 800, height: int = 600) -> list[JSON]:
        """A photo Telegram knows under `file_id` (as if a user had sent it), as PhotoSizes."""
        known = self.state.photo_sets.get(file_id)
        if known is None:
            stored = self.state.store_file(
                _png(width, height), kind="photos", mime_type="image/png", size=(width, height)
            )
            for index in (self.state.files, self.state.photo_sets):
                index.pop(stored.file_id, None)
            stored.file_id = file_id
            stored.file_unique_id = f"u-{file_id}"
            self.state.files[file_id] = stored
            self.state.files_by_unique_id[stored.file_unique_id] = stored
            known = self.state.photo_sets[file_id] = [stored]
        return [size.photo_size() for size in known]

    def group(self, title: str, members: list[int], kind: str = "group") -> int:
        """A group of these users with the bot in it; its chat id."""
        for member in members:
            self.chat(member)
        return self.state.create_group(title, members, kind).chat_id

    def take_updates(self) -> list[JSON]:
        """The updates Telegram would deliver now, oldest first."""
        updates, self.state.updates = self.state.updates, []
        return updates

    def clear(self) -> None:
        self.calls.clear()

    def bot_messages(self, chat_id: int) -> list[Any]:
        """The bot's messages still in a chat, oldest first."""
        return [m for m in self.chat(chat_id).messages.values() if m.from_bot and not m.deleted]

    # -- what tests look at ---------------------------------------------------------------

    def sent(self, *methods: str) -> list[Call]:
        """Calls of these methods (all calls when none given), oldest first."""
        return [c for c in self.calls if not methods or c.method in methods]

    def replies(self) -> list[Call]:
        """What the user saw: messages, edits and photos, oldest first."""
        return self.sent(
            "sendMessage", "editMessageText", "sendPhoto", "editMessageCaption", "sendMediaGroup"
        )

    def content(self) -> list[Call]:
        """Replies other than the notices of presses (see `notices`)."""
        return [c for c in self.replies() if not c.params.get("disable_notification")]

    def notices(self) -> list[str]:
        """What presses told the user: each answer's text (the "one moment" toast aside), and
        the notices that came late, as quiet messages, after that toast."""
        found = []
        for call in self.calls:
            text = call.params.get("text")
            answer = call.method == "answerCallbackQuery" and text and text not in MOMENTS
            late = call.method == "sendMessage" and call.params.get("disable_notification")
            if answer or late:
                found.append(str(text))
        return found

    @property
    def last(self) -> Call:
        """The last message, edit or photo."""
        replies = self.replies()
        assert replies, "the bot sent nothing"
        return replies[-1]

    def last_buttons(self) -> list[list[dict[str, Any]]]:
        """Inline buttons of the most recent reply that had any."""
        for call in reversed(self.replies()):
            if call.buttons:
                return call.buttons
        raise AssertionError("no reply had buttons")

    def button(self, label_part: str) -> str:
        """The callback data of the latest button whose label contains `label_part`."""
        for call in reversed(self.replies()):
            for row in call.buttons:
                for button in row:
                    if label_part in button["text"] and "callback_data" in button:
                        return str(button["callback_data"])
        raise AssertionError(f"no button labelled like {label_part!r}")


@dataclass
class Chat:
    """One user talking to the bot: what they do becomes updates, through Telegram's state."""

    app: Application[Any, Any, Any, Any, Any, Any]
    user_id: int
    first_name: str = "Ann"
    language_code: str = "en"
    chat_id: int | None = None  # a group's id; None for the private chat

    def in_group(self, chat_id: int) -> Chat:
        """The same user, writing in a group they are a member of."""
        return Chat(self.app, self.user_id, self.first_name, self.language_code, chat_id)

    @property
    def telegram(self) -> FakeTelegram:
        request = self.app.bot.request
        assert isinstance(request, FakeTelegram), "the bot under test talks to FakeTelegram"
        return request

    @property
    def _chat(self) -> BotApiChat:
        telegram = self.telegram
        telegram.chat(self.user_id, self.first_name, self.language_code)
        return telegram.chat(self.user_id if self.chat_id is None else self.chat_id)

    @property
    def _sender(self) -> int | None:
        return None if self.chat_id is None else self.user_id

    async def deliver(self) -> None:
        """Hands the bot every update Telegram has for it now."""
        for payload in self.telegram.take_updates():
            await self.app.process_update(Update.de_json(payload, self.app.bot))

    async def send(self, text: str) -> int:
        """Types `text` as a Telegram client sends it: trimmed, nothing when blank, a text over
        4096 characters as several messages (a leading /command becomes a bot_command entity);
        the last new message's id (0 when nothing was sent)."""
        text = text.strip()
        sent = 0
        while text:
            piece, text = text[:MAX_TEXT], text[MAX_TEXT:].strip()
            if not piece.strip():
                continue
            message = self.telegram.state.user_sends_text(self._chat, piece, sender=self._sender)
            sent = message.message_id
            await self.deliver()
        return sent

    async def edit_last(self, text: str) -> None:
        """Edits this user's newest text message, if there is one and the text is new."""
        text = text.strip()[:MAX_TEXT]
        for message in reversed(list(self._chat.messages.values())):
            if message.from_bot or message.sender != self.user_id or message.text is None:
                continue
            if text and text != message.text.strip():
                await self.edit(message.message_id, text)
            return

    async def edit(self, message_id: int, text: str) -> None:
        """Edits an earlier message of this user's: Telegram sends an `edited_message` (even
        to a bot that did not ask for them, to prove the bot drops them itself)."""
        state = self.telegram.state
        wanted = state.allowed_updates
        state.allowed_updates = wanted | {"edited_message"}
        try:
            state.user_edits_text(self._chat, message_id, text, sender=self._sender)
        finally:
            state.allowed_updates = wanted
        await self.deliver()

    async def send_photo(
        self,
        file_id: str = "user-photo-1",
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> None:
        """Sends a photo, optionally with a caption or as part of an album."""
        telegram = self.telegram
        telegram.photo(file_id)
        sizes = [telegram.state.files[file_id]]
        telegram.state.user_message(
            self._chat,
            sender=self._sender,
            photo=sizes,
            caption=caption,
            media_group_id=media_group_id,
        )
        await self.deliver()

    async def send_contact(self, phone_number: str) -> None:
        """Shares the user's own phone number with the contact button."""
        contact = {
            "phone_number": phone_number,
            "first_name": self.first_name,
            "user_id": self.user_id,
        }
        self.telegram.state.user_message(self._chat, sender=self._sender, contact=contact)
        await self.deliver()

    async def send_sticker(self) -> None:
        """Sends a sticker, which no step expects."""
        sticker = {
            "file_id": "sticker-1",
            "file_unique_id": "u-sticker-1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
        self.telegram.state.user_message(self._chat, sender=self._sender, sticker=sticker)
        await self.deliver()

    async def press(self, data: str, message_id: int | None = None) -> str:
        """Presses the inline button carrying `data`: on message `message_id`, else on the
        newest bot message that has it (an old message of the bot's when none has: a button
        from an earlier version or an earlier conversation). The callback query id."""
        chat = self._chat
        if message_id is None:
            message_id = self._message_with(chat, data)
        query_id = self.telegram.state.user_presses(chat, message_id, data, sender=self._sender)
        await self.deliver()
        return query_id

    def _message_with(self, chat: BotApiChat, data: str) -> int:
        for message in reversed(list(chat.messages.values())):
            if message.from_bot and not message.deleted:
                for row in message.inline_keyboard or []:
                    if any(button.get("callback_data") == data for button in row):
                        return message.message_id
        old = self.telegram.state.add_message(
            chat,
            from_bot=True,
            text="…",
            inline_keyboard=[[{"text": "·", "callback_data": data}]],
        )
        return old.message_id


@dataclass
class _Blocked:
    """A set-like view of the users who blocked the bot (silently, as tests need it)."""

    telegram: FakeTelegram

    def add(self, user_id: int) -> None:
        self.telegram.chat(user_id).blocked = True

    def discard(self, user_id: int) -> None:
        self.telegram.chat(user_id).blocked = False

    def clear(self) -> None:
        for chat in self.telegram.state.chats.values():
            chat.blocked = False

    def __contains__(self, user_id: object) -> bool:
        chat = self.telegram.state.chats.get(user_id) if isinstance(user_id, int) else None
        return chat is not None and chat.blocked
