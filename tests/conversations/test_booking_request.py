"""One-message bookings: every part read, missing or ambiguous, never guessed."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.booking_request import (
    AmenityNames,
    BookingRequest,
    Part,
    match_amenity,
    parse_booking_request,
    take_duration,
)
from conversations.records import Amenity

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 30, tzinfo=SHANGHAI)  # a Monday
TOMORROW = date(2026, 11, 24)
FRIDAY = date(2026, 11, 27)
NEXT_WEEK_FRIDAY = date(2026, 12, 4)
AMENITIES = [
    AmenityNames.of(Amenity(id=i, name=n))
    for i, n in [
        ("gym", "Gym / 健身房"),
        ("meeting", "Meeting room / 会议室"),
        ("bbq", "BBQ terrace / 烧烤露台"),
        ("party", "Party room (派对室)"),
    ]
]


def _parse(text: str) -> BookingRequest:
    return parse_booking_request(text, AMENITIES, NOW, SHANGHAI)


@pytest.mark.parametrize(
    ("text", "amenity", "day", "start", "minutes"),
    [
        ("gym tomorrow 7pm for 1 hour", "gym", TOMORROW, time(19), 60),
        ("/book gym tomorrow 7pm for 1 hour", "gym", TOMORROW, time(19), 60),
        ("/book@ConciergeBot GYM Tomorrow 7 PM for one hour", "gym", TOMORROW, time(19), 60),
        ("meeting room fri 14:00 2h", "meeting", FRIDAY, time(14), 120),
        ("预约健身房 明天晚上7点 1小时", "gym", TOMORROW, time(19), 60),
        ("会议室 周五下午2点 两个小时", "meeting", FRIDAY, time(14), 120),
        ("健身房 明天早上八点半 一个半小时", "gym", TOMORROW, time(8, 30), 90),
        ("健身房 明天上午10点 半小时", "gym", TOMORROW, time(10), 30),
        ("烧烤 明天 6-8pm", "bbq", TOMORROW, time(18), 120),
        ("bbq next friday 6pm for an hour and a half", "bbq", NEXT_WEEK_FRIDAY, time(18), 90),
        ("book the gym tomorrow 9:30 for 90 min", "gym", TOMORROW, time(9, 30), 90),
        ("gym half an hour tomorrow 8am", "gym", TOMORROW, time(8), 30),
        ("gym 25/12 10:00 1h30", "gym", date(2026, 12, 25), time(10), 90),
        ("gym tomorrow evening 7 for 1.5 hours", "gym", TOMORROW, time(19), 90),
        ("party room 12月1日 下午3点到5点", "party", date(2026, 12, 1), time(15), 120),
    ],
)
def test_complete_requests(text: str, amenity: str, day: date, start: time, minutes: int) -> None:
    request = _parse(text)
    assert (request.amenity_id, request.date, request.start_time, request.duration_minutes) == (
        amenity,
        day,
        start,
        minutes,
    )
    assert request.complete
    assert request.missing == ()
    assert request.ambiguous == ()


@pytest.mark.parametrize(
    ("text", "missing", "ambiguous"),
    [
        ("gym", (Part.DATE, Part.START, Part.DURATION), ()),
        ("gym tomorrow", (Part.START, Part.DURATION), ()),
        ("gym tomorrow 7pm", (Part.DURATION,), ()),
        ("gym 7pm for 1 hour", (Part.DATE,), ()),
        ("tomorrow 7pm for 1 hour", (Part.AMENITY,), ()),
        ("pool tomorrow 7pm for 1 hour", (Part.AMENITY,), ()),
        ("gym tomorrow 7 for 1 hour", (Part.START,), (Part.START,)),
        ("健身房 明天7点 1小时", (Part.START,), (Part.START,)),
        ("room tomorrow 7pm for 1 hour", (Part.AMENITY,), (Part.AMENITY,)),
        ("gym tomorrow 25:00 for 1 hour", (Part.START,), (Part.START,)),
        ("", (Part.AMENITY, Part.DATE, Part.START, Part.DURATION), ()),
    ],
)
def test_missing_and_ambiguous_parts_are_reported_not_guessed(
    text: str, missing: tuple[Part, ...], ambiguous: tuple[Part, ...]
) -> None:
    request = _parse(text)
    assert request.missing == missing
    assert request.ambiguous == ambiguous
    assert not request.complete


def test_an_ambiguous_amenity_names_its_candidates() -> None:
    request = _parse("room tomorrow 7pm for 1 hour")
    assert request.amenity_candidates == ("meeting", "party")
    assert Part.AMENITY in request.said


def test_a_past_date_is_refused_not_kept() -> None:
    request = _parse("gym yesterday 7pm 1h")
    assert request.date is None
    assert request.date_in_past
    assert request.missing == (Part.DATE,)


def test_words_that_are_not_a_date_are_kept_for_the_reply() -> None:
    request = _parse("gym blah 7pm")
    assert (request.date, request.leftover) == (None, "blah")
    assert request.duration_minutes is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meeting room", ["meeting"]),
        ("the meeting", ["meeting"]),
        ("会议", ["meeting"]),
        ("派对室", ["party"]),
        ("room", ["meeting", "party"]),
        ("健身", ["gym"]),
        ("gymnastics", []),
        ("nothing here", []),
    ],
)
def test_match_amenity(text: str, expected: list[str]) -> None:
    assert match_amenity(text, AMENITIES)[0] == expected


def test_extra_aliases_and_longest_match() -> None:
    pool = AmenityNames.of(Amenity(id="pool", name="Pool"), ["游泳池", "swim"])
    assert pool.names == ("pool", "游泳池", "swim")
    assert match_amenity("swim tomorrow", [*AMENITIES, pool])[0] == ["pool"]
    # "meeting room" beats the word "room" of "party room".
    assert match_amenity("meeting room", AMENITIES)[0] == ["meeting"]


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("for 1 hour", 60),
        ("2h", 120),
        ("1h30", 90),
        ("1 hour 30 minutes", 90),
        ("1.5 hours", 90),
        ("an hour", 60),
        ("two hours", 120),
        ("half an hour", 30),
        ("an hour and a half", 90),
        ("90 min", 90),
        ("45 minutes", 45),
        ("1小时", 60),
        ("2个小时", 120),
        ("1个半小时", 90),
        ("半小时", 30),
        ("半个小时", 30),
        ("90分钟", 90),
        ("1小时30分钟", 90),
    ],
)
def test_take_duration(text: str, minutes: int) -> None:
    assert take_duration(text) == (minutes, "")


@pytest.mark.parametrize("text", ["blah", "tomorrow 7pm", "0h", "0.01 hours"])
def test_no_usable_duration(text: str) -> None:
    assert take_duration(text)[0] is None


@given(hours=st.integers(min_value=1, max_value=9), extra=st.sampled_from([0, 15, 30, 45]))
def test_duration_forms_agree(hours: int, extra: int) -> None:
    expected = hours * 60 + extra
    assert take_duration(f"{hours}h{extra}" if extra else f"{hours}h")[0] == expected
    assert take_duration(f"{hours}小时{extra}分钟" if extra else f"{hours}小时")[0] == expected
    assert take_duration(f"for {expected} minutes")[0] == expected


def test_start_in_the_zone_including_a_dst_gap() -> None:
    request = _parse("gym tomorrow 7pm for 1 hour")
    assert request.start(SHANGHAI) == datetime(2026, 11, 24, 19, 0, tzinfo=SHANGHAI)
    assert BookingRequest(start_time=time(19)).start(SHANGHAI) is None
    berlin = ZoneInfo("Europe/Berlin")
    skipped = BookingRequest(date=date(2026, 3, 29), start_time=time(2, 30))
    start = skipped.start(berlin)
    assert start is not None
    assert start.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
