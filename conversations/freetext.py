"""What a message typed outside any conversation asks for: a booking, a repair, or neither.

Pure functions, no I/O, no vendor call, so the decision is cheap enough to make for every stray
message. English and Chinese words are kept side by side in each vocabulary.

* A booking: a booking verb ("book", "reserve", "预约", "预订"), or a day or a time of day
  ("gym tomorrow 7pm for an hour", "健身房 明天晚上7点"). `conversations.booking` then reads
  the request in full against the amenities Akubela lists and echoes it for confirmation.
* A problem: words that say something is broken, leaking or not working ("my kitchen tap is
  leaking", "电梯坏了"). The resident is offered a repair report with the text as description.
* Anything else gets the menu.

A booking verb wins over a problem word ("book a plumber" is not a repair); a problem word
wins over a day ("the lift has been broken since yesterday" is a repair).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

from telegram import Message
from telegram.ext import filters

from conversations import datetext
from conversations.vocab import PACKS, joined


class Kind(StrEnum):
    """What a stray message asks for."""

    BOOKING = "booking"
    PROBLEM = "problem"
    OTHER = "other"


_BOOKING_VERB: Final = re.compile(joined(pack.booking_verbs for pack in PACKS))
_PROBLEM_WORDS: Final = re.compile(joined(pack.problem_words for pack in PACKS))
# Words that name a day without numbers, as `datetext` reads them.
_DAY_WORDS: Final = re.compile(joined(pack.day_words for pack in PACKS))


def classify(text: str) -> Kind:
    """What `text` asks for; text too long to be a request (`datetext.MAX_TEXT`) is OTHER."""
    normalized = datetext.normalize(text)
    if not normalized:
        return Kind.OTHER
    if _BOOKING_VERB.search(normalized):
        return Kind.BOOKING
    if _PROBLEM_WORDS.search(normalized):
        return Kind.PROBLEM
    if _DAY_WORDS.search(normalized) or _names_a_time(normalized):
        return Kind.BOOKING
    return Kind.OTHER


def _names_a_time(normalized: str) -> bool:
    if datetext.explicit_date_text(normalized):
        return True
    start, _end, _rest, _bad = datetext.take_times(normalized)
    # A bare number ("3") is not a time; "7pm", "19:00", "7点" are.
    return start is not None and (start.certain or "点" in normalized or "點" in normalized)


class _Kind(filters.MessageFilter):
    """Text messages that `classify` reads as `kind`."""

    def __init__(self, kind: Kind) -> None:
        super().__init__(name=f"freetext.{kind.value}")
        self.kind = kind

    def filter(self, message: Message) -> bool:
        """Whether the message's text asks for this kind of thing."""
        return message.text is not None and classify(message.text) is self.kind


BOOKING_TEXT: Final = _Kind(Kind.BOOKING)
"""Typed text that asks for a booking: an entry to the booking conversation."""
