"""No message makes the date parser work on more than a short phrase (a work bound, not a
timing): a 4 KB "time" once held the event loop for 0.4 s."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dateparser
import pytest

from conversations import datetext, freetext, slots, timewindow
from conversations.booking_request import AmenityNames, parse_booking_request

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 30, tzinfo=SHANGHAI)
GYM = AmenityNames("gym", ("gym", "健身房"))
FLOODS = [
    "next week " * 400,
    "tomorrow 7pm " + "blah " * 800,
    "明天" * 2000,
    "a" * 4096,
    "gym " + "next friday after lunch maybe " * 150,
]


@pytest.fixture
def parsed_lengths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every text handed to dateparser."""
    lengths: list[int] = []
    real = dateparser.parse

    def recording(text: str, *args: Any, **kwargs: Any) -> Any:
        lengths.append(len(text))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(dateparser, "parse", recording)
    return lengths


@pytest.mark.parametrize("text", FLOODS)
def test_long_text_never_reaches_the_date_parser(parsed_lengths: list[int], text: str) -> None:
    assert timewindow.parse_window(text, NOW, SHANGHAI) == timewindow.Refusal(
        timewindow.Reason.UNREADABLE
    )
    assert slots.parse_date(text, NOW, SHANGHAI) == slots.DateRefusal(slots.DateReason.UNREADABLE)
    request = parse_booking_request(text, [GYM], NOW, SHANGHAI)
    assert request.date is None
    assert freetext.classify(text) is freetext.Kind.OTHER
    assert datetext.relative_date(text, NOW, SHANGHAI) is None
    assert parsed_lengths == []


def test_a_phrase_at_the_limit_is_still_read(parsed_lengths: list[int]) -> None:
    text = "in 3 days" + " " * (datetext.MAX_TEXT - len("in 3 days"))
    assert slots.parse_date(text, NOW, SHANGHAI) == datetime(2026, 11, 26).date()
    assert parsed_lengths
    assert max(parsed_lengths) <= datetext.MAX_TEXT
