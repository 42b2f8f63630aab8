"""Vendor time formats: zone-less UTC strings, bare times of day, epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

VENDOR_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_ACCEPTED_DATETIME_FORMATS = (
    VENDOR_DATETIME_FORMAT,
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M",
)


def parse_vendor_datetime(value: str) -> datetime:
    """Reads a vendor time string labelled UTC (with no zone) as an aware UTC datetime."""
    text = value.strip().removesuffix("Z")
    for fmt in _ACCEPTED_DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"not a vendor date-time: {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_vendor_datetime(moment: datetime) -> str:
    """Writes an aware datetime as the vendors' `YYYY-MM-DD HH:MM:SS` UTC string."""
    if moment.tzinfo is None:
        raise ValueError("refusing to send a naive datetime to a vendor")
    return moment.astimezone(UTC).strftime(VENDOR_DATETIME_FORMAT)


def parse_time_of_day(value: str) -> time:
    """Reads a bare `HH:MM` (or `HH:MM:SS`); `24:00` is the end of the day."""
    text = value.strip()
    if text in {"24:00", "24:00:00"}:
        return time.max
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    raise ValueError(f"not a time of day: {value!r}")


def format_time_of_day(value: time) -> str:
    """Writes a time of day as `HH:MM`, the shape the booking time list uses."""
    return "24:00" if value == time.max else value.strftime("%H:%M")


def from_epoch_millis(value: int | float) -> datetime:
    """Reads a 13-digit millisecond timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def to_epoch_millis(moment: datetime) -> int:
    """Writes an aware datetime as milliseconds since the epoch."""
    if moment.tzinfo is None:
        raise ValueError("refusing to convert a naive datetime")
    return int(moment.timestamp() * 1000)


def _coerce_datetime(value: Any) -> Any:
    if isinstance(value, str):
        return parse_vendor_datetime(value) if value.strip() else None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return value


def _coerce_time(value: Any) -> Any:
    return parse_time_of_day(value) if isinstance(value, str) else value


def _coerce_millis(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return from_epoch_millis(value)
    if isinstance(value, str) and value.strip().isdigit():
        return from_epoch_millis(int(value))
    return value


def _dump_datetime(value: datetime | None) -> str | None:
    return None if value is None else format_vendor_datetime(value)


def _dump_millis(value: datetime | None) -> int | None:
    return None if value is None else to_epoch_millis(value)


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_coerce_datetime),
    PlainSerializer(format_vendor_datetime, return_type=str),
]
"""A vendor `YYYY-MM-DD HH:MM:SS` UTC string in JSON, an aware UTC datetime in Python."""

TimeOfDay = Annotated[
    time,
    BeforeValidator(_coerce_time),
    PlainSerializer(format_time_of_day, return_type=str),
]
"""A bare `HH:MM` in JSON, a `datetime.time` in Python."""

EpochMillis = Annotated[
    datetime,
    BeforeValidator(_coerce_millis),
    PlainSerializer(to_epoch_millis, return_type=int),
]
"""A 13-digit millisecond timestamp in JSON, an aware UTC datetime in Python."""
