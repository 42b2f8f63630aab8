"""Vendor time formats, including the docs' zone-less UTC strings and bare times of day."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from pydantic import BaseModel

from api.times import (
    EpochMillis,
    TimeOfDay,
    UtcDateTime,
    format_vendor_datetime,
    parse_time_of_day,
    parse_vendor_datetime,
)


class Sample(BaseModel):
    at: UtcDateTime
    opens: TimeOfDay
    created: EpochMillis


def test_zone_less_string_is_read_as_utc() -> None:
    assert parse_vendor_datetime("2024-01-16 13:32:45") == datetime(
        2024, 1, 16, 13, 32, 45, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "text", ["2024-01-16 13:32", "2024-01-16T13:32:00", "2024-01-16T13:32:00Z"]
)
def test_near_variants_are_tolerated(text: str) -> None:
    assert parse_vendor_datetime(text) == datetime(2024, 1, 16, 13, 32, tzinfo=UTC)


def test_garbage_is_refused() -> None:
    with pytest.raises(ValueError, match="not a vendor date-time"):
        parse_vendor_datetime("yesterday-ish")


def test_local_time_is_sent_as_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    assert format_vendor_datetime(datetime(2024, 1, 2, 8, 0, tzinfo=shanghai)) == (
        "2024-01-02 00:00:00"
    )


def test_naive_datetimes_are_never_sent() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_vendor_datetime(datetime(2024, 1, 2, 8, 0))


def test_time_of_day_and_end_of_day() -> None:
    assert parse_time_of_day("08:30") == time(8, 30)
    assert parse_time_of_day("24:00") == time.max
    with pytest.raises(ValueError, match="not a time of day"):
        parse_time_of_day("8h30")


def test_model_round_trip_keeps_vendor_shapes() -> None:
    sample = Sample.model_validate(
        {"at": "2024-05-02 13:14:15", "opens": "08:00", "created": 1600766546913}
    )
    assert sample.at.tzinfo is UTC
    assert sample.created == datetime(2020, 9, 22, 9, 22, 26, 913000, tzinfo=UTC)
    assert sample.model_dump(mode="json") == {
        "at": "2024-05-02 13:14:15",
        "opens": "08:00",
        "created": 1600766546913,
    }
