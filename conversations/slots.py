"""Free booking starts, the durations that fit, and the booking date (booking steps 2-4).

Pure functions over the vendor's `get_booking_time_list` answer, no I/O.

How vendor times map to real moments (the sandbox serves exactly this):

* The `date` parameter of `get_booking_time_list` is the community's local date
  (`vendor_date(day) == day`); `zone` below is the community's zone. (A vendor that keys its
  lists by UTC date, `AKUBELA_TIME_LIST_DATE=utc`, is read into this shape by the desk, see
  `bot.booking_dates`.)
* Every bare `HH:MM` in the answer is a UTC time of day. A start (of the allowed window or of
  a disallowed interval) is the first UTC moment with that time of day at or after the local
  date's midnight; a finish is the first UTC moment with that time of day strictly after its
  start. So a window may cross UTC midnight: with UTC+8 a 06:00-22:00 gym reads
  `22:00`-`14:00`, with America/Los_Angeles (UTC-8) it reads `14:00`-`06:00`.
* `24:00` is midnight (the end of a UTC day); a finish equal to its start is a full 24 hours
  (a round-the-clock amenity in a zone off UTC can say it no other way). A missing
  opening is a closed day. Taken intervals are clipped to the window.

Starts lie on the amenity's step from the window's start, strictly after `now`, with at least
one step free before the next disallowed interval or closing. Everything is computed on UTC
instants, so a local day of 23 or 25 hours (DST) has neither duplicate nor missing starts;
on a fall-back night two starts may show the same wall time with different offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from conversations import datetext
from conversations.i18n import N_, tr
from conversations.records import DayTimes, TimeSpan
from conversations.rules import BOOKING_STEP_MINUTES

# The flows pass each amenity's own grid (Community.rules_for); this default serves the tests.
DEFAULT_STEP_MINUTES: Final = BOOKING_STEP_MINUTES
DATE_BUTTONS: Final = 7


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open span [start, end) of UTC instants."""

    start: datetime
    end: datetime


def vendor_date(day: date) -> date:
    """The `date` to ask the vendor for a local date: the same calendar date."""
    return day


def _time_of_day(value: time) -> time:
    # `api.times` reads "24:00" as time.max; on a UTC clock it is the next midnight.
    return time(0, 0) if value == time.max else value


def _first_at_or_after(moment: datetime, value: time) -> datetime:
    candidate = datetime.combine(moment.date(), _time_of_day(value), tzinfo=UTC)
    return candidate if candidate >= moment else candidate + timedelta(days=1)


def _resolve(booking_time: TimeSpan, anchor: datetime) -> Interval:
    start = _first_at_or_after(anchor, booking_time.start)
    end = _first_at_or_after(start, booking_time.finish)
    if end == start:
        end += timedelta(days=1)
    return Interval(start, end)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC)


def opening(time_list: DayTimes, day: date, zone: ZoneInfo) -> Interval | None:
    """The allowed window of a local date as UTC instants, or None on a closed day."""
    if time_list.opening is None:
        return None
    return _resolve(time_list.opening, _local_midnight(day, zone))


def free_intervals(time_list: DayTimes, day: date, zone: ZoneInfo) -> list[Interval]:
    """The allowed window minus every disallowed interval, in order."""
    window = opening(time_list, day, zone)
    if window is None:
        return []
    midnight = _local_midnight(day, zone)
    blocked = sorted(
        (_resolve(b, midnight) for b in time_list.taken),
        key=lambda i: i.start,
    )
    free: list[Interval] = []
    cursor = window.start
    for block in blocked:
        block_start, block_end = max(block.start, window.start), min(block.end, window.end)
        if block_start >= block_end:
            continue
        if block_start > cursor:
            free.append(Interval(cursor, block_start))
        cursor = max(cursor, block_end)
    if cursor < window.end:
        free.append(Interval(cursor, window.end))
    return free


def free_starts(
    time_list: DayTimes,
    day: date,
    zone: ZoneInfo,
    *,
    now: datetime,
    step_minutes: int = DEFAULT_STEP_MINUTES,
    min_minutes: int | None = None,
) -> list[datetime]:
    """Sorted free starts in `zone`, where at least `min_minutes` (one step) stay free."""
    window = opening(time_list, day, zone)
    if window is None:
        return []
    step = timedelta(minutes=step_minutes)
    need = timedelta(minutes=min_minutes if min_minutes is not None else step_minutes)
    need = max(need, step)
    starts: list[datetime] = []
    for gap in free_intervals(time_list, day, zone):
        # The first grid point at or after the gap opens, counted from the window's start.
        steps = -(-(gap.start - window.start) // step)
        start = window.start + steps * step
        while start + need <= gap.end:
            if start > now:
                starts.append(start.astimezone(zone))
            start += step
    return starts


def durations_for(
    start: datetime,
    time_list: DayTimes,
    day: date,
    zone: ZoneInfo,
    *,
    now: datetime,
    max_minutes: int,
    step_minutes: int = DEFAULT_STEP_MINUTES,
    min_minutes: int | None = None,
) -> list[int]:
    """Durations in minutes, in steps from `min_minutes` (one step) up to `max_minutes`, that
    fit free after a free start."""
    moment = start.astimezone(UTC)
    shortest = max(min_minutes or step_minutes, step_minutes)
    # Compared in UTC: two wall times of a fall-back night are equal in their own zone.
    offered = free_starts(
        time_list, day, zone, now=now, step_minutes=step_minutes, min_minutes=shortest
    )
    if moment not in {s.astimezone(UTC) for s in offered}:
        return []
    gap = next(g for g in free_intervals(time_list, day, zone) if g.start <= moment < g.end)
    room = int((gap.end - moment).total_seconds() // 60)
    limit = min(room, max_minutes)
    return list(range(shortest, limit + 1, step_minutes))


def on_buttons(values: Sequence[int], every: int) -> list[int]:
    """The values a row of buttons offers: those on `every` (a fine grid would make more
    buttons than Telegram takes), the first always; the rest may still be typed."""
    return [v for i, v in enumerate(values) if i == 0 or v % every == 0]


class Unfree(StrEnum):
    """Why a wanted start is not offered."""

    CLOSED = "closed"
    TAKEN = "taken"
    PAST = "past"
    OFF_GRID = "off_grid"


def why_not_free(
    start: datetime, time_list: DayTimes, day: date, zone: ZoneInfo, *, now: datetime
) -> Unfree:
    """Why `start` is not among the free starts: outside opening hours, inside someone's
    booking, already gone, or not on the amenity's step (or too close to the next booking)."""
    moment = start.astimezone(UTC)
    window = opening(time_list, day, zone)
    if window is None or not window.start <= moment < window.end:
        return Unfree.CLOSED
    if moment <= now:
        return Unfree.PAST
    midnight = _local_midnight(day, zone)
    for blocked in time_list.taken:
        interval = _resolve(blocked, midnight)
        if interval.start <= moment < interval.end:
            return Unfree.TAKEN
    return Unfree.OFF_GRID


def nearest_free_starts(
    requested: datetime, starts: Sequence[datetime], n: int = 3
) -> list[datetime]:
    """The `n` starts closest to `requested` (earlier wins a tie), in time order."""
    target = requested.astimezone(UTC)
    closest = sorted(
        starts, key=lambda s: (abs(s.astimezone(UTC) - target), s.astimezone(UTC) > target)
    )
    return sorted(closest[: max(n, 0)], key=lambda s: s.astimezone(UTC))


# ---- the date --------------------------------------------------------------------------------


def next_dates(today: date, n: int = DATE_BUTTONS) -> list[date]:
    """Today and the following days, `n` in all, for the date buttons."""
    return [today + timedelta(days=i) for i in range(n)]


class DateReason(StrEnum):
    """Why a typed date was refused."""

    UNREADABLE = "unreadable"
    IN_PAST = "in_past"


_DATE_MESSAGES: Final = {
    DateReason.UNREADABLE: N_(
        'I could not read a date from that; try e.g. "tomorrow", "next friday" or "12/25".'
    ),
    DateReason.IN_PAST: N_("That date has already passed. Please choose today or a later date."),
}


@dataclass(frozen=True, slots=True)
class DateRefusal:
    """A typed date that cannot be used, and why."""

    reason: DateReason

    def message(self, lang: str) -> str:
        """The reason in the user's language."""
        return tr(lang, _DATE_MESSAGES[self.reason])


def parse_date(
    text: str, now: datetime, zone: ZoneInfo, *, day_first: bool = False
) -> date | DateRefusal:
    """A booking date typed in English or Chinese: today or later in `zone`."""
    normalized = datetext.normalize(text)
    today = now.astimezone(zone).date()
    found, _rest, dated = datetext.take_explicit_date(normalized, today, day_first=day_first)
    if not dated and normalized:
        found = datetext.relative_date(normalized, now, zone)
    if found is None:
        return DateRefusal(DateReason.UNREADABLE)
    if found < today:
        return DateRefusal(DateReason.IN_PAST)
    return found
