"""What a language pack holds (see `conversations.vocab`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


def _unchanged(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Pack:
    """One language's words; an empty field means the language has no such words."""

    code: str
    name: str  # the language's own name for itself, on the language buttons
    # How a date is written (Babel patterns): this year's, and one in another year.
    day_format: str = "EEE d MMM"
    day_format_with_year: str = "EEE d MMM y"
    # A language-specific folding step run by `normalize` (e.g. Chinese numerals to digits).
    fold: Callable[[str], str] = _unchanged
    # (pattern, replacement) run after folding: words carrying both a date and a day part
    # are split into the two ("tonight" -> "today evening").
    rewrites: tuple[tuple[str, str], ...] = ()
    months: Mapping[str, int] = field(default_factory=dict)  # month name -> 1..12
    # A weekday with an optional week: groups `which` (a key of `weeks`) and `day` (a key of
    # `weekdays`).
    weekday: str = ""
    weekdays: Mapping[str, int] = field(default_factory=dict)  # name -> 0 (Monday)..6
    # Which week a weekday is in: 0 this week, 1 next, 2 the one after, -1 last; a word that
    # is missing here, or no word, means the first such day after today.
    weeks: Mapping[str, int] = field(default_factory=dict)
    relative_days: Mapping[int, str] = field(default_factory=dict)  # days from today -> words
    day_parts: Mapping[str, str] = field(default_factory=dict)  # "morning"... -> words
    # Words for the half of the day written before a time ("下午3点"); an empty string when
    # the language writes none.
    halves: str = ""
    am_words: frozenset[str] = frozenset()
    pm_words: frozenset[str] = frozenset()
    noon: str = ""
    midnight: str = ""
    range_joiners: str = ""  # between the two ends of a time range
    bounds: Mapping[str, str] = field(default_factory=dict)  # "after"/"before" -> words
    filler: str = ""  # small words that join a date to the rest ("at", "在")
    # freetext: what makes a stray message a booking or a problem.
    booking_verbs: str = ""
    problem_words: str = ""
    day_words: str = ""  # words that name a day without numbers
    # booking_request: the request's command and chatter, and how durations are said.
    booking_command: str = ""
    chatter: str = ""
    number_words: Mapping[str, float] = field(default_factory=dict)
    half_hour: str = ""  # "half an hour"
    hour_units: str = ""
    minute_units: str = ""
    and_a_half: str = ""  # said after a number of hours: "1 and a half hours"


def joined(parts: Iterable[str]) -> str:
    """The alternatives of several packs as one regex source (empty ones left out)."""
    return "|".join(part for part in parts if part)


def merged(maps: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Several packs' word tables as one."""
    out: dict[str, int] = {}
    for table in maps:
        out.update(table)
    return out
