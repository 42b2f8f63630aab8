"""A stand-in for Telegram in tests: a recording `BaseRequest` and a chat that sends updates.

The application under test is the real one (`build_application`); only the HTTP layer to the
Bot API is replaced. Every call is recorded with its parameters, and answers are shaped like
Telegram's so PTB parses them.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

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


@dataclass
class FakeTelegram(BaseRequest):
    """Answers every Bot API method the bot uses, like Telegram, and records the calls."""

    calls: list[Call] = field(default_factory=list)
    blocked_chats: set[int] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _files: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return None

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
        name = url.rsplit("/", 1)[-1]
        params = {
            k: _decode(v) for k, v in (request_data.parameters if request_data else {}).items()
        }
        self.calls.append(Call(name, params))
        chat_id = params.get("chat_id")
        if chat_id is not None and int(chat_id) in self.blocked_chats:
            body = {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
            return 403, json.dumps(body).encode()
        result = self._answer(name, params)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": int(params.get("message_id") or next(self._ids)),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Concierge",
                "username": BOT_USERNAME,
            },
        }
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        message.update(extra)
        return message

    def _photo(self) -> list[dict[str, Any]]:
        n = next(self._files)
        return [
            {
                "file_id": f"photo-{n}",
                "file_unique_id": f"u-photo-{n}",
                "width": 320,
                "height": 320,
            }
        ]

    def _answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Concierge",
                "username": BOT_USERNAME,
                "can_join_groups": False,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if name in {"sendMessage", "editMessageText"}:
            return self._message(params, text=str(params.get("text", "")))
        if name == "editMessageReplyMarkup":
            return self._message(params)
        if name in {"sendPhoto", "editMessageCaption"}:
            return self._message(params, photo=self._photo(), caption=params.get("caption"))
        if name == "sendDocument":
            return self._message(
                params, document={"file_id": "doc-1", "file_unique_id": "u-doc-1"}
            )
        if name == "sendMediaGroup":
            media = params.get("media") or []
            return [self._message(params, photo=self._photo()) for _ in media]
        if name == "getFile":
            return {
                "file_id": params["file_id"],
                "file_unique_id": "u",
                "file_path": "photos/1.jpg",
            }
        # answerCallbackQuery, sendChatAction, deleteMessage, setMyCommands, ...
        return True

    # -- what tests look at ---------------------------------------------------------------

    def sent(self, *methods: str) -> list[Call]:
        """Calls of these methods (all calls when none given), oldest first."""
        return [c for c in self.calls if not methods or c.method in methods]

    def replies(self) -> list[Call]:
        """What the user saw: messages, edits and photos, oldest first."""
        return self.sent(
            "sendMessage", "editMessageText", "sendPhoto", "editMessageCaption", "sendMediaGroup"
        )

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

    def clear(self) -> None:
        self.calls.clear()


@dataclass
class Chat:
    """One private chat with the bot: what a user does, turned into updates."""

    app: Application[Any, Any, Any, Any, Any, Any]
    user_id: int
    first_name: str = "Ann"
    language_code: str = "en"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _user(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }

    def _base_message(self) -> dict[str, Any]:
        return {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": self.user_id, "type": "private", "first_name": self.first_name},
            "from": self._user(),
        }

    async def _process(self, payload: dict[str, Any]) -> None:
        payload["update_id"] = next(self._ids) + 10_000
        update = Update.de_json(payload, self.app.bot)
        await self.app.process_update(update)

    async def send(self, text: str) -> None:
        """Types `text` (a leading /command becomes a bot_command entity, as Telegram does)."""
        message = self._base_message() | {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        await self._process({"message": message})

    async def send_photo(
        self,
        file_id: str = "user-photo-1",
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> None:
        """Sends a photo, optionally with a caption or as part of an album."""
        message = self._base_message() | {
            "photo": [
                {"file_id": file_id, "file_unique_id": f"u-{file_id}", "width": 800, "height": 600}
            ]
        }
        if caption is not None:
            message["caption"] = caption
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        await self._process({"message": message})

    async def send_contact(self, phone_number: str) -> None:
        """Shares the user's own phone number with the contact button."""
        message = self._base_message() | {
            "contact": {
                "phone_number": phone_number,
                "first_name": self.first_name,
                "user_id": self.user_id,
            }
        }
        await self._process({"message": message})

    async def send_sticker(self) -> None:
        """Sends a sticker, which no step expects."""
        message = self._base_message() | {
            "sticker": {
                "file_id": "sticker-1",
                "file_unique_id": "u-sticker-1",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            }
        }
        await self._process({"message": message})

    async def press(self, data: str, message_id: int = 1) -> None:
        """Presses an inline button carrying `data` on bot message `message_id`."""
        bot_message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": self.user_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Concierge"},
            "text": "…",
        }
        query = {
            "id": str(next(self._ids)),
            "from": self._user(),
            "chat_instance": f"ci-{self.user_id}",
            "message": bot_message,
            "data": data,
        }
        await self._process({"callback_query": query})
