"""Free starts and durations from the vendor's time list, nearest alternatives, the date."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.akubela_models import BookingTimeList
from bot.desks import day_times_of
from conversations.records import DayTimes
from conversations.slots import (
    DateReason,
    DateRefusal,
    Interval,
    Unfree,
    durations_for,
    free_intervals,
    free_starts,
    nearest_free_starts,
    next_dates,
    opening,
    parse_date,
    vendor_date,
    why_not_free,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 24)
EARLIER = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _list(allowed: tuple[str, str] | None, *blocked: tuple[str, str]) -> DayTimes:
    """A day's times from an Akubela time list as its documents write one."""
    vendor = BookingTimeList.model_validate(
        {
            "allowed_booking_time": (
                None if allowed is None else {"start_time": allowed[0], "finish_time": allowed[1]}
            ),
            "disallowed_booking_time": [{"start_time": a, "finish_time": b} for a, b in blocked],
        }
    )
    return day_times_of(vendor)


def _clock(starts: list[datetime]) -> list[str]:
    return [s.strftime("%H:%M") for s in starts]


def _utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def test_the_vendor_date_is_the_local_date() -> None:
    assert vendor_date(DAY) == DAY


def test_the_documented_example_in_utc() -> None:
    docs = _list(("08:00", "23:00"), ("08:30", "11:30"), ("21:30", "23:00"))
    starts = free_starts(docs, DAY, ZoneInfo("UTC"), now=EARLIER)
    assert _clock(starts)[:3] == ["08:00", "11:30", "12:00"]
    assert _clock(starts)[-1] == "21:00"
    assert len(starts) == 1 + 20
    assert all(s.tzinfo == ZoneInfo("UTC") for s in starts)


@pytest.mark.parametrize(
    ("time_list", "expected"),
    [
        (_list(None), []),
        (_list(("08:00", "10:00"), ("08:00", "10:00")), []),
        (_list(("08:00", "10:00"), ("07:00", "08:30"), ("08:30", "11:00")), []),
        (_list(("08:00", "08:20")), []),
        (_list(("08:00", "10:00"), ("08:10", "09:50")), []),
        (_list(("08:00", "10:00"), ("08:45", "09:10")), ["08:00", "09:30"]),
        (_list(("08:00", "09:30"), ("09:00", "09:10")), ["08:00", "08:30"]),
        (_list(("22:30", "24:00")), ["22:30", "23:00", "23:30"]),
        (_list(("23:00", "00:00")), ["23:00", "23:30"]),
        (_list(("08:15", "10:00")), ["08:15", "08:45", "09:15"]),
    ],
    ids=[
        "closed",
        "fully-booked",
        "fully-booked-overlapping",
        "shorter-than-a-step",
        "gaps-shorter-than-a-step",
        "aligned-on-the-opening",
        "blocked-tail",
        "24:00",
        "00:00-as-end",
        "odd-opening",
    ],
)
def test_free_starts_in_utc(time_list: DayTimes, expected: list[str]) -> None:
    assert _clock(free_starts(time_list, DAY, ZoneInfo("UTC"), now=EARLIER)) == expected


def test_a_full_day_window() -> None:
    starts = free_starts(_list(("00:00", "24:00")), DAY, ZoneInfo("UTC"), now=EARLIER)
    assert len(starts) == 48
    assert (_clock(starts)[0], _clock(starts)[-1]) == ("00:00", "23:30")
    # With UTC+8 a round-the-clock amenity can only say "16:00"-"16:00".
    same = free_starts(_list(("16:00", "16:00")), DAY, SHANGHAI, now=EARLIER)
    assert len(same) == 48
    assert (_clock(same)[0], _clock(same)[-1]) == ("00:00", "23:30")
    assert same[0].date() == DAY


def test_only_starts_strictly_in_the_future() -> None:
    time_list = _list(("08:00", "12:00"))
    at_nine = _utc(DAY, 9)
    assert _clock(free_starts(time_list, DAY, ZoneInfo("UTC"), now=at_nine))[0] == "09:30"
    just_before = at_nine - timedelta(seconds=1)
    assert _clock(free_starts(time_list, DAY, ZoneInfo("UTC"), now=just_before))[0] == "09:00"
    assert free_starts(time_list, DAY, ZoneInfo("UTC"), now=_utc(DAY, 11, 30)) == []
    assert free_starts(time_list, DAY, ZoneInfo("UTC"), now=_utc(DAY, 23)) == []


def test_step_and_minimum_length() -> None:
    time_list = _list(("08:00", "12:00"), ("10:00", "10:30"))
    hourly = free_starts(time_list, DAY, ZoneInfo("UTC"), now=EARLIER, step_minutes=60)
    assert _clock(hourly) == ["08:00", "09:00", "11:00"]
    for_90 = free_starts(time_list, DAY, ZoneInfo("UTC"), now=EARLIER, min_minutes=90)
    assert _clock(for_90) == ["08:00", "08:30", "10:30"]


@pytest.mark.parametrize(
    ("zone", "allowed", "first_utc", "last_utc"),
    [
        # 06:00-22:00 local on Tuesday 24 November 2026.
        (AUCKLAND, ("17:00", "09:00"), _utc(date(2026, 11, 23), 17), _utc(DAY, 8, 30)),
        (LOS_ANGELES, ("14:00", "06:00"), _utc(DAY, 14), _utc(date(2026, 11, 25), 5, 30)),
        (KIRITIMATI, ("16:00", "08:00"), _utc(date(2026, 11, 23), 16), _utc(DAY, 7, 30)),
        (SHANGHAI, ("22:00", "14:00"), _utc(date(2026, 11, 23), 22), _utc(DAY, 13, 30)),
    ],
)
def test_windows_that_cross_utc_midnight_far_from_utc(
    zone: ZoneInfo, allowed: tuple[str, str], first_utc: datetime, last_utc: datetime
) -> None:
    starts = free_starts(_list(allowed), DAY, zone, now=EARLIER)
    assert len(starts) == 32
    assert (starts[0].astimezone(UTC), starts[-1].astimezone(UTC)) == (first_utc, last_utc)
    assert (_clock(starts)[0], _clock(starts)[-1]) == ("06:00", "21:30")
    assert {s.date() for s in starts} == {DAY}


def test_disallowed_times_far_from_utc_land_on_the_local_day() -> None:
    # Auckland 12:00-13:00 local is 23:00-00:00 UTC of the day before.
    time_list = _list(("17:00", "09:00"), ("23:00", "00:00"))
    starts = _clock(free_starts(time_list, DAY, AUCKLAND, now=EARLIER))
    assert "11:30" in starts
    assert "12:00" not in starts
    assert "12:30" not in starts
    assert "13:00" in starts
    assert free_intervals(time_list, DAY, AUCKLAND)[0] == Interval(
        _utc(date(2026, 11, 23), 17), _utc(date(2026, 11, 23), 23)
    )


@pytest.mark.parametrize(
    ("zone", "day", "allowed", "expected"),
    [
        # Spring forward: 02:00-03:00 does not exist; 01:00-05:00 local is three hours.
        (
            BERLIN,
            date(2026, 3, 29),
            ("00:00", "03:00"),
            ["01:00", "01:30", "03:00", "03:30", "04:00", "04:30"],
        ),
        (
            NEW_YORK,
            date(2026, 3, 8),
            ("06:00", "09:00"),
            ["01:00", "01:30", "03:00", "03:30", "04:00", "04:30"],
        ),
        # Fall back: 02:00-03:00 happens twice; 01:00-05:00 local is five hours.
        (
            BERLIN,
            date(2026, 10, 25),
            ("23:00", "04:00"),
            [
                "01:00",
                "01:30",
                "02:00",
                "02:30",
                "02:00",
                "02:30",
                "03:00",
                "03:30",
                "04:00",
                "04:30",
            ],
        ),
        (
            NEW_YORK,
            date(2026, 11, 1),
            ("05:00", "10:00"),
            [
                "01:00",
                "01:30",
                "01:00",
                "01:30",
                "02:00",
                "02:30",
                "03:00",
                "03:30",
                "04:00",
                "04:30",
            ],
        ),
    ],
)
def test_dst_days_have_no_duplicate_or_missing_starts(
    zone: ZoneInfo, day: date, allowed: tuple[str, str], expected: list[str]
) -> None:
    starts = free_starts(_list(allowed), day, zone, now=EARLIER.replace(year=2025))
    assert _clock(starts) == expected
    instants = [s.astimezone(UTC) for s in starts]
    assert len(set(instants)) == len(instants)
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(instants))


def test_a_23_hour_local_day() -> None:
    # Berlin, 29 March 2026: local midnight to midnight is 23:00 UTC to 22:00 UTC.
    day = date(2026, 3, 29)
    window = opening(_list(("23:00", "22:00")), day, BERLIN)
    assert window == Interval(_utc(date(2026, 3, 28), 23), _utc(day, 22))
    starts = free_starts(_list(("23:00", "22:00")), day, BERLIN, now=EARLIER.replace(year=2025))
    assert len(starts) == 46
    assert {s.date() for s in starts} == {day}


def test_durations_fit_the_gap_and_the_maximum() -> None:
    time_list = _list(("08:00", "12:00"), ("10:00", "10:30"))
    zone = ZoneInfo("UTC")

    def durations(hour: int, minute: int = 0, **kw: int) -> list[int]:
        return durations_for(
            _utc(DAY, hour, minute),
            time_list,
            DAY,
            zone,
            now=EARLIER,
            max_minutes=kw.get("max_minutes", 90),
            step_minutes=kw.get("step_minutes", 30),
        )

    assert durations(8) == [30, 60, 90]
    assert durations(9) == [30, 60]
    assert durations(9, 30) == [30]
    assert durations(10, 30) == [30, 60, 90]
    assert durations(11, 30) == [30]
    assert durations(10) == []  # blocked
    assert durations(8, 15) == []  # off the grid
    assert durations(12) == []  # closing time
    assert durations(8, max_minutes=180) == [30, 60, 90, 120]
    assert durations(8, max_minutes=120, step_minutes=60) == [60, 120]


def test_durations_of_a_past_start_are_none() -> None:
    time_list = _list(("08:00", "12:00"))
    start = _utc(DAY, 9)
    assert durations_for(start, time_list, DAY, ZoneInfo("UTC"), now=start, max_minutes=60) == []


def test_durations_on_a_fall_back_night_tell_the_two_equal_wall_times_apart() -> None:
    day = date(2026, 10, 25)
    before = EARLIER.replace(year=2025)
    time_list = _list(("23:00", "04:00"), ("01:30", "02:00"))  # the second 02:30-03:00 local
    starts = free_starts(time_list, day, BERLIN, now=before)
    first_two, second_two = (s for s in starts if s.strftime("%H:%M") == "02:00")
    assert first_two.utcoffset() == timedelta(hours=2)
    assert durations_for(first_two, time_list, day, BERLIN, now=before, max_minutes=120) == [
        30,
        60,
        90,
    ]
    assert durations_for(second_two, time_list, day, BERLIN, now=before, max_minutes=120) == [30]


def test_nearest_free_starts() -> None:
    starts = [_utc(DAY, h, m) for h in (8, 9, 11, 12) for m in (0, 30)]
    requested = _utc(DAY, 10, 0)
    nearest = nearest_free_starts(requested, starts)
    assert nearest == [_utc(DAY, 9, 0), _utc(DAY, 9, 30), _utc(DAY, 11, 0)]
    assert nearest_free_starts(_utc(DAY, 7), starts, n=2) == starts[:2]
    assert nearest_free_starts(_utc(DAY, 23), starts, n=1) == [starts[-1]]
    assert nearest_free_starts(requested, []) == []
    assert nearest_free_starts(requested, starts, n=0) == []
    local = [s.astimezone(SHANGHAI) for s in starts]
    assert nearest_free_starts(requested, local, n=1) == [_utc(DAY, 9, 30)]


def test_next_dates() -> None:
    assert next_dates(date(2026, 12, 29)) == [
        date(2026, 12, 29) + timedelta(days=i) for i in range(7)
    ]
    assert next_dates(DAY, 2) == [DAY, date(2026, 11, 25)]
    assert next_dates(DAY, 0) == []


NOW = datetime(2026, 11, 23, 10, 30, tzinfo=SHANGHAI)  # a Monday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # One week rule in both languages: "next friday" = 下周五 = the Friday of next week.
        ("next friday", date(2026, 12, 4)),
        ("下周五", date(2026, 12, 4)),
        ("this friday", date(2026, 11, 27)),
        ("这周五", date(2026, 11, 27)),
        ("friday", date(2026, 11, 27)),
        ("周五", date(2026, 11, 27)),
        ("next mon", date(2026, 11, 30)),
        ("tomorrow", date(2026, 11, 24)),
        ("明天", date(2026, 11, 24)),
        ("today", date(2026, 11, 23)),
        ("12/25", date(2026, 12, 25)),
        ("25/12", date(2026, 12, 25)),
        ("周六", date(2026, 11, 28)),
        ("Sat", date(2026, 11, 28)),
        ("12月1日", date(2026, 12, 1)),
        ("1/3", date(2027, 1, 3)),
        ("yesterday", DateRefusal(DateReason.IN_PAST)),
        ("上周五", DateRefusal(DateReason.IN_PAST)),
        ("22/11", DateRefusal(DateReason.IN_PAST)),
        ("2025-12-01", DateRefusal(DateReason.IN_PAST)),
        ("", DateRefusal(DateReason.UNREADABLE)),
        ("whenever", DateRefusal(DateReason.UNREADABLE)),
        ("31/02", DateRefusal(DateReason.UNREADABLE)),
    ],
)
def test_parse_date(text: str, expected: date | DateRefusal) -> None:
    assert parse_date(text, NOW, SHANGHAI) == expected


def test_parse_date_uses_the_local_today_far_from_utc() -> None:
    # 20:00 UTC Monday is already Tuesday in Auckland: "today" is Tuesday there.
    now = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    assert parse_date("today", now, AUCKLAND) == DAY
    assert parse_date("23/11", now, AUCKLAND) == DateRefusal(DateReason.IN_PAST)


def test_date_refusals_in_both_languages() -> None:
    assert (
        DateRefusal(DateReason.IN_PAST).message("zh")
        == "这个日期已经过去了，请选择今天或以后的日期。"
    )
    assert DateRefusal(DateReason.UNREADABLE).message("en").startswith("I could not read a date")


# ---- properties ------------------------------------------------------------------------------

_MINUTES = st.integers(min_value=0, max_value=24 * 60 - 1)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def _time_lists(draw: st.DrawFn) -> DayTimes:
    allowed = (draw(_MINUTES), draw(_MINUTES))
    blocked = draw(st.lists(st.tuples(_MINUTES, _MINUTES), max_size=6))
    return _list(
        (_hhmm(allowed[0]), _hhmm(allowed[1])), *((_hhmm(a), _hhmm(b)) for a, b in blocked)
    )


_ZONES = st.sampled_from([ZoneInfo("UTC"), BERLIN, NEW_YORK, AUCKLAND, LOS_ANGELES, KIRITIMATI])
_DAYS = st.sampled_from([DAY, date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8)])


@given(
    time_list=_time_lists(),
    zone=_ZONES,
    day=_DAYS,
    now_offset=st.integers(min_value=-36 * 60, max_value=36 * 60),
    step=st.sampled_from([15, 30, 60]),
)
def test_free_starts_never_in_a_blocked_interval_or_the_past_and_durations_fit(
    time_list: DayTimes, zone: ZoneInfo, day: date, now_offset: int, step: int
) -> None:
    now = datetime.combine(day, time(12), tzinfo=zone) + timedelta(minutes=now_offset)
    window = opening(time_list, day, zone)
    assert window is not None
    midnight = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    blocked = [opening(DayTimes(opening=b), day, zone) for b in time_list.taken]
    starts = free_starts(time_list, day, zone, now=now, step_minutes=step)
    instants = [s.astimezone(UTC) for s in starts]
    assert instants == sorted(set(instants))
    assert window.start >= midnight
    for start in instants:
        assert start > now
        assert (start - window.start) % timedelta(minutes=step) == timedelta(0)
        assert window.start <= start
        assert start + timedelta(minutes=step) <= window.end
    for start in starts[:5]:
        for minutes in durations_for(
            start, time_list, day, zone, now=now, max_minutes=240, step_minutes=step
        ):
            end = start.astimezone(UTC) + timedelta(minutes=minutes)
            assert minutes % step == 0
            assert minutes <= 240
            assert end <= window.end
            for block in blocked:
                assert block is not None
                assert min(end, block.end) <= max(start.astimezone(UTC), block.start)


def test_why_a_start_is_not_free_closed_taken_or_gone() -> None:
    """A closed amenity says "closed", a booked slot says "taken" (not one "not free")."""
    time_list = _list(("08:00", "19:00"), ("10:00", "11:00"))
    zone = ZoneInfo("UTC")

    def why(hour: int, minute: int = 0, now: datetime = EARLIER) -> Unfree:
        return why_not_free(_utc(DAY, hour, minute), time_list, DAY, zone, now=now)

    assert why(19) is Unfree.CLOSED
    assert why(7, 30) is Unfree.CLOSED
    assert why(10) is Unfree.TAKEN
    assert why(10, 30) is Unfree.TAKEN
    assert why(9, 15) is Unfree.OFF_GRID
    assert why(9, now=_utc(DAY, 9, 30)) is Unfree.PAST
    assert why_not_free(_utc(DAY, 9), _list(None), DAY, zone, now=EARLIER) is Unfree.CLOSED
