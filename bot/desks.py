"""Adapters from the Akubela client to the conversations' ports, and the mapping of Akubela's
models to the community's records (`conversations.records`).

The `vendor_*` methods give Akubela's own models to the alert watcher, which keeps and compares
Akubela's states as they came."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from api.akubela import AkubelaClient, AkubelaTokens
from api.akubela_models import (
    Amenity,
    Booking,
    BookingState,
    BookingTime,
    BookingTimeList,
    Maintenance,
    MaintenanceState,
    ManagerMaintenance,
)
from api.errors import InvalidRequest, Unavailable
from bot.booking_dates import local_day_times, utc_dates
from conversations import records

MAX_IMAGE_BYTES = 5 * 1024 * 1024

_REPAIR_STATES = {
    MaintenanceState.WAIT_FOR_CONFIRMATION.value: records.RepairState.WAITING,
    MaintenanceState.IN_PROGRESS.value: records.RepairState.IN_PROGRESS,
    MaintenanceState.COMPLETED.value: records.RepairState.COMPLETED,
    MaintenanceState.CLOSED.value: records.RepairState.CLOSED,
}
_BOOKING_STATES = {
    BookingState.PENDING.value: records.BookingState.PENDING,
    BookingState.SUCCESS.value: records.BookingState.CONFIRMED,
    BookingState.REJECTED.value: records.BookingState.DECLINED,
    BookingState.CANCELED.value: records.BookingState.CANCELLED,
}


def repair_of(item: Maintenance) -> records.Repair:
    """An Akubela repair (a resident's, or the manager list's with its residence) as a record."""
    where = item if isinstance(item, ManagerMaintenance) else None
    return records.Repair(
        id=item.maintenance_id,
        # Akubela's documents write states in lower case; a stray capital or space is the same.
        state=_REPAIR_STATES.get(item.state.strip().lower()),
        state_text=item.state.strip(),
        description=item.description,
        contact=item.contact,
        start=item.start_time,
        finish=item.finish_time,
        created=item.created_time,
        feedback=item.feedback,
        picture_urls=tuple(item.maintenance_picture_url),
        residence_id=where.residence_id if where else "",
        family_name=where.family_name if where else "",
        building_name=where.building_name if where else "",
    )


def booking_of(item: Booking) -> records.Booking:
    """An Akubela booking as a record."""
    return records.Booking(
        id=item.booking_id,
        state=_BOOKING_STATES.get(item.state.strip().lower()),
        state_text=item.state.strip(),
        amenity_id=item.amenity_id,
        amenity_name=item.amenity_name,
        start=item.start_time,
        finish=item.finish_time,
        created=item.created_time,
        expired=item.is_expired,
        pin_code=item.pin_code,
        qr_code_url=item.qr_code_url,
        family_name=item.family_name,
        building_name=item.building_name,
    )


def amenity_of(item: Amenity) -> records.Amenity:
    """An Akubela amenity as a record."""
    return records.Amenity(
        id=item.amenity_id,
        name=item.amenity_name,
        description=item.amenity_description,
        picture_url=item.amenity_picture_url,
    )


def _span_of(item: BookingTime) -> records.TimeSpan:
    return records.TimeSpan(start=item.start_time, finish=item.finish_time)


def day_times_of(item: BookingTimeList) -> records.DayTimes:
    """An Akubela booking time list of one date as the day's opening and taken times."""
    allowed = item.allowed_booking_time
    return records.DayTimes(
        opening=_span_of(allowed) if allowed is not None else None,
        taken=tuple(_span_of(b) for b in item.disallowed_booking_time),
    )


class AkubelaResidentDesk:
    """A resident's repairs and bookings on Akubela, for their chosen residence."""

    def __init__(
        self,
        client: AkubelaClient,
        tokens: AkubelaTokens,
        residence_id: str,
        *,
        images: httpx.AsyncClient,
        utc_dates_zone: ZoneInfo | None = None,
    ) -> None:
        self._client = client
        self._tokens = tokens
        self.residence_id = residence_id
        self._images = images
        # Set when Akubela keys booking time lists by UTC date (AKUBELA_TIME_LIST_DATE=utc).
        self._utc_dates_in = utc_dates_zone

    async def repairs(self) -> list[records.Repair]:
        """Every repair of the residence."""
        items = await self._client.get_maintenance_list(self._tokens, self.residence_id)
        return [repair_of(item) for item in items]

    async def repair(self, repair_id: str) -> records.Repair:
        """One repair."""
        return repair_of(await self.vendor_repair(repair_id))

    async def vendor_repair(self, repair_id: str) -> Maintenance:
        """One repair as Akubela gives it (for the alert watcher)."""
        return await self._client.get_maintenance_info(self._tokens, self.residence_id, repair_id)

    async def report_repair(
        self,
        *,
        start: datetime,
        finish: datetime,
        description: str,
        contact: str,
        command_id: str,
    ) -> str | None:
        """Creates a repair (no photo upload is documented, so no `filename`)."""
        return await self._client.create_maintenance_info(
            self._tokens,
            self.residence_id,
            start_time=start,
            finish_time=finish,
            description=description,
            contact=contact,
            command_id=command_id,
        )

    async def cancel_repair(self, repair_id: str, *, command_id: str) -> None:
        """Deletes one repair."""
        await self._client.delete_maintenance_info(
            self._tokens, self.residence_id, repair_id, command_id=command_id
        )

    async def clear_repairs(self, repair_ids: Sequence[str], *, command_id: str) -> None:
        """Deletes several repairs."""
        await self._client.batch_delete_maintenance_info(
            self._tokens, self.residence_id, repair_ids, command_id=command_id
        )

    async def amenities(self) -> list[records.Amenity]:
        """The bookable amenities."""
        items = await self._client.get_booking_amenity_list(self._tokens, self.residence_id)
        return [amenity_of(item) for item in items]

    async def booking_times(self, amenity_id: str, day: date) -> records.DayTimes:
        """Opening window and taken intervals of a local date."""
        return day_times_of(await self._time_list(amenity_id, day))

    async def _time_list(self, amenity_id: str, day: date) -> BookingTimeList:
        zone = self._utc_dates_in
        if zone is None:
            return await self._client.get_booking_time_list(
                self._tokens, self.residence_id, amenity_id, day
            )
        answers = {
            utc_day: await self._client.get_booking_time_list(
                self._tokens, self.residence_id, amenity_id, utc_day
            )
            for utc_day in utc_dates(day, zone)
        }
        return local_day_times(answers, day, zone)

    async def bookings(self) -> list[records.Booking]:
        """Every booking of the residence."""
        return [booking_of(item) for item in await self.vendor_bookings()]

    async def vendor_bookings(self) -> list[Booking]:
        """Every booking as Akubela gives it (for the alert watcher)."""
        return await self._client.get_booking_list(self._tokens, self.residence_id)

    async def booking(self, booking_id: str) -> records.Booking:
        """One booking."""
        item = await self._client.get_booking_info(self._tokens, self.residence_id, booking_id)
        return booking_of(item)

    async def book(
        self, *, amenity_id: str, start: datetime, duration_minutes: int, command_id: str
    ) -> str | None:
        """Creates a booking."""
        return await self._client.create_booking_info(
            self._tokens,
            self.residence_id,
            amenity_id=amenity_id,
            start_time=start,
            duration=duration_minutes,
            command_id=command_id,
        )

    async def book_by_code(self, booking_code: str, *, command_id: str) -> str | None:
        """Books with a shared code."""
        return await self._client.create_code_booking_info(
            self._tokens, self.residence_id, booking_code, command_id=command_id
        )

    async def cancel_booking(self, booking_id: str, *, command_id: str) -> None:
        """Cancels one booking."""
        await self._client.delete_booking_info(
            self._tokens, self.residence_id, booking_id, command_id=command_id
        )

    async def cancel_bookings(self, booking_ids: Sequence[str], *, command_id: str) -> None:
        """Cancels several bookings."""
        await self._client.batch_delete_booking_info(
            self._tokens, self.residence_id, booking_ids, command_id=command_id
        )

    async def download(self, url: str) -> bytes:
        """Fetches a vendor image over http(s), refusing anything that is not a small image."""
        return await download_image(self._images, url)


async def download_image(images: httpx.AsyncClient, url: str) -> bytes:
    """A vendor image over http(s); anything that is not a small image is refused."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise InvalidRequest("not an http(s) image URL", vendor="akubela")
    try:
        response = await images.get(url)
    except httpx.TransportError as exc:
        raise Unavailable(
            f"image download failed ({type(exc).__name__})", vendor="akubela"
        ) from None
    if response.status_code != 200 or len(response.content) > MAX_IMAGE_BYTES:
        raise Unavailable(f"image answered HTTP {response.status_code}", vendor="akubela")
    if not response.headers.get("content-type", "").startswith("image/"):
        raise InvalidRequest("the URL did not give an image", vendor="akubela")
    return response.content


class AkubelaProjectDesk:
    """The project's repairs through the property manager's account (all pages)."""

    def __init__(
        self,
        client: AkubelaClient,
        manager: AkubelaTokens,
        project_id: str,
        *,
        images: httpx.AsyncClient,
        page_size: int = 50,
    ) -> None:
        self._client = client
        self._manager = manager
        self.project_id = project_id
        self._images = images
        self._page_size = page_size

    async def repairs(self) -> list[records.Repair]:
        """Every repair of the project, page after page."""
        return [
            repair_of(item)
            async for item in self._client.iter_project_maintenance(
                self._manager, self.project_id, page_size=self._page_size
            )
        ]

    async def download(self, url: str) -> bytes:
        """Fetches a repair's picture."""
        return await download_image(self._images, url)
