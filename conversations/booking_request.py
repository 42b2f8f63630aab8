"""A whole booking in one message: "/book gym tomorrow 7pm for 1 hour", "预约健身房 明天晚上7点".

Pure functions, no Telegram. The result is partial on purpose: each of amenity, date, start
and duration may be missing (not said) or ambiguous (said, but it could mean more than one
thing: two amenities match, "7" without am/pm). Nothing is guessed: the conversation asks for
every part in `missing` and `ambiguous`, then checks the slot with `conversations.slots`.

Amenities match by name or alias in either language, case-insensitively: a whole name ("meeting
room", "健身房"), a word of an English name ("bbq" for "BBQ terrace"), or the first two or more
characters of a Chinese name ("烧烤" for "烧烤露台"). The longest match wins; a tie between
amenities is ambiguous. Vendor names like "Gym / 健身房" give one alias per language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from conversations import datetext
from conversations.records import Amenity
from conversations.vocab import PACKS, joined


class Part(StrEnum):
    """The parts of a booking request."""

    AMENITY = "amenity"
    DATE = "date"
    START = "start"
    DURATION = "duration"


_NAME_SPLIT: Final = re.compile(r"\s*(?:/|\||\(|\)|,|\s-\s)\s*")
_CJK: Final = re.compile(r"[\u3400-\u9fff]")
_WORD_STOP: Final = frozenset({"the", "and", "for", "with"})


@dataclass(frozen=True, slots=True)
class AmenityNames:
    """An amenity id with every name a resident may call it by (normalized)."""

    amenity_id: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, amenity: Amenity, aliases: Iterable[str] = ()) -> AmenityNames:
        """Names from the amenity's name ("Gym / 健身房") plus extra aliases."""
        pieces = [*_NAME_SPLIT.split(amenity.name), *aliases]
        names = tuple(dict.fromkeys(n for p in pieces if (n := datetext.normalize(p))))
        return cls(amenity.id, names)


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """What one message said; None where a part is missing or ambiguous."""

    amenity_id: str | None = None
    date: date | None = None
    start_time: time | None = None
    duration_minutes: int | None = None
    ambiguous: tuple[Part, ...] = ()
    amenity_candidates: tuple[str, ...] = ()
    date_in_past: bool = False
    # What was not understood, to be named back: the words left over, and a written date that
    # does not exist ("2月31日", "February 31").
    leftover: str = ""
    impossible_date: str = ""
    said: frozenset[Part] = field(default_factory=frozenset)

    @property
    def missing(self) -> tuple[Part, ...]:
        """Parts still to ask for, in the order the conversation asks them."""
        values = {
            Part.AMENITY: self.amenity_id,
            Part.DATE: self.date,
            Part.START: self.start_time,
            Part.DURATION: self.duration_minutes,
        }
        return tuple(p for p, v in values.items() if v is None)

    @property
    def complete(self) -> bool:
        """True when every part is known and nothing is ambiguous."""
        return not self.missing and not self.ambiguous

    def start(self, zone: ZoneInfo) -> datetime | None:
        """The aware start in `zone`, once both the date and the time are known."""
        if self.date is None or self.start_time is None:
            return None
        minutes = self.start_time.hour * 60 + self.start_time.minute
        return datetext.local_moment(self.date, minutes, zone)


# ---- amenity ---------------------------------------------------------------------------------


def _matches(name: str, text: str) -> Iterable[tuple[int, re.Match[str]]]:
    if _CJK.search(name):
        for length in range(len(name), 1, -1):
            if match := re.search(re.escape(name[:length]), text):
                yield length, match
                return
        return
    if match := re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", text):
        yield len(name), match
        return
    for word in name.split():
        if len(word) < 3 or word in _WORD_STOP:
            continue
        if match := re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text):
            yield len(word), match


def match_amenity(
    text: str, amenities: Sequence[AmenityNames]
) -> tuple[list[str], re.Match[str] | None]:
    """The ids of the best-matching amenities (one, several, or none) and the matched span."""
    best = 0
    found: dict[str, re.Match[str]] = {}
    for amenity in amenities:
        for name in amenity.names:
            for score, match in _matches(name, text):
                if score > best:
                    best, found = score, {amenity.amenity_id: match}
                elif score == best and amenity.amenity_id not in found:
                    found[amenity.amenity_id] = match
    if not found:
        return [], None
    return list(found), next(iter(found.values()))


# ---- duration --------------------------------------------------------------------------------

_WORD_NUMBERS: Final = {word: value for pack in PACKS for word, value in pack.number_words.items()}
_NUMBER: Final = (
    r"(?<![a-z0-9.])(\d+(?:\.\d+)?|" + "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True)) + ")"
)
_HOUR_UNITS: Final = joined(pack.hour_units for pack in PACKS)
_MINUTE_UNITS: Final = joined(pack.minute_units for pack in PACKS)
_DURATIONS: Final = (
    # "half an hour", "半小时", "半个小时"
    (
        re.compile(joined(pack.half_hour for pack in PACKS)),
        "half",
    ),
    # "an hour and a half", "1 and a half hours"
    (
        re.compile(rf"(?:for\s+)?{_NUMBER}\s*(?:{joined(pack.and_a_half for pack in PACKS)})\b"),
        "and_half",
    ),
    # "1h30", "1 hour 30 minutes", "1.5 hours", "2h", "1个半小时", "1小时30分钟"
    (
        re.compile(
            rf"(?:for\s+)?{_NUMBER}\s*(?:个|個)?\s*(半)?\s*(?:{_HOUR_UNITS})"
            r"(?![a-z])(?:(?<=h)(\d{2})(?![\d:a-z])"
            rf"|\s*(?:and\s+)?(\d{{1,2}})\s*(?:{_MINUTE_UNITS}|分)(?![a-z]))?"
        ),
        "hours",
    ),
    # "90 min", "90分钟"
    (
        re.compile(rf"(?:for\s+)?(?<![\d.])(\d+)\s*(?:{_MINUTE_UNITS})(?![a-z])"),
        "minutes",
    ),
)


def _amount(text: str) -> float:
    return _WORD_NUMBERS[text] if text in _WORD_NUMBERS else float(text)


def take_duration(text: str) -> tuple[int | None, str]:
    """A duration in minutes ("for 1 hour", "2h", "一个半小时", "90分钟") and the rest."""
    for pattern, kind in _DURATIONS:
        match = pattern.search(text)
        if match is None:
            continue
        if kind == "half":
            minutes = 30.0
        elif kind == "and_half":
            minutes = _amount(match.group(1)) * 60 + 30
        elif kind == "hours":
            minutes = _amount(match.group(1)) * 60
            minutes += 30 if match.group(2) else 0
            extra = match.group(3) or match.group(4)
            minutes += int(extra) if extra else 0
        else:
            minutes = float(match.group(1))
        rest = " ".join((text[: match.start()] + " " + text[match.end() :]).split())
        return (int(minutes) if minutes > 0 and minutes == int(minutes) else None), rest
    return None, text


# ---- the whole message -----------------------------------------------------------------------

_COMMAND: Final = re.compile(joined(pack.booking_command for pack in PACKS))


# Words that ask politely or point, and carry no part of a booking.
_CHATTER: Final = re.compile(joined(pack.chatter for pack in PACKS))


def parse_booking_request(
    text: str,
    amenities: Sequence[AmenityNames],
    now: datetime,
    zone: ZoneInfo,
    *,
    day_first: bool = False,
) -> BookingRequest:
    """Reads amenity, date, start and duration from one message, leaving unclear parts None."""
    rest = _COMMAND.sub(" ", datetext.normalize(text))
    ambiguous: list[Part] = []
    said: set[Part] = set()

    amenity_id: str | None = None
    candidates, span = match_amenity(rest, amenities)
    if span is not None:
        said.add(Part.AMENITY)
        rest = " ".join((rest[: span.start()] + " " + rest[span.end() :]).split())
        if len(candidates) == 1:
            amenity_id = candidates[0]
        else:
            ambiguous.append(Part.AMENITY)

    duration, rest = take_duration(rest)
    if duration is not None:
        said.add(Part.DURATION)

    today = now.astimezone(zone).date()
    written = datetext.explicit_date_text(rest)
    day, rest, dated = datetext.take_explicit_date(rest, today, day_first=day_first)
    start, end, rest, bad_time = datetext.take_times(rest)
    part, rest = datetext.take_day_part(rest)

    start_time: time | None = None
    if bad_time:
        said.add(Part.START)
        ambiguous.append(Part.START)
    elif start is not None:
        said.add(Part.START)
        certain = start.certain or part is not None or (end is not None and end.certain)
        if not certain:
            ambiguous.append(Part.START)
        else:
            start_time, range_minutes = _resolve_start(start, end, part)
            if start_time is None:
                ambiguous.append(Part.START)
            elif duration is None and range_minutes is not None:
                duration = range_minutes
                said.add(Part.DURATION)

    if dated:
        said.add(Part.DATE)
    elif not datetext.is_blank(rest):
        day, rest = datetext.take_relative_date(rest, now, zone)
        if day is not None:
            said.add(Part.DATE)
    leftover = " ".join(_CHATTER.sub(" ", datetext.without_filler(rest)).split())
    in_past = day is not None and day < today
    return BookingRequest(
        amenity_id=amenity_id,
        date=None if in_past else day,
        start_time=start_time,
        duration_minutes=duration,
        ambiguous=tuple(ambiguous),
        amenity_candidates=tuple(candidates) if len(candidates) > 1 else (),
        date_in_past=in_past,
        leftover=leftover,
        impossible_date=written if dated and day is None else "",
        said=frozenset(said),
    )


def _resolve_start(
    start: datetext.ClockTime, end: datetext.ClockTime | None, part: datetext.DayPart | None
) -> tuple[time | None, int | None]:
    if end is None:
        minutes = datetext.resolve_single(start, part)
        length = None
    else:
        span = datetext.resolve_range(start, end, part)
        if span is None or span.end <= span.start:
            return None, None
        minutes, length = span.start, span.end - span.start
    if minutes is None or not 0 <= minutes < 24 * 60:
        return None, None
    return time(minutes // 60, minutes % 60), length
