"""Telegram's rules, in one place: the limits and refusals of the methods the bot uses.

The local Bot API (`sandbox.botapi.methods`) enforces exactly these, and so does the tests'
in-process stand-in (`tests/support_telegram.py`), which runs the same methods on the same
state: a request that real Telegram would refuse is refused in a test too. Each rule carries the
description Telegram answers with, so the bot meets the same error text it would meet in
production.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

# --- sizes ------------------------------------------------------------------------------------

MAX_TEXT: Final = 4096  # message text, after entity parsing
MAX_CAPTION: Final = 1024  # media caption, after entity parsing
MAX_CALLBACK_DATA: Final = 64  # bytes
MAX_ANSWER_TEXT: Final = 200  # answerCallbackQuery's text
MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024  # sendPhoto: "must be at most 10 MB"
MAX_PHOTO_SIDES: Final = 10_000  # width + height
MAX_PHOTO_RATIO: Final = 20  # longer side / shorter side
MAX_DOWNLOAD_BYTES: Final = 20 * 1024 * 1024  # getFile
DELETE_WINDOW_SECONDS: Final = 48 * 3600  # deleteMessage
DEFAULT_ANSWER_WINDOW: Final = 15.0  # seconds a callback query can be answered
COMMAND_NAME: Final = re.compile(r"[a-z0-9_]{1,32}")  # BotCommand.command, as typed

# --- what Telegram answers --------------------------------------------------------------------

QUERY_TOO_OLD: Final = "query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED: Final = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
BLOCKED: Final = "Forbidden: bot was blocked by the user"
KICKED: Final = "Forbidden: bot was kicked from the group chat"
NOT_MEMBER: Final = "Forbidden: bot is not a member of the group chat"
CANT_DELETE: Final = "message can't be deleted"
FILE_TOO_BIG: Final = "file is too big"
PHOTO_DIMENSIONS: Final = "PHOTO_INVALID_DIMENSIONS"
PHOTO_TOO_BIG: Final = "PHOTO_SAVE_FILE_INVALID"
CONTACT_IN_GROUP: Final = "phone number can be requested in private chats only"

# The update types a bot can ask for; Telegram's default (no allowed_updates) leaves out
# chat_member, message_reaction and message_reaction_count.
DEFAULT_UPDATE_TYPES: Final = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
ALL_UPDATE_TYPES: Final = DEFAULT_UPDATE_TYPES | {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}
# The methods that put a message in a chat, and so count towards flood control.
SENDING_METHODS: Final = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendmediagroup",
        "editmessagetext",
        "editmessagecaption",
        "editmessagereplymarkup",
    }
)


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings of the rulebook: which of Telegram's rules a server plays by."""

    # How long a press can be answered (Telegram: a few seconds, then "query is too old").
    answer_window: float = DEFAULT_ANSWER_WINDOW
    # Flood control as Telegram does it (off in unit tests that send faster than people do).
    flood_control: bool = False
    # Telegram refuses button URLs that point at loopback or private hosts; the demo's login
    # links point at 127.0.0.1, so only a server playing production refuses them.
    public_urls_only: bool = False


def url_is_public(url: str) -> bool:
    """Whether a URL names a host Telegram would accept in a button (not loopback, not LAN)."""
    host = (urlsplit(url).hostname or "").lower()
    if not host or host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." in host
    return address.is_global


def button_url_error(url: object, rules: Rules) -> str | None:
    """The refusal for an inline button's URL, or None when Telegram takes it."""
    if not isinstance(url, str):
        return f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
    scheme = urlsplit(url).scheme
    if scheme not in {"http", "https", "tg"}:
        return f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
    if scheme != "tg" and rules.public_urls_only and not url_is_public(url):
        return f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
    return None


def photo_error(size: int, width: int, height: int) -> str | None:
    """The refusal for a photo of these bytes and dimensions, or None."""
    if size > MAX_PHOTO_BYTES:
        return PHOTO_TOO_BIG
    if width <= 0 or height <= 0 or width + height > MAX_PHOTO_SIDES:
        return PHOTO_DIMENSIONS
    if max(width, height) / min(width, height) > MAX_PHOTO_RATIO:
        return PHOTO_DIMENSIONS
    return None


def may_delete(sent_at: float, now: float) -> bool:
    """Whether a message sent at `sent_at` may still be deleted by the bot."""
    return now - sent_at < DELETE_WINDOW_SECONDS


def may_answer(received_at: float, now: float, rules: Rules) -> bool:
    """Whether a press that arrived at `received_at` can still be answered."""
    return now - received_at <= rules.answer_window


@dataclass(slots=True)
class _Window:
    """Timestamps of recent sends to one chat (or overall)."""

    times: deque[float] = field(default_factory=deque)


class FloodControl:
    """Telegram's limits on sending: ~1 msg/s per chat with short bursts, 20/min per group,
    30/s overall. `admit` answers None, or the whole seconds to wait (429's retry_after)."""

    PRIVATE_BURST: Final = 5  # messages at once to one private chat...
    PRIVATE_RATE: Final = 1.0  # ...then one a second
    GROUP_PER_MINUTE: Final = 20
    OVERALL_PER_SECOND: Final = 30

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._chats: dict[int, _Window] = {}
        self._overall = _Window()

    def admit(self, chat_id: int, *, group: bool) -> int | None:
        """Counts one message to `chat_id`, or says how long to wait before it is taken."""
        now = self._clock()
        overall = self._wait(self._overall, now, count=self.OVERALL_PER_SECOND, period=1.0)
        window = self._chats.setdefault(chat_id, _Window())
        if group:
            own = self._wait(window, now, count=self.GROUP_PER_MINUTE, period=60.0)
        else:
            # A bucket of PRIVATE_BURST refilled at PRIVATE_RATE: the n-th message back within
            # the last PRIVATE_BURST seconds must wait.
            period = self.PRIVATE_BURST / self.PRIVATE_RATE
            own = self._wait(window, now, count=self.PRIVATE_BURST, period=period)
        wait = max(overall, own)
        if wait > 0:
            return max(1, math.ceil(wait))
        window.times.append(now)
        self._overall.times.append(now)
        return None

    @staticmethod
    def _wait(window: _Window, now: float, *, count: int, period: float) -> float:
        times = window.times
        while times and now - times[0] >= period:
            times.popleft()
        if len(times) < count:
            return 0.0
        return times[0] + period - now
