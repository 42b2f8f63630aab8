"""When a technician may come (repair step 3): preset buttons, free text, validation, echo.

Pure functions, no Telegram. A window is two aware datetimes in the user's zone; every
comparison and length is taken in UTC, because Python compares two datetimes of one zone on the
wall clock and would get a DST day wrong.

Free text: `conversations.datetext` reads the date, the time range and the part of the day.
A part of the day alone ("tomorrow morning", "明天上午") is that part's preset window; a single
time ("明天下午3点") starts a window of `VISIT_SINGLE_TIME_LENGTH`; a time with "after"/"以后" runs
to the end of service hours, one with "before"/"以前" from their start; no date means today.

Every window lies within the community's service hours (`ServiceHours`, 08:00-20:00 unless set):
presets and single times are cut to them, a window outside them is refused with the hours named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_date

from conversations import datetext
from conversations.datetext import DayPart
from conversations.i18n import N_, tr
from conversations.rules import (
    SERVICE_HOURS_END,
    SERVICE_HOURS_START,
    VISIT_DAY_PARTS,
    VISIT_MAX_LEAD,
    VISIT_MIN_LENGTH,
    VISIT_SINGLE_TIME_LENGTH,
)
from conversations.vocab import pack_for

PRESET_DAYS: Final = 3
"""Presets cover today, tomorrow and the day after."""


@dataclass(frozen=True, slots=True)
class ServiceHours:
    """When technicians visit, on the wall clock of each day."""

    start: time = SERVICE_HOURS_START
    end: time = SERVICE_HOURS_END

    def on(self, day: date, zone: tzinfo) -> TimeWindow:
        """The service hours of `day` on the wall clock of `zone`."""
        return TimeWindow(
            datetime.combine(day, self.start, tzinfo=zone),
            datetime.combine(day, self.end, tzinfo=zone),
        )

    def words(self) -> str:
        """The hours as "08:00–20:00"."""
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


DEFAULT_HOURS: Final = ServiceHours()
ROUND_THE_CLOCK: Final = ServiceHours(time(0, 0), time.max)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A visit window: aware start and end."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        """Real elapsed time, DST changes included."""
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)


class Reason(StrEnum):
    """Why a window was refused; each has its own message."""

    UNREADABLE = "unreadable"
    IN_PAST = "in_past"
    END_BEFORE_START = "end_before_start"
    TOO_SHORT = "too_short"
    TOO_FAR = "too_far"
    OUTSIDE_HOURS = "outside_hours"


_MESSAGES: Final = {
    Reason.UNREADABLE: N_('I could not read a time from that; try e.g. "tomorrow 9-12".'),
    Reason.IN_PAST: N_("That time has already passed. Please choose a time in the future."),
    Reason.END_BEFORE_START: N_("The end of the window must be after its start."),
    Reason.TOO_SHORT: N_("The window must be at least {minutes} minutes long."),
    Reason.TOO_FAR: N_("Please choose a time within the next {days} days."),
    Reason.OUTSIDE_HOURS: N_(
        "Technicians visit between {start} and {end}. Please choose a time within those hours."
    ),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A window that cannot be used, and why."""

    reason: Reason
    hours: ServiceHours = DEFAULT_HOURS

    def message(self, lang: str) -> str:
        """The reason in the user's language."""
        return tr(
            lang,
            _MESSAGES[self.reason],
            **_message_values(self.reason, self.hours),
        )


def _message_values(reason: Reason, hours: ServiceHours) -> dict[str, int | str]:
    if reason is Reason.TOO_SHORT:
        return {"minutes": int(VISIT_MIN_LENGTH.total_seconds() // 60)}
    if reason is Reason.TOO_FAR:
        return {"days": VISIT_MAX_LEAD.days}
    if reason is Reason.OUTSIDE_HOURS:
        return {"start": f"{hours.start:%H:%M}", "end": f"{hours.end:%H:%M}"}
    return {}


WindowResult = TimeWindow | Refusal


# ---- presets ---------------------------------------------------------------------------------

_PRESET_LABELS: Final = {
    (0, DayPart.MORNING): N_("This morning"),
    (0, DayPart.AFTERNOON): N_("This afternoon"),
    (0, DayPart.EVENING): N_("This evening"),
    (1, DayPart.MORNING): N_("Tomorrow morning"),
    (1, DayPart.AFTERNOON): N_("Tomorrow afternoon"),
    (1, DayPart.EVENING): N_("Tomorrow evening"),
}
_LATER_LABELS: Final = {
    DayPart.MORNING: N_("{weekday} morning"),
    DayPart.AFTERNOON: N_("{weekday} afternoon"),
    DayPart.EVENING: N_("{weekday} evening"),
}
_PART_KEYS: Final = {DayPart.MORNING: "m", DayPart.AFTERNOON: "a", DayPart.EVENING: "e"}


@dataclass(frozen=True, slots=True)
class Preset:
    """A button: a part of the day, `days_ahead` days from today."""

    days_ahead: int
    part: DayPart

    @property
    def key(self) -> str:
        """A short ASCII key for callback data, e.g. "1m" for tomorrow morning."""
        return f"{self.days_ahead}{_PART_KEYS[self.part]}"

    @classmethod
    def from_key(cls, key: str) -> Preset | None:
        """The preset a key names, or None for a stale or forged key."""
        parts = {v: k for k, v in _PART_KEYS.items()}
        if len(key) != 2 or not key[0].isdigit() or key[1] not in parts:
            return None
        days = int(key[0])
        return cls(days, parts[key[1]]) if days < PRESET_DAYS else None

    def window(
        self, now: datetime, zone: ZoneInfo, hours: ServiceHours | None = DEFAULT_HOURS
    ) -> TimeWindow:
        """The preset's window on its day, in `zone`, within service hours."""
        day = now.astimezone(zone).date() + timedelta(days=self.days_ahead)
        return part_window(day, self.part, zone, hours)

    def label(self, lang: str, now: datetime, zone: ZoneInfo) -> str:
        """The button text: "Tomorrow morning", or the weekday further ahead ("Wed morning")."""
        fixed = _PRESET_LABELS.get((self.days_ahead, self.part))
        if fixed is not None:
            return tr(lang, fixed)
        day = now.astimezone(zone).date() + timedelta(days=self.days_ahead)
        weekday = format_date(day, "EEE", locale=pack_for(lang).code)
        return tr(lang, _LATER_LABELS[self.part], weekday=weekday)


PRESETS: Final = tuple(Preset(days, part) for days in range(PRESET_DAYS) for part in DayPart)


def _within(window: TimeWindow, hours: TimeWindow) -> TimeWindow:
    start = max(window.start.astimezone(UTC), hours.start.astimezone(UTC))
    end = min(window.end.astimezone(UTC), hours.end.astimezone(UTC))
    return TimeWindow(start.astimezone(window.start.tzinfo), end.astimezone(window.end.tzinfo))


def part_window(
    day: date, part: DayPart, zone: ZoneInfo, hours: ServiceHours | None = DEFAULT_HOURS
) -> TimeWindow:
    """A part of the day's window on `day`, in `zone`, cut to service hours."""
    first, last = VISIT_DAY_PARTS[part]
    window = TimeWindow(
        datetext.local_moment(day, first.hour * 60 + first.minute, zone),
        datetext.local_moment(day, last.hour * 60 + last.minute, zone),
    )
    return window if hours is None else _within(window, hours.on(day, zone))


def available_presets(
    now: datetime, zone: ZoneInfo, hours: ServiceHours | None = DEFAULT_HOURS
) -> list[Preset]:
    """The presets that have not started yet at `now` and leave a visit within service hours."""
    windows = ((p, p.window(now, zone, hours)) for p in PRESETS)
    return [
        p for p, w in windows if w.start.astimezone(UTC) > now and w.length >= VISIT_MIN_LENGTH
    ]


# ---- validation and parsing ------------------------------------------------------------------


def _inside(window: TimeWindow, hours: ServiceHours) -> bool:
    service = hours.on(window.start.date(), window.start.tzinfo or UTC)
    return service.start.astimezone(UTC) <= window.start.astimezone(UTC) and window.end.astimezone(
        UTC
    ) <= service.end.astimezone(UTC)


def validate_window(
    window: TimeWindow, now: datetime, hours: ServiceHours | None = DEFAULT_HOURS
) -> WindowResult:
    """The window itself when every rule holds, else the first rule it breaks."""
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    if end <= start:
        return Refusal(Reason.END_BEFORE_START)
    if hours is not None and not _inside(window, hours):
        return Refusal(Reason.OUTSIDE_HOURS, hours)
    if end - start < VISIT_MIN_LENGTH:
        return Refusal(Reason.TOO_SHORT)
    if start <= now:
        return Refusal(Reason.IN_PAST)
    if start - now > VISIT_MAX_LEAD:
        return Refusal(Reason.TOO_FAR)
    return window


def parse_window(
    text: str,
    now: datetime,
    zone: ZoneInfo,
    *,
    day_first: bool = False,
    hours: ServiceHours | None = DEFAULT_HOURS,
) -> WindowResult:
    """Reads a visit window from English or Chinese text, relative to `now` in `zone`;
    `hours=None` reads it without service hours (round the clock)."""
    unreadable = Refusal(Reason.UNREADABLE)
    normalized = datetext.normalize(text)
    if not normalized:
        return unreadable
    today = now.astimezone(zone).date()
    day, rest, dated = datetext.take_explicit_date(normalized, today, day_first=day_first)
    if dated and day is None:
        return unreadable
    start, end, rest, bad_time = datetext.take_times(rest)
    if bad_time:
        return unreadable
    bound, rest = datetext.take_bound(rest) if start is not None and end is None else (None, rest)
    part, rest = datetext.take_day_part(rest)
    if day is None:
        if datetext.is_blank(rest):
            day = today
        else:
            day = datetext.relative_date(rest, now, zone)
            if day is None:
                return unreadable
    window = _window_on(day, start, end, part, zone, bound, hours)
    return validate_window(window, now, hours) if isinstance(window, TimeWindow) else window


def _window_on(
    day: date,
    start: datetext.ClockTime | None,
    end: datetext.ClockTime | None,
    part: DayPart | None,
    zone: ZoneInfo,
    bound: datetext.Bound | None,
    hours: ServiceHours | None,
) -> WindowResult:
    if start is None:
        return part_window(day, part, zone, hours) if part else Refusal(Reason.UNREADABLE)
    if end is None:
        minutes = datetext.resolve_single(start, part)
        if minutes is None:
            return Refusal(Reason.UNREADABLE)
        moment = datetext.local_moment(day, minutes, zone)
        service = (hours or ROUND_THE_CLOCK).on(day, zone)
        if bound is datetext.Bound.AFTER:
            return TimeWindow(moment, service.end)
        if bound is datetext.Bound.BEFORE:
            return TimeWindow(service.start, moment)
        # The single time's length is real time, not wall time, so a DST night keeps 2 hours;
        # it is our own guess, so it stops at the end of service hours rather than pass it.
        finish = (moment.astimezone(UTC) + VISIT_SINGLE_TIME_LENGTH).astimezone(zone)
        if hours is not None and _inside(TimeWindow(moment, moment), hours):
            finish = min(finish, service.end, key=lambda m: m.astimezone(UTC))
        return TimeWindow(moment, finish)
    span = datetext.resolve_range(start, end, part)
    if span is None:
        return Refusal(Reason.UNREADABLE)
    if span.end <= span.start:
        return Refusal(Reason.END_BEFORE_START)
    return TimeWindow(
        datetext.local_moment(day, span.start, zone), datetext.local_moment(day, span.end, zone)
    )


# ---- echo ------------------------------------------------------------------------------------

_RELATIVE_DAYS: Final = {
    0: N_("Today"),
    1: N_("Tomorrow"),
    2: N_("The day after tomorrow"),
}


def describe_day(day: date, lang: str, today: date) -> str:
    """A date in words: "Tomorrow (Tue 24 Nov)", "明天（11月24日 周二）", "Fri 27 Nov"."""
    pack = pack_for(lang)
    pattern = pack.day_format if day.year == today.year else pack.day_format_with_year
    written = format_date(day, pattern, locale=pack.code)
    relative = _RELATIVE_DAYS.get((day - today).days)
    if relative is None:
        return written
    return tr(lang, N_("{relative} ({date})"), relative=tr(lang, relative), date=written)


def describe_window(window: TimeWindow, lang: str, zone: ZoneInfo, *, now: datetime) -> str:
    """The window in words to echo back, with both dates when it passes midnight."""
    today = now.astimezone(zone).date()
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    end_day, end_clock = end.date(), end.strftime("%H:%M")
    if end_day == start.date() + timedelta(days=1) and end.time() == time(0, 0):
        end_day, end_clock = start.date(), "24:00"
    day = describe_day(start.date(), lang, today)
    if end_day == start.date():
        text = tr(
            lang, N_("{day}, {start}–{end}"), day=day, start=start.strftime("%H:%M"), end=end_clock
        )
    else:
        text = tr(
            lang,
            N_("{day}, {start} – {end_day}, {end}"),
            day=day,
            start=start.strftime("%H:%M"),
            end_day=describe_day(end_day, lang, today),
            end=end_clock,
        )
    # A full-width bracket carries its own spacing: "明天（11月24日 周二）09:00".
    return text.replace("） ", "）")
