"""Visit windows: presets, free text in both languages, every validation rule, the echo."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.datetext import DayPart
from conversations.timewindow import (
    PRESETS,
    Preset,
    Reason,
    Refusal,
    ServiceHours,
    TimeWindow,
    available_presets,
    describe_window,
    parse_window,
    part_window,
    validate_window,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")
# Monday 23 November 2026, 10:30 in Shanghai.
NOW = datetime(2026, 11, 23, 10, 30, tzinfo=SHANGHAI)


def _local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def _window(text: str, now: datetime = NOW, zone: ZoneInfo = SHANGHAI) -> TimeWindow:
    """How text is read, apart from service hours (tested on their own below)."""
    result = parse_window(text, now, zone, hours=None)
    assert isinstance(result, TimeWindow), result
    return result


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("tomorrow 9-12", _local(24, 9), _local(24, 12)),
        ("tomorrow 9am to noon", _local(24, 9), _local(24, 12)),
        ("Fri 14:00 to 16:00", _local(27, 14), _local(27, 16)),
        ("next monday afternoon", _local(30, 14), _local(30, 17)),
        ("25/12 10:00-11:30", _local(25, 10, month=12), _local(25, 11, 30, month=12)),
        ("明天上午", _local(24, 9), _local(24, 12)),
        ("明天下午3点到5点", _local(24, 15), _local(24, 17)),
        ("下周三下午3点到5点", _local(2, 15, month=12), _local(2, 17, month=12)),
        ("周五 14:00-16:00", _local(27, 14), _local(27, 16)),
        ("后天上午", _local(25, 9), _local(25, 12)),
        ("tomorrow morning", _local(24, 9), _local(24, 12)),
        ("Tomorrow Evening", _local(24, 18), _local(24, 21)),
        ("tonight", _local(23, 18), _local(23, 21)),
        ("今晚", _local(23, 18), _local(23, 21)),
        ("明晚7点到9点", _local(24, 19), _local(24, 21)),
        ("afternoon", _local(23, 14), _local(23, 17)),
        ("下午3点到5点", _local(23, 15), _local(23, 17)),
        ("明天下午三点半到五点", _local(24, 15, 30), _local(24, 17)),
        ("明天 上午10点至下午2点", _local(24, 10), _local(24, 14)),
        ("明天下午3点", _local(24, 15), _local(24, 17)),
        ("明天 9-12点", _local(24, 9), _local(24, 12)),
        ("tomorrow 2-5pm", _local(24, 14), _local(24, 17)),
        ("tomorrow 11-1pm", _local(24, 11), _local(24, 13)),
        ("tomorrow 10-2", _local(24, 10), _local(24, 14)),
        ("tomorrow 2-5", _local(24, 14), _local(24, 17)),
        ("tomorrow from 9 to 11:30", _local(24, 9), _local(24, 11, 30)),
        ("tomorrow between 9 and 11", _local(24, 9), _local(24, 11)),
        ("tomorrow afternoon 3-4", _local(24, 15), _local(24, 16)),
        ("tomorrow 3pm", _local(24, 15), _local(24, 17)),
        ("12月1日 9:00-10:00", _local(1, 9, month=12), _local(1, 10, month=12)),
        ("dec 1 9-10", _local(1, 9, month=12), _local(1, 10, month=12)),
        ("2026-12-01 09:00 – 10:00", _local(1, 9, month=12), _local(1, 10, month=12)),
        ("１２／２５　１０：００～１１：００", _local(25, 10, month=12), _local(25, 11, month=12)),
        ("today 11:00-12:00", _local(23, 11), _local(23, 12)),
    ],
)
def test_free_text_is_read(text: str, start: datetime, end: datetime) -> None:
    window = _window(text)
    assert (window.start, window.end) == (start, end)
    assert window.start.tzinfo == SHANGHAI


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("tomorrow 22:00-02:00", _local(24, 22), _local(25, 2)),
        ("tomorrow 10pm to midnight", _local(24, 22), _local(25, 0)),
        ("明天晚上10点到12点", _local(24, 22), _local(25, 0)),
        ("tomorrow 23:30-00:30", _local(24, 23, 30), _local(25, 0, 30)),
    ],
)
def test_windows_over_midnight_end_on_the_next_day(
    text: str, start: datetime, end: datetime
) -> None:
    window = _window(text)
    assert (window.start, window.end) == (start, end)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", Reason.UNREADABLE),
        ("   ", Reason.UNREADABLE),
        ("whenever you like", Reason.UNREADABLE),
        ("随便", Reason.UNREADABLE),
        ("tomorrow", Reason.UNREADABLE),
        ("31/02 9-12", Reason.UNREADABLE),
        ("tomorrow 25:00-26:00", Reason.UNREADABLE),
        ("明天上午15点", Reason.UNREADABLE),
        ("yesterday 9-12", Reason.IN_PAST),
        ("today 9-12", Reason.IN_PAST),
        ("this morning", Reason.IN_PAST),
        ("today 10:30-12:00", Reason.IN_PAST),
        ("tomorrow 14:00-13:00", Reason.END_BEFORE_START),
        ("tomorrow 10:00-10:00", Reason.END_BEFORE_START),
        ("tomorrow 9:00-9:20", Reason.TOO_SHORT),
        ("明天下午3点到3点29分", Reason.TOO_SHORT),
        ("in 3 months 9-12", Reason.TOO_FAR),
        ("2027-06-01 9-12", Reason.TOO_FAR),
    ],
)
def test_each_rule_refuses_with_its_own_reason(text: str, reason: Reason) -> None:
    assert parse_window(text, NOW, SHANGHAI) == Refusal(reason)


def test_exactly_thirty_minutes_and_exactly_sixty_days_are_accepted() -> None:
    assert _window("tomorrow 9:00-9:30").length == timedelta(minutes=30)
    sixty = NOW + timedelta(days=60)
    assert validate_window(TimeWindow(sixty, sixty + timedelta(hours=1)), NOW) != Refusal(
        Reason.TOO_FAR
    )
    later = sixty + timedelta(minutes=1)
    assert validate_window(TimeWindow(later, later + timedelta(hours=1)), NOW) == Refusal(
        Reason.TOO_FAR
    )


@pytest.mark.parametrize(
    ("reason", "lang", "expected"),
    [
        (Reason.UNREADABLE, "en", 'I could not read a time from that; try e.g. "tomorrow 9-12".'),
        (Reason.UNREADABLE, "zh", "我没能从中读出时间，请试试例如“明天 9-12点”或“明天上午”。"),
        (Reason.IN_PAST, "zh", "这个时间已经过去了，请选择将来的时间。"),
        (Reason.END_BEFORE_START, "en", "The end of the window must be after its start."),
        (Reason.TOO_SHORT, "en", "The window must be at least 30 minutes long."),
        (Reason.TOO_SHORT, "zh", "时间段至少需要 30 分钟。"),
        (Reason.TOO_FAR, "en", "Please choose a time within the next 60 days."),
        (Reason.TOO_FAR, "zh", "请选择未来 60 天内的时间。"),
    ],
)
def test_refusals_explain_themselves_in_both_languages(
    reason: Reason, lang: str, expected: str
) -> None:
    assert Refusal(reason).message(lang) == expected


def test_presets_that_already_started_are_not_offered() -> None:
    keys = [p.key for p in available_presets(NOW, SHANGHAI)]
    assert keys == ["0a", "0e", "1m", "1a", "1e", "2m", "2a", "2e"]
    late = _local(23, 18)  # the evening starts now: no longer offered
    assert next(p.key for p in available_presets(late, SHANGHAI)) == "1m"
    early = _local(23, 8, 59)
    assert len(available_presets(early, SHANGHAI)) == len(PRESETS)


def test_preset_windows_keys_and_labels() -> None:
    tomorrow_morning = Preset(1, DayPart.MORNING)
    assert tomorrow_morning.window(NOW, SHANGHAI) == TimeWindow(_local(24, 9), _local(24, 12))
    assert Preset(0, DayPart.EVENING).window(NOW, SHANGHAI, None) == TimeWindow(
        _local(23, 18), _local(23, 21)
    )
    # Within the default service hours the evening ends when they do.
    assert Preset(0, DayPart.EVENING).window(NOW, SHANGHAI) == TimeWindow(
        _local(23, 18), _local(23, 20)
    )
    assert Preset.from_key("1m") == tomorrow_morning
    assert [Preset.from_key(p.key) for p in PRESETS] == list(PRESETS)
    for forged in ("", "9m", "1x", "1mm", "am"):
        assert Preset.from_key(forged) is None
    assert tomorrow_morning.label("en", NOW, SHANGHAI) == "Tomorrow morning"
    assert tomorrow_morning.label("zh", NOW, SHANGHAI) == "明天上午"
    assert Preset(0, DayPart.AFTERNOON).label("zh", NOW, SHANGHAI) == "今天下午"
    assert Preset(2, DayPart.EVENING).label("en", NOW, SHANGHAI) == "Wed evening"
    assert Preset(2, DayPart.EVENING).label("zh", NOW, SHANGHAI) == "周三晚上"


def test_preset_on_a_dst_day_keeps_wall_clock_hours() -> None:
    # Europe/Berlin springs forward on Sunday 29 March 2026.
    saturday = datetime(2026, 3, 28, 20, 0, tzinfo=BERLIN)
    window = Preset(1, DayPart.MORNING).window(saturday, BERLIN)
    assert (window.start.hour, window.end.hour) == (9, 12)
    assert window.start.utcoffset() == timedelta(hours=2)


def test_a_wall_time_skipped_by_dst_moves_forward() -> None:
    saturday = datetime(2026, 3, 7, 20, 0, tzinfo=NEW_YORK)  # New York springs on 8 March
    window = _window("tomorrow 2:30-4:00", saturday, NEW_YORK)
    assert window.start.astimezone(UTC) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert window.length == timedelta(minutes=30)


def test_windows_are_measured_in_real_time_across_a_dst_change() -> None:
    # Berlin falls back on 25 October 2026: 01:00-04:00 on the wall is four real hours.
    saturday = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    window = _window("tomorrow 1:00-4:00", saturday, BERLIN)
    assert window.length == timedelta(hours=4)
    single = _window("tomorrow 1:30", saturday, BERLIN)
    assert single.length == timedelta(hours=2)


def test_far_from_utc_today_is_the_local_today() -> None:
    # 20:00 UTC on Monday is already Tuesday 09:00 in Auckland.
    now = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    window = _window("today afternoon", now, AUCKLAND)
    assert window.start == datetime(2026, 11, 24, 14, 0, tzinfo=AUCKLAND)
    assert window.start.astimezone(UTC) == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("tomorrow 9-12", "en", "Tomorrow (Tue 24 Nov), 09:00–12:00"),
        ("tomorrow 9-12", "zh", "明天（11月24日 周二）09:00–12:00"),
        ("today 14:00-15:00", "en", "Today (Mon 23 Nov), 14:00–15:00"),
        ("后天上午", "zh", "后天（11月25日 周三）09:00–12:00"),
        ("Fri 14:00 to 16:00", "en", "Fri 27 Nov, 14:00–16:00"),
        ("周五 14:00-16:00", "zh", "11月27日 周五 14:00–16:00"),
        ("tomorrow 10pm to midnight", "en", "Tomorrow (Tue 24 Nov), 22:00–24:00"),
        (
            "tomorrow 22:00-02:00",
            "en",
            "Tomorrow (Tue 24 Nov), 22:00 – The day after tomorrow (Wed 25 Nov), 02:00",
        ),
        (
            "tomorrow 22:00-02:00",
            "zh",
            "明天（11月24日 周二）22:00 至 后天（11月25日 周三）02:00",
        ),
        ("1/5 9-12", "en", "Tue 5 Jan 2027, 09:00–12:00"),
        ("1/5 9-12", "zh", "2027年1月5日 周二 09:00–12:00"),
    ],
)
def test_describe_window(text: str, lang: str, expected: str) -> None:
    assert describe_window(_window(text), lang, SHANGHAI, now=NOW) == expected


def test_describe_window_in_another_zone_than_it_was_read() -> None:
    window = part_window(NOW.date() + timedelta(days=1), DayPart.MORNING, SHANGHAI)
    text = describe_window(window, "en", BERLIN, now=NOW)
    assert text == "Tomorrow (Tue 24 Nov), 02:00–05:00"


@given(
    offset=st.integers(min_value=0, max_value=60 * 24 * 90),
    length=st.integers(min_value=-120, max_value=600),
)
def test_validation_accepts_exactly_the_windows_that_keep_every_rule(
    offset: int, length: int
) -> None:
    start = NOW + timedelta(minutes=offset)
    window = TimeWindow(start, start + timedelta(minutes=length))
    result = validate_window(window, NOW, None)
    ok = length >= 30 and offset > 0 and offset <= 60 * 24 * 60
    assert isinstance(result, TimeWindow) == ok


# ---- service hours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("tomorrow after 3pm", _local(24, 15), _local(24, 20)),
        ("明天下午3点以后", _local(24, 15), _local(24, 20)),
        ("明天3点后", _local(24, 15), _local(24, 20)),
        ("tomorrow before 11am", _local(24, 8), _local(24, 11)),
        ("明天上午11点前", _local(24, 8), _local(24, 11)),
        ("tomorrow 7pm", _local(24, 19), _local(24, 20)),
        ("tomorrow evening", _local(24, 18), _local(24, 20)),
        ("tomorrow 3pm", _local(24, 15), _local(24, 17)),
    ],
)
def test_open_ended_and_late_windows_run_to_the_end_of_service_hours(
    text: str, start: datetime, end: datetime
) -> None:
    """ "After 3pm" means from 15:00 until technicians stop (20:00), not 15:00-17:00."""
    result = parse_window(text, NOW, SHANGHAI)
    assert isinstance(result, TimeWindow), result
    assert (result.start, result.end) == (start, end)


@pytest.mark.parametrize(
    "text", ["tomorrow 03:00", "明天凌晨3点", "tomorrow 22:00-02:00", "tomorrow 7am-9am"]
)
def test_a_visit_outside_service_hours_is_refused_with_the_hours(text: str) -> None:
    result = parse_window(text, NOW, SHANGHAI)
    assert result == Refusal(Reason.OUTSIDE_HOURS)
    assert isinstance(result, Refusal)
    assert result.message("en") == (
        "Technicians visit between 08:00 and 20:00. Please choose a time within those hours."
    )
    assert "08:00" in result.message("zh")
    assert "20:00" in result.message("zh")


def test_service_hours_are_a_setting() -> None:
    hours = ServiceHours(time(10, 0), time(16, 0))
    late = parse_window("tomorrow after 2pm", NOW, SHANGHAI, hours=hours)
    assert late == TimeWindow(_local(24, 14), _local(24, 16))
    early = parse_window("tomorrow 9-11", NOW, SHANGHAI, hours=hours)
    assert isinstance(early, Refusal)
    assert "10:00 and 16:00" in early.message("en")
    assert [p.key for p in available_presets(NOW, SHANGHAI, hours)] == [
        "0a",
        "1m",
        "1a",
        "2m",
        "2a",
    ]
