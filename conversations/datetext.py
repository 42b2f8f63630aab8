"""Reading dates and times of day out of text, with the words of every language pack.

The words are in `conversations.vocab` (one pack per language); this module is the grammar
they share.

Used by `timewindow`, `slots` and `booking_request`. Pure functions, no I/O. The pieces:

* `normalize` folds width, case, dashes and small Chinese numerals ("下午三点半" -> "下午3点半").
* `take_explicit_date` reads a calendar date written with numbers or a month name
  ("25/12", "12/25", "2026-12-25", "dec 25", "12月25日"). A date without a year is this year's
  if that is today or later, next year's if that is within `ROLL_FORWARD_DAYS`, else this
  year's (in the past, for the caller to refuse). `a/b` with both parts at most 12 is read
  month first unless `day_first` (dateparser's default order, and how Chinese writes dates).
* `take_times` reads a time range ("9-12", "9am to noon", "下午3点到5点") or a single time.
* `take_day_part` reads a part of the day ("morning", "下午").
* `take_bound` reads "after" / "before" said about a single time ("after 3pm", "3点以后").
* `relative_date` reads the rest ("tomorrow", "next monday", "下周三", "后天") with our own
  week vocabulary first and `dateparser` (future dates preferred, relative to `now` in the
  user's zone) for everything else. Weeks mean the same in both languages: "next friday" =
  下周五 = the Friday of next week (weeks start on Monday); "this friday" = 这周五 = this
  week's; a bare "friday" = 周五 = the first Friday after today.

Text longer than `MAX_TEXT` characters is not read at all (`normalize` gives ""), so one
message costs at most a short regex pass and one `dateparser` call on a short phrase.
* `resolve_range` / `resolve_single` turn what was read into hours and minutes.

Hours 1-12 written without am/pm, a part of the day or a minute part ("9", "3点") are uncertain:
`ClockTime.certain` is False and `resolve_*` guess (1-6 -> afternoon, 7-11 -> morning), so
callers that must not guess can check `certain` first.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

import dateparser

from conversations.vocab import LANGUAGE_CODES, PACKS, joined, merged

MAX_TEXT: Final = 200
"""The longest text read for a date or time; nobody writes a longer one, and dateparser's
cost grows with the length of what it is given."""

ROLL_FORWARD_DAYS: Final = 183
"""A year-less date that has passed means next year only if that is at most this far away."""


class DayPart(StrEnum):
    """The parts of a day a person names instead of a time."""

    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"


@dataclass(frozen=True, slots=True)
class ClockTime:
    """A time of day as written: hour 0-24, minute, and how the half of the day was decided."""

    hour: int
    minute: int = 0
    # "am"/"pm" or a Chinese part of the day such as "下午"; "" when nothing said which half.
    half: str = ""
    # True when the notation itself fixes the hour (":MM", 0, 13-24, am/pm, a part of the day).
    certain: bool = False


# ---- normalizing ---------------------------------------------------------------------------

_DASHES: Final = re.compile(r"[‐‑‒–—―−~〜～]")
_PUNCTUATION: Final = re.compile(r"[,，。;；!！?？、]")
_REWRITES: Final = tuple(
    (re.compile(pattern), replacement) for pack in PACKS for pattern, replacement in pack.rewrites
)


def normalize(text: str) -> str:
    """Folds width, case, dashes, punctuation and counting Chinese numerals; one space apart.

    Text longer than `MAX_TEXT` gives "": it is not a date or a time, and is not parsed."""
    if len(text) > MAX_TEXT:
        return ""
    folded = unicodedata.normalize("NFKC", text).lower()
    folded = _DASHES.sub("-", folded)
    folded = _PUNCTUATION.sub(" ", folded)
    for pack in PACKS:
        folded = pack.fold(folded)
    for pattern, replacement in _REWRITES:
        folded = pattern.sub(replacement, folded)
    return " ".join(folded.split())


def _cut(text: str, match: re.Match[str]) -> str:
    return " ".join((text[: match.start()] + " " + text[match.end() :]).split())


# ---- explicit calendar dates -----------------------------------------------------------------

_MONTHS: Final = merged(pack.months for pack in PACKS)
_MONTH_NAME: Final = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ORDINAL: Final = r"(?:st|nd|rd|th)?"
_ISO_DATE: Final = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_NUMERIC_DATE: Final = re.compile(
    r"(?<![\d:])(\d{1,2})[/.](\d{1,2})(?:[/.](\d{4}|\d{2}))?(?![\d:])"
)
_DAY_MONTH: Final = re.compile(rf"\b(\d{{1,2}}){_ORDINAL}\s*(?:of\s+)?({_MONTH_NAME})\b\.?")
_MONTH_DAY: Final = re.compile(rf"\b({_MONTH_NAME})\.?\s*(\d{{1,2}}){_ORDINAL}\b")
_CN_DATE: Final = re.compile(r"(?:(\d{4})\s*年\s*)?(\d{1,2})\s*月\s*(\d{1,2})\s*[日号號]?")


def _dated(year: int | None, month: int, day: int, today: date) -> date | None:
    try:
        if year is not None:
            return date(year + 2000 if year < 100 else year, month, day)
        this_year = date(today.year, month, day)
    except ValueError:
        return None
    if this_year >= today:
        return this_year
    try:
        next_year = date(today.year + 1, month, day)
    except ValueError:  # 29 February
        return this_year
    return next_year if (next_year - today).days <= ROLL_FORWARD_DAYS else this_year


def explicit_date_text(text: str) -> str:
    """The calendar date as written in `text` (possible or not), or "" when none is."""
    for pattern in (_ISO_DATE, _CN_DATE, _DAY_MONTH, _MONTH_DAY, _NUMERIC_DATE):
        if match := pattern.search(text):
            return match.group(0).strip()
    return ""


def take_explicit_date(
    text: str, today: date, *, day_first: bool = False
) -> tuple[date | None, str, bool]:
    """A date written with numbers or a month name, the text without it, and whether one was
    written at all (True with a None date means an impossible one such as 31/2)."""
    if match := _ISO_DATE.search(text):
        year, month, day = (int(g) for g in match.groups())
        return _dated(year, month, day, today), _cut(text, match), True
    if match := _CN_DATE.search(text):
        year_text, month_text, day_text = match.groups()
        cn_year = int(year_text) if year_text else None
        return _dated(cn_year, int(month_text), int(day_text), today), _cut(text, match), True
    if match := _DAY_MONTH.search(text):
        day, month = int(match.group(1)), _MONTHS[match.group(2)]
        return _dated(None, month, day, today), _cut(text, match), True
    if match := _MONTH_DAY.search(text):
        day, month = int(match.group(2)), _MONTHS[match.group(1)]
        return _dated(None, month, day, today), _cut(text, match), True
    if match := _NUMERIC_DATE.search(text):
        first, second = int(match.group(1)), int(match.group(2))
        short_year = int(match.group(3)) if match.group(3) else None
        if first > 12 or (day_first and second <= 12):
            day, month = first, second
        else:
            month, day = first, second
        return _dated(short_year, month, day, today), _cut(text, match), True
    return None, text, False


# ---- times of day ----------------------------------------------------------------------------

_HALF_WORDS: Final = joined(pack.halves for pack in PACKS)
_NOON: Final = joined(pack.noon for pack in PACKS)
_MIDNIGHT: Final = joined(pack.midnight for pack in PACKS)
_NOON_WORD: Final = re.compile(_NOON)


def _time_pattern(n: int) -> str:
    return (
        rf"(?:(?P<dp{n}>{_HALF_WORDS})\s*)?"
        rf"(?:(?P<word{n}>{_NOON}|{_MIDNIGHT})"
        rf"|(?<![\d:/.])(?P<h{n}>\d{{1,2}})"
        rf"(?:\s*:\s*(?P<m{n}>\d{{2}})"
        rf"|\s*(?P<dian{n}>[点點时時])\s*(?:(?P<q{n}>\d)\s*刻|(?P<cm{n}>\d{{1,2}})\s*分?"
        rf"|(?P<half{n}>半))?)?)"
        rf"(?:\s*(?P<ap{n}>a\.?m\.?|p\.?m\.?|noon)(?![a-z]))?"
        rf"(?![a-z\d])"
    )


_RANGE: Final = re.compile(
    _time_pattern(1)
    + rf"\s*(?:-|{joined(pack.range_joiners for pack in PACKS)})\s*(?:at\s+)?"
    + _time_pattern(2)
)
_SINGLE: Final = re.compile(_time_pattern(1))


def _clock(match: re.Match[str], n: int) -> ClockTime | None:
    half = match.group(f"dp{n}") or match.group(f"ap{n}") or ""
    half = half.replace(".", "")
    word = match.group(f"word{n}")
    if word and _NOON_WORD.fullmatch(word):
        return ClockTime(12, 0, "noon", certain=True)
    if word:
        return ClockTime(24, 0, "midnight", certain=True)
    hour = int(match.group(f"h{n}"))
    minute = 0
    minutes_written = match.group(f"m{n}") is not None
    if minutes_written:
        minute = int(match.group(f"m{n}"))
    elif match.group(f"cm{n}"):
        minute = int(match.group(f"cm{n}"))
    elif match.group(f"half{n}"):
        minute = 30
    elif match.group(f"q{n}"):
        minute = 15 * int(match.group(f"q{n}"))
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        return None
    certain = bool(half) or minutes_written or hour == 0 or hour > 12
    return ClockTime(hour, minute, half, certain)


def take_times(text: str) -> tuple[ClockTime | None, ClockTime | None, str, bool]:
    """A range or a single time: (start, end or None, rest of the text, whether one was bad)."""
    if match := _RANGE.search(text):
        start, end = _clock(match, 1), _clock(match, 2)
        if start is None or end is None:
            return None, None, _cut(text, match), True
        return start, end, _cut(text, match), False
    if match := _SINGLE.search(text):
        single = _clock(match, 1)
        return single, None, _cut(text, match), single is None
    return None, None, text, False


class Bound(StrEnum):
    """An open-ended time: from it on, or up to it."""

    AFTER = "after"
    BEFORE = "before"


_BOUND_WORDS: Final = tuple(
    (bound, re.compile(joined(pack.bounds.get(bound.value, "") for pack in PACKS)))
    for bound in Bound
)


def take_bound(text: str) -> tuple[Bound | None, str]:
    """Whether a single time was said to be the earliest or the latest, and the rest."""
    for bound, pattern in _BOUND_WORDS:
        if match := pattern.search(text):
            return bound, _cut(text, match)
    return None, text


_DAY_PART_WORDS: Final = tuple(
    (part, re.compile(joined(pack.day_parts.get(part.value, "") for pack in PACKS)))
    for part in DayPart
)


def take_day_part(text: str) -> tuple[DayPart | None, str]:
    """A named part of the day, and the text without it."""
    for part, pattern in _DAY_PART_WORDS:
        if match := pattern.search(text):
            return part, _cut(text, match)
    return None, text


_PART_HALF: Final = {DayPart.MORNING: "am", DayPart.AFTERNOON: "pm", DayPart.EVENING: "晚上"}
_PM_WORDS: Final = frozenset().union(*(pack.pm_words for pack in PACKS))
_AM_WORDS: Final = frozenset().union(*(pack.am_words for pack in PACKS))


def _hour(clock: ClockTime, half: str) -> int | None:
    """The 0-24 hour of `clock` read in `half` of the day; None for an impossible pair."""
    hour = clock.hour
    if not half or hour > 12:
        # 24-hour notation; "下午15点" is redundant but clear, "上午15点" is not.
        return None if hour > 12 and half in _AM_WORDS else hour
    if half == "midnight":
        return hour
    if half == "noon":
        return hour if hour >= 11 else hour + 12
    if half == "凌晨":
        return 0 if hour == 12 else hour
    if half in _AM_WORDS:
        return 0 if hour == 12 and half == "am" else hour
    if half in _PM_WORDS:
        if hour == 12:
            # 12pm is noon; "晚上12点" is midnight.
            return 12 if half in {"pm", "下午", "午后"} else 24
        return hour + 12
    return hour


def _guess(hour: int) -> int:
    # Nobody books a 3 a.m. visit: an unmarked 1-6 is the afternoon.
    return hour + 12 if 1 <= hour <= 6 else hour


@dataclass(frozen=True, slots=True)
class Span:
    """Resolved start and end as minutes after the start day's midnight (end may pass 24:00)."""

    start: int
    end: int


def resolve_single(clock: ClockTime, part: DayPart | None) -> int | None:
    """Minutes after midnight for a lone time, using a named part of the day when given."""
    half = clock.half or (_PART_HALF[part] if part else "")
    hour = _hour(clock, half) if half else (clock.hour if clock.certain else _guess(clock.hour))
    if hour is None:
        return None
    if clock.half == "midnight":
        hour = 0
    return hour * 60 + clock.minute


def resolve_range(start: ClockTime, end: ClockTime, part: DayPart | None) -> Span | None:
    """Minutes after midnight for both ends; None when the words contradict each other.

    A half of the day said on one end applies to the other when that keeps the order
    ("2-5pm", "下午3点到5点"); an end at or before its start moves 12 hours on when it was
    uncertain ("10-2"), or to the next day when an afternoon start meets a morning end
    ("22:00-02:00").
    """
    part_half = _PART_HALF[part] if part else ""
    start_half = start.half if start.half != "midnight" else ""
    end_half = end.half
    if not end_half and not end.certain:
        end_half = start_half or part_half
    if not start_half and not start.certain:
        start_half = part_half
        if not start_half and end_half in _PM_WORDS | _AM_WORDS:
            borrowed = _hour(start, end_half)
            end_hour = _hour(end, end_half)
            if borrowed is not None and end_hour is not None and borrowed < end_hour:
                start_half = end_half
    first = _hour(start, start_half) if start_half else None
    if first is None:
        if start_half:
            return None
        first = start.hour if start.certain else _guess(start.hour)
        if not start.certain and not end_half and end.hour == 12 and first > 12:
            first = start.hour  # "5-12" is five to noon, not 17:00 to noon
    if start.half == "midnight":
        first = 0
    last = _hour(end, end_half) if end_half else end.hour
    if last is None:
        return None
    begin, finish = first * 60 + start.minute, last * 60 + end.minute
    if finish <= begin and not end.certain and not end_half and finish + 720 > begin:
        finish += 720
    if finish <= begin and first >= 12 > last:
        finish += 24 * 60
    return Span(begin, finish)


# ---- relative dates --------------------------------------------------------------------------

_WEEKDAYS: Final = tuple(
    (re.compile(pack.weekday), pack.weekdays, pack.weeks) for pack in PACKS if pack.weekday
)
_RELATIVE: Final = tuple(
    (re.compile(joined(pack.relative_days.get(days, "") for pack in PACKS)), days)
    for days in sorted({d for pack in PACKS for d in pack.relative_days}, reverse=True)
)
_FILLER: Final = re.compile(joined(pack.filler for pack in PACKS))


def _week_date(week: int | None, weekday: int, today: date) -> date:
    """The weekday in the week `week` weeks from this one (this week's even if it has passed);
    with no week, the first such day after today, as dateparser reads "fri"."""
    if week is None:
        ahead = (weekday - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(weeks=week, days=weekday)


def take_relative_date(text: str, now: datetime, zone: ZoneInfo) -> tuple[date | None, str]:
    """The date named in `text` relative to `now` in `zone` (None if it names none), and
    what of the text was not part of it (filler words aside)."""
    if len(text) > MAX_TEXT:
        return None, ""
    today = now.astimezone(zone).date()
    # The weekday written first, whichever language it is written in.
    named = [
        (match, weekdays, weeks)
        for pattern, weekdays, weeks in _WEEKDAYS
        if (match := pattern.search(text)) is not None
    ]
    if named:
        match, weekdays, weeks = min(named, key=lambda found: found[0].start())
        week = weeks.get(match.group("which") or "")
        found = _week_date(week, weekdays[match.group("day")], today)
        return found, _rest(_cut(text, match))
    for pattern, days in _RELATIVE:
        if match := pattern.search(text):
            return today + timedelta(days=days), _rest(_cut(text, match))
    phrase = _rest(text)
    if not phrase or len(phrase) > MAX_TEXT:
        return None, phrase
    parsed = dateparser.parse(
        phrase,
        languages=list(LANGUAGE_CODES),
        settings={
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": now.astimezone(zone).replace(tzinfo=None),
            "TIMEZONE": zone.key,
            "RETURN_AS_TIMEZONE_AWARE": True,
        },
    )
    if not isinstance(parsed, datetime):
        return None, phrase
    return (parsed.astimezone(zone).date() if parsed.tzinfo else parsed.date()), ""


def relative_date(text: str, now: datetime, zone: ZoneInfo) -> date | None:
    """The date named by `text` relative to `now` in `zone`, or None if it names none."""
    return take_relative_date(text, now, zone)[0]


def without_filler(text: str) -> str:
    """The text without the small words that join a date to the rest ("at", "on", "从")."""
    return " ".join(_FILLER.sub(" ", text).split())


_rest = without_filler


def is_blank(text: str) -> bool:
    """True when nothing but filler words is left."""
    return not _FILLER.sub(" ", text).strip()


# ---- local times -----------------------------------------------------------------------------


def local_moment(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """The aware moment `minutes` after `day`'s local midnight, read on the wall clock.

    Minutes past 24:00 land on the next day; a wall time that a DST jump skips moves forward
    by the jump, as a clock on the wall would.
    """
    days, minute_of_day = divmod(minutes, 24 * 60)
    wall = datetime.combine(day + timedelta(days=days), time(), tzinfo=zone) + timedelta(
        minutes=minute_of_day
    )
    # The round trip through UTC turns a skipped wall time into a real one.
    return wall.astimezone(UTC).astimezone(zone)
