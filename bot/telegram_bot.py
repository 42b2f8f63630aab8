"""The bot's own `ExtBot`: what Telegram refuses is never asked, wherever a handler asks it.

- A text longer than Telegram takes is sent as several messages. Replies carry what vendors and
  people wrote (a repair's description, a task's rooms and devices, a list of records), so any
  of them can outgrow the 4096-character limit, which Telegram answers with "message is too
  long" and the user with silence. Splitting here covers every way the bot sends text.
- A caption is cut to Telegram's 1024 (a vendor's text as a photo's caption).
- A press is answered once: Telegram refuses a second answer ("query is too old"), and that
  refusal used to end in an apology instead of the reply. The bot remembers the presses it
  answered (a bounded memory); a second answer is not sent, and its text, if it had one, comes
  as a message instead, so nothing a handler meant to say is lost.
- "Message is not modified" (an identical re-edit, a double tap) is success, not an error: an
  edit to what the bot itself last put in that message is not even sent (a bounded memory of
  its recent messages), and Telegram's refusal of one it could not foresee is taken as success.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Final

from telegram import InlineKeyboardMarkup, InputMedia, Message
from telegram.error import BadRequest
from telegram.ext import ExtBot

from conversations import oneflow

logger = logging.getLogger(__name__)

MAX_TEXT: Final = 4096  # Telegram's limit, counted in UTF-16 code units
MAX_CAPTION: Final = 1024  # the same for captions
REMEMBERED_PRESSES: Final = 10_000
REMEMBERED_MESSAGES: Final = 10_000
ELLIPSIS: Final = "…"
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


def fit_caption(caption: str | None, limit: int = MAX_CAPTION) -> str | None:
    """`caption` cut to `limit` UTF-16 code units, ending in an ellipsis when cut."""
    if caption is None or _units(caption) <= limit:
        return caption
    return caption[: _fitting(caption, limit - 1)].rstrip() + ELLIPSIS


def _not_modified(error: BadRequest) -> bool:
    return "message is not modified" in error.message.lower()


def _markup_json(markup: object) -> str:
    return markup.to_json() if isinstance(markup, InlineKeyboardMarkup) else ""


_KEEP: Final = object()  # an edit that leaves the text as it is

# What a message shows: its text (or caption) and its inline keyboard.
Shown = tuple[str | None, str]


class ConciergeBot(ExtBot[int]):
    """PTB's `ExtBot` (rate-limit arguments: a retry count) that keeps Telegram's rules."""

    __slots__ = ("_presses", "_shown")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # query id -> (chat id, answered): the presses this bot has seen, newest last.
        self._presses: OrderedDict[str, tuple[int | None, bool]] = OrderedDict()
        # (chat id, message id) -> what the bot last made that message show.
        self._shown: OrderedDict[tuple[int, int], Shown] = OrderedDict()

    def _remember(self, sent: object) -> None:
        if not isinstance(sent, Message):
            return
        content = sent.text if sent.text is not None else sent.caption
        markup = _markup_json(sent.reply_markup)
        self._shown[(sent.chat_id, sent.message_id)] = (content, markup)
        # The open flow's newest prompt loses its buttons when the flow is put aside.
        oneflow.note_shown(sent.chat_id, sent.message_id, has_buttons=bool(markup))
        while len(self._shown) > REMEMBERED_MESSAGES:
            self._shown.popitem(last=False)

    def outdated(self, message: Message) -> bool:
        """Whether the bot has since made this message show something else (a press on it was
        made on a view the user no longer has)."""
        shown = self._shown.get((message.chat_id, message.message_id))
        content = message.text if message.text is not None else message.caption
        return shown is not None and shown != (content, _markup_json(message.reply_markup))

    def _unchanged(
        self, chat_id: object, message_id: object, content: object, markup: object
    ) -> bool:
        """Whether an edit would leave the message as the bot last made it (so Telegram would
        refuse it as "not modified")."""
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            return False
        shown = self._shown.get((chat_id, message_id))
        if shown is None:
            return False
        return shown == (shown[0] if content is _KEEP else content, _markup_json(markup))

    async def _edit(self, edit: Any, content: object, *args: Any, **kwargs: Any) -> Message | bool:
        chat_id, message_id = kwargs.get("chat_id"), kwargs.get("message_id")
        if self._unchanged(chat_id, message_id, content, kwargs.get("reply_markup")):
            return True
        try:
            edited = await edit(*args, **kwargs)
        except BadRequest as error:
            if _not_modified(error):
                return True
            raise
        self._remember(edited)
        return edited  # type: ignore[no-any-return]

    # --- presses ----------------------------------------------------------------------------

    def note_press(self, query_id: str, chat_id: int | None, *, answered: bool = False) -> None:
        """Remembers a press that arrived, and where its late words should go; `answered`: it
        had its one answer elsewhere (at receipt, by the process that stored it) or can have
        none any more (too old), so what a handler answers comes as a message."""
        answered = answered or self._presses.get(query_id, (None, False))[1]
        self._presses[query_id] = (chat_id, answered)
        while len(self._presses) > REMEMBERED_PRESSES:
            self._presses.popitem(last=False)

    def answered(self, query_id: str) -> bool:
        """Whether this press has had its one answer."""
        return self._presses.get(query_id, (None, False))[1]

    async def answer_callback_query(
        self,
        callback_query_id: str,
        text: str | None = None,
        show_alert: bool | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        """Answers a press once; a second answer's text is sent as a message instead."""
        chat_id, answered = self._presses.get(callback_query_id, (None, False))
        if answered:
            if text and chat_id is not None:
                # Quietly, as a toast would have been.
                await self.send_message(chat_id, text, disable_notification=True)
            return True
        # Marked before the request goes, so a concurrent second answer sees it.
        self._presses[callback_query_id] = (chat_id, True)
        try:
            return await super().answer_callback_query(
                callback_query_id, text, show_alert, *args, **kwargs
            )
        except BadRequest as error:
            # Too late (a press older than Telegram keeps): the spinner is gone anyway, and
            # whatever the handler does next (an edit, a message) is the real answer.
            logger.info("a press could not be answered: %s", error.message)
            return False

    # --- edits and captions -----------------------------------------------------------------

    async def edit_message_text(self, *args: Any, **kwargs: Any) -> Message | bool:
        """Edits a message's text; an edit that changes nothing is success."""
        text = kwargs["text"] if "text" in kwargs else args[0]
        return await self._edit(super().edit_message_text, text, *args, **kwargs)

    async def edit_message_reply_markup(self, *args: Any, **kwargs: Any) -> Message | bool:
        """Edits a message's buttons; an edit that changes nothing is success."""
        return await self._edit(super().edit_message_reply_markup, _KEEP, *args, **kwargs)

    async def edit_message_caption(self, *args: Any, **kwargs: Any) -> Message | bool:
        """Edits a caption, cut to fit; an edit that changes nothing is success."""
        if "caption" in kwargs:
            kwargs["caption"] = fit_caption(kwargs["caption"])
        return await self._edit(
            super().edit_message_caption, kwargs.get("caption"), *args, **kwargs
        )

    async def send_photo(self, *args: Any, **kwargs: Any) -> Message:
        """Sends a photo, its caption cut to fit."""
        if "caption" in kwargs:
            kwargs["caption"] = fit_caption(kwargs["caption"])
        elif len(args) > 2:
            args = (*args[:2], fit_caption(args[2]), *args[3:])
        sent = await super().send_photo(*args, **kwargs)
        self._remember(sent)
        return sent

    async def send_document(self, *args: Any, **kwargs: Any) -> Message:
        """Sends a document, its caption cut to fit."""
        if "caption" in kwargs:
            kwargs["caption"] = fit_caption(kwargs["caption"])
        elif len(args) > 2:
            args = (*args[:2], fit_caption(args[2]), *args[3:])
        return await super().send_document(*args, **kwargs)

    async def send_media_group(self, *args: Any, **kwargs: Any) -> tuple[Message, ...]:
        """Sends an album, every caption cut to fit."""
        media = kwargs.get("media", args[1] if len(args) > 1 else None)
        for item in media or ():
            if isinstance(item, InputMedia) and item.caption is not None:
                fitted = fit_caption(item.caption)
                if fitted != item.caption:
                    with item._unfrozen():
                        item.caption = fitted
        return await super().send_media_group(*args, **kwargs)

    # --- texts ------------------------------------------------------------------------------

    async def send_message(
        self, chat_id: int | str, text: str, *args: Any, **kwargs: Any
    ) -> Message:
        """Sends `text`; when too long, in pieces, the buttons under the last one."""
        formatted = args or kwargs.get("entities") or kwargs.get("parse_mode")
        pieces = [text] if formatted else split_text(text)
        if len(pieces) == 1:
            sent = await super().send_message(chat_id, text, *args, **kwargs)
            self._remember(sent)
            return sent
        first = {key: value for key, value in kwargs.items() if key != "reply_markup"}
        last = {
            key: value
            for key, value in kwargs.items()
            if key not in ("reply_parameters", "reply_to_message_id")
        }
        await super().send_message(chat_id, pieces[0], **first)
        for piece in pieces[1:-1]:
            await super().send_message(chat_id, piece, **(last | {"reply_markup": None}))
        sent = await super().send_message(chat_id, pieces[-1], **last)
        self._remember(sent)
        return sent
