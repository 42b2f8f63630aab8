"""The bot's own `ExtBot`: a text longer than Telegram takes is sent as several messages.

Replies carry what vendors and people wrote (a repair's description, a task's rooms and
devices, a list of records), so any of them can outgrow Telegram's 4096-character limit, which
it answers with "message is too long" and the user with silence. Splitting here covers every
way the bot sends text (`chat.send_message`, `message.reply_text`, `bot.send_message`).
"""

from __future__ import annotations

from typing import Any, Final

from telegram import Message
from telegram.ext import ExtBot

MAX_TEXT: Final = 4096  # Telegram's limit, counted in UTF-16 code units
_SEPARATORS: Final = ("\n\n", "\n", " ")


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fitting(text: str, limit: int) -> int:
    """The length of the longest start of `text` within `limit` UTF-16 code units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """`text` in pieces of at most `limit`, cut at a paragraph, a line or a space if one is
    in the second half of a piece; the separator at a cut is dropped."""
    pieces: list[str] = []
    rest = text
    while _units(rest) > limit:
        end = max(1, _fitting(rest, limit))
        cut, skip = end, 0
        for separator in _SEPARATORS:
            at = rest.rfind(separator, 0, end)
            if at > 0 and at >= end // 2:
                cut, skip = at, len(separator)
                break
        pieces.append(rest[:cut])
        rest = rest[cut + skip :]
    pieces.append(rest)
    return pieces


class ConciergeBot(ExtBot[int]):
    """PTB's `ExtBot` (rate-limit arguments: a retry count), over-long texts sent in pieces."""

    __slots__ = ()

    async def send_message(
        self, chat_id: int | str, text: str, *args: Any, **kwargs: Any
    ) -> Message:
        """Sends `text`; when too long, in pieces, the buttons under the last one."""
        formatted = args or kwargs.get("entities") or kwargs.get("parse_mode")
        pieces = [text] if formatted else split_text(text)
        if len(pieces) == 1:
            return await super().send_message(chat_id, text, *args, **kwargs)
        first = {key: value for key, value in kwargs.items() if key != "reply_markup"}
        last = {
            key: value
            for key, value in kwargs.items()
            if key not in ("reply_parameters", "reply_to_message_id")
        }
        await super().send_message(chat_id, pieces[0], **first)
        for piece in pieces[1:-1]:
            await super().send_message(chat_id, piece, **(last | {"reply_markup": None}))
        return await super().send_message(chat_id, pieces[-1], **last)
