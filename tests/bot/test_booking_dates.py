"""Booking time lists keyed by local or by UTC date give the booking flow the same starts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from api.akubela import AkubelaClient
from api.akubela_models import BookingTime, BookingTimeList
from api.base import RetryPolicy
from bot.booking_dates import local_day_times, utc_dates
from bot.desks import AkubelaResidentDesk, day_times_of
from bot.settings import Settings
from conversations import slots
from sandbox.akubela_seed import BBQ, GYM, MEETING_ROOM
from sandbox.app import create_app, default_vendors
from sandbox.core import Clock

ALICE_HOME = "r3f9a1c2d4e5b6a7980c1d2e3f4a5b601"
SHANGHAI, LOS_ANGELES = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/Los_Angeles")
Reading = Literal["local", "utc"]


def test_a_local_date_overlaps_the_utc_dates_around_it() -> None:
    day = date(2026, 5, 12)
    assert utc_dates(day, SHANGHAI) == [date(2026, 5, 11), date(2026, 5, 12)]
    assert utc_dates(day, LOS_ANGELES) == [date(2026, 5, 12), date(2026, 5, 13)]
    assert utc_dates(day, ZoneInfo("UTC")) == [day]


def bare(start: str, finish: str) -> BookingTime:
    return BookingTime.model_validate({"start_time": start, "finish_time": finish})


def test_two_utc_dates_merge_into_the_local_day() -> None:
    # A gym open 06:00-23:00 in Shanghai (22:00-15:00 UTC), booked 07:00-08:00 local on 12 May.
    answers = {
        date(2026, 5, 11): BookingTimeList(
            allowed_booking_time=bare("00:00", "24:00"),
            disallowed_booking_time=[bare("15:00", "22:00"), bare("23:00", "24:00")],
        ),
        date(2026, 5, 12): BookingTimeList(
            allowed_booking_time=bare("00:00", "24:00"),
            disallowed_booking_time=[bare("15:00", "22:00")],
        ),
    }
    merged = local_day_times(answers, date(2026, 5, 12), SHANGHAI)
    now = datetime(2026, 5, 1, tzinfo=UTC)
    starts = slots.free_starts(day_times_of(merged), date(2026, 5, 12), SHANGHAI, now=now)
    local = [s.strftime("%H:%M") for s in starts]
    assert local[:4] == ["06:00", "06:30", "08:00", "08:30"]
    assert local[-1] == "22:30"
    assert "07:00" not in local


def test_a_day_closed_on_both_utc_dates_stays_closed() -> None:
    closed = BookingTimeList(allowed_booking_time=None)
    answers = {day: closed for day in utc_dates(date(2026, 5, 12), SHANGHAI)}
    assert local_day_times(answers, date(2026, 5, 12), SHANGHAI).allowed_booking_time is None


async def offered_starts(
    reading: Reading, zone: ZoneInfo, clock: Clock, amenity: str, day: date
) -> list[datetime]:
    """The starts the booking flow would offer, with sandbox and bot on one reading."""
    settings = Settings(_env_file=None, timezone=zone.key, akubela_time_list_date=reading)
    app = create_app(settings, clock=clock, vendors=default_vendors(settings, clock))
    async with (
        httpx.AsyncClient() as images,
        AkubelaClient(
            base_url="http://sandbox/akubela",
            client_id=settings.akubela_client_id,
            client_secret=settings.akubela_client_secret,
            transport=httpx.ASGITransport(app=app),
            retry=RetryPolicy(retries=0),
            clock=clock.now,
        ) as client,
    ):
        tokens = await client.password_login(
            "alice@demo.community", SecretStr("alice-demo-pass"), scope="user"
        )
        desk = AkubelaResidentDesk(
            client,
            client.user_tokens(tokens),
            ALICE_HOME,
            images=images,
            utc_dates_zone=zone if reading == "utc" else None,
        )
        times = await desk.booking_times(amenity, day)
    return slots.free_starts(times, day, zone, now=clock.now())


@pytest.mark.parametrize("zone", [SHANGHAI, LOS_ANGELES], ids=lambda z: z.key)
@pytest.mark.parametrize("amenity", [GYM, MEETING_ROOM, BBQ])
async def test_both_readings_offer_the_same_starts(zone: ZoneInfo, amenity: str) -> None:
    clock = Clock()
    today = clock.now().astimezone(zone).date()
    for offset in range(4):
        day = today + timedelta(days=offset)
        local = await offered_starts("local", zone, clock, amenity, day)
        utc = await offered_starts("utc", zone, clock, amenity, day)
        assert [s.astimezone(UTC) for s in utc] == [s.astimezone(UTC) for s in local], day
        assert all(s.astimezone(zone).date() == day for s in local)


async def test_reading_a_utc_keyed_list_as_local_would_offer_wrong_starts() -> None:
    # Why the setting exists: the same answer means other instants under the other reading.
    clock = Clock()
    day = clock.now().astimezone(SHANGHAI).date() + timedelta(days=2)
    settings = Settings(_env_file=None, akubela_time_list_date="utc")
    app = create_app(settings, clock=clock, vendors=default_vendors(settings, clock))
    async with AkubelaClient(
        base_url="http://sandbox/akubela",
        client_id=settings.akubela_client_id,
        client_secret=settings.akubela_client_secret,
        transport=httpx.ASGITransport(app=app),
        clock=clock.now,
    ) as client:
        auth = client.user_tokens(
            await client.password_login(
                "alice@demo.community", SecretStr("alice-demo-pass"), scope="user"
            )
        )
        answer = await client.get_booking_time_list(auth, ALICE_HOME, GYM, day)
    misread = slots.free_starts(day_times_of(answer), day, SHANGHAI, now=clock.now())
    right = await offered_starts("local", SHANGHAI, clock, GYM, day)
    assert [s.astimezone(UTC) for s in misread] != [s.astimezone(UTC) for s in right]
    assert right[0].astimezone(SHANGHAI).time() == time(6, 0)
