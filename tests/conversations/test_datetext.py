"""The shared date and time vocabulary: numerals, calendar dates, times of day, week names."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from conversations.datetext import (
    Bound,
    ClockTime,
    Span,
    normalize,
    relative_date,
    resolve_range,
    take_bound,
    take_explicit_date,
    take_times,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 30, tzinfo=SHANGHAI)  # a Monday
TODAY = NOW.date()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("明天下午三点半", "明天下午3点半"),
        ("十二月二十五日", "12月25日"),
        ("两个小时", "2个小时"),
        ("一个半小时", "1个半小时"),
        ("二十三点", "23点"),
        ("周一 上午十点", "周一 上午10点"),
        ("３点２０分", "3点20分"),
        ("Tomorrow  9–12!", "tomorrow 9-12"),
        ("tonight", "today evening"),
        ("明晚", "明天 晚上"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "day_first", "expected"),
    [
        ("25/12", False, date(2026, 12, 25)),
        ("12/25", False, date(2026, 12, 25)),
        ("1/2", False, date(2027, 1, 2)),
        ("1/2", True, date(2027, 2, 1)),
        ("23/11", False, TODAY),
        ("22/11", False, date(2026, 11, 22)),  # yesterday stays in the past, to be refused
        ("25.12.2026", False, date(2026, 12, 25)),
        ("2027-01-05", False, date(2027, 1, 5)),
        ("12月25日", False, date(2026, 12, 25)),
        ("2027年1月3号", False, date(2027, 1, 3)),
        ("dec 25th", False, date(2026, 12, 25)),
        ("3 january", False, date(2027, 1, 3)),
        ("31/02", False, None),
    ],
)
def test_explicit_dates(text: str, day_first: bool, expected: date | None) -> None:
    found, rest, dated = take_explicit_date(normalize(text), TODAY, day_first=day_first)
    assert (found, rest, dated) == (expected, "", True)


def test_no_explicit_date_leaves_the_text_alone() -> None:
    assert take_explicit_date("tomorrow 9-12", TODAY) == (None, "tomorrow 9-12", False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomorrow", date(2026, 11, 24)),
        ("fri", date(2026, 11, 27)),
        ("next monday", date(2026, 11, 30)),
        ("monday", date(2026, 11, 30)),
        ("周五", date(2026, 11, 27)),
        ("星期一", date(2026, 11, 30)),
        ("下周三", date(2026, 12, 2)),
        ("下周五", date(2026, 12, 4)),
        ("下下周一", date(2026, 12, 7)),
        ("这周日", date(2026, 11, 29)),
        ("本周一", TODAY),
        ("上周五", date(2026, 11, 20)),
        ("后天", date(2026, 11, 25)),
        ("大后天", date(2026, 11, 26)),
        ("今天", TODAY),
        ("in 3 days", date(2026, 11, 26)),
        ("yesterday", date(2026, 11, 22)),
        ("gym", None),
        ("at", None),
    ],
)
def test_relative_dates(text: str, expected: date | None) -> None:
    assert relative_date(normalize(text), NOW, SHANGHAI) == expected


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("9-12", ClockTime(9), ClockTime(12)),
        ("9am to noon", ClockTime(9, 0, "am", True), ClockTime(12, 0, "noon", True)),
        ("下午3点到5点", ClockTime(3, 0, "下午", True), ClockTime(5)),
        ("14:00 until 16:30", ClockTime(14, 0, "", True), ClockTime(16, 30, "", True)),
        ("3点一刻", ClockTime(3, 15), None),
        ("7pm", ClockTime(7, 0, "pm", True), None),
    ],
)
def test_take_times(text: str, start: ClockTime, end: ClockTime | None) -> None:
    found_start, found_end, rest, bad = take_times(normalize(text))
    assert (found_start, found_end, rest, bad) == (start, end, "", False)


def test_durations_and_dates_are_not_times() -> None:
    assert take_times("2h") == (None, None, "2h", False)
    assert take_times("afternoon")[0] is None


def test_contradictory_halves_are_refused() -> None:
    assert resolve_range(ClockTime(15, 0, "上午", True), ClockTime(16), None) is None
    assert resolve_range(ClockTime(9), ClockTime(12), None) == Span(540, 720)


_SAME_DAY_IN_BOTH: list[tuple[str, str]] = [
    (f"{which_en} {day_en}", f"{which_zh}{day_zh}")
    for which_en, which_zh in (("next", "下周"), ("this", "这周"), ("", "周"))
    for day_en, day_zh in (
        ("monday", "一"),
        ("wednesday", "三"),
        ("friday", "五"),
        ("sunday", "日"),
        ("weekend", "末"),
    )
]


@pytest.mark.parametrize("weekday", range(7))
@pytest.mark.parametrize(("english", "chinese"), _SAME_DAY_IN_BOTH)
def test_english_and_chinese_weeks_name_the_same_day(
    english: str, chinese: str, weekday: int
) -> None:
    """ "next friday" = 下周五 = the Friday of next week, from whichever day it is said."""
    now = NOW.replace(day=23 + weekday)
    assert relative_date(normalize(english), now, SHANGHAI) == relative_date(
        normalize(chinese), now, SHANGHAI
    )


def test_next_friday_is_the_friday_of_next_week() -> None:
    thursday = NOW.replace(day=26)
    assert relative_date("next friday", thursday, SHANGHAI) == date(2026, 12, 4)
    assert relative_date("friday", thursday, SHANGHAI) == date(2026, 11, 27)
    assert relative_date("this friday", thursday, SHANGHAI) == date(2026, 11, 27)


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("after", Bound.AFTER),
        ("以后", Bound.AFTER),
        ("后", Bound.AFTER),
        ("before", Bound.BEFORE),
        ("之前", Bound.BEFORE),
        ("后天", None),
        ("前天", None),
        ("", None),
    ],
)
def test_take_bound(text: str, bound: Bound | None) -> None:
    assert take_bound(text)[0] is bound
