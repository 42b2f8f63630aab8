"""Adapters from the vendor clients to the conversations' ports."""

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
    BookingTimeList,
    Maintenance,
    ManagerMaintenance,
)
from api.errors import InvalidRequest, Unavailable
from bot.booking_dates import local_day_times, utc_dates

MAX_IMAGE_BYTES = 5 * 1024 * 1024


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

    async def repairs(self) -> list[Maintenance]:
        """Every repair of the residence."""
        return await self._client.get_maintenance_list(self._tokens, self.residence_id)

    async def repair(self, repair_id: str) -> Maintenance:
        """One repair."""
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

    async def amenities(self) -> list[Amenity]:
        """The bookable amenities."""
        return await self._client.get_booking_amenity_list(self._tokens, self.residence_id)

    async def booking_times(self, amenity_id: str, day: date) -> BookingTimeList:
        """Opening window and taken intervals of a local date."""
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

    async def bookings(self) -> list[Booking]:
        """Every booking of the residence."""
        return await self._client.get_booking_list(self._tokens, self.residence_id)

    async def booking(self, booking_id: str) -> Booking:
        """One booking."""
        return await self._client.get_booking_info(self._tokens, self.residence_id, booking_id)

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

    async def repairs(self) -> list[ManagerMaintenance]:
        """Every repair of the project, page after page."""
        return [
            item
            async for item in self._client.iter_project_maintenance(
                self._manager, self.project_id, page_size=self._page_size
            )
        ]

    async def download(self, url: str) -> bytes:
        """Fetches a repair's picture."""
        return await download_image(self._images, url)
