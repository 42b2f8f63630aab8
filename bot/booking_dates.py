"""A community's local day from booking time lists that Akubela keys by UTC date.

Akubela's `get_booking_time_list` takes a `date` the documents call only 日期. The booking flow
works on the community's local dates, and `conversations.slots` reads a time list as one local
date's (bare UTC times of day resolved from local midnight). When the vendor keys its lists by
UTC date instead (`AKUBELA_TIME_LIST_DATE=utc`), a local day overlaps two UTC dates: both are
asked for and merged here into the list the vendor would have given for the local date, so the
flow offers the same starts under either reading.

In a UTC-keyed list every `HH:MM` lies on that UTC date: a start is that time of the date, a
finish the first such moment after the start (`00:00` and `24:00` end the date).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.akubela_models import BookingTime, BookingTimeList

Span = tuple[datetime, datetime]


def local_day_span(day: date, zone: ZoneInfo) -> Span:
    """The UTC instants of one local date: [its midnight, the next one)."""
    start = datetime.combine(day, time(0, 0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def utc_dates(day: date, zone: ZoneInfo) -> list[date]:
    """The UTC dates a local date overlaps (one, or two off UTC)."""
    start, end = local_day_span(day, zone)
    last = (end - timedelta(microseconds=1)).date()
    return [start.date() + timedelta(days=n) for n in range((last - start.date()).days + 1)]


def _on_utc_date(value: BookingTime, day: date) -> Span:
    midnight = datetime.combine(day, time(0, 0), tzinfo=UTC)
    start = midnight + _offset(value.start_time)
    finish = midnight + _offset(value.finish_time)
    if finish <= start:
        finish += timedelta(days=1)
    return start, finish


def _offset(value: time) -> timedelta:
    if value == time.max:  # "24:00"
        return timedelta(days=1)
    return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second)


def _minus(span: Span, holes: list[Span]) -> list[Span]:
    free: list[Span] = []
    cursor, end = span
    for hole_start, hole_end in sorted(holes):
        if hole_start > cursor:
            free.append((cursor, min(hole_start, end)))
        cursor = max(cursor, hole_end)
        if cursor >= end:
            break
    if cursor < end:
        free.append((cursor, end))
    return [f for f in free if f[0] < f[1]]


def _clip(span: Span, bounds: Span) -> Span | None:
    start, end = max(span[0], bounds[0]), min(span[1], bounds[1])
    return (start, end) if start < end else None


def local_day_times(
    answers: Mapping[date, BookingTimeList], day: date, zone: ZoneInfo
) -> BookingTimeList:
    """The time list of local date `day`, from the lists of the UTC dates it overlaps."""
    bounds = local_day_span(day, zone)
    opened: list[Span] = []
    free: list[Span] = []
    for utc_day, answer in answers.items():
        if answer.allowed_booking_time is None:
            continue
        window = _on_utc_date(answer.allowed_booking_time, utc_day)
        holes = [_on_utc_date(b, utc_day) for b in answer.disallowed_booking_time]
        clipped = _clip(window, bounds)
        if clipped is not None:
            opened.append(clipped)
        free += [f for f in (_clip(s, bounds) for s in _minus(window, holes)) if f is not None]
    if not opened:
        return BookingTimeList(allowed_booking_time=None)
    window = (min(s for s, _ in opened), max(e for _, e in opened))

    def bare(span: Span) -> BookingTime:
        return BookingTime(start_time=span[0].time(), finish_time=span[1].time())

    return BookingTimeList(
        allowed_booking_time=bare(window),
        disallowed_booking_time=[bare(s) for s in _minus(window, free)],
    )
