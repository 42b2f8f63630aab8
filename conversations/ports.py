"""What the resident conversations may ask of the community platform, vendor-neutral.

The flows depend on these protocols only, so a second vendor is one more adapter in `bot`, not
a change here. Writes take a `command_id` chosen by the flow and kept in its draft, so a write
that is retried later (the outbox) goes out under the same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Protocol

from api.akubela_models import Amenity, Booking, BookingTimeList, Maintenance


class RepairDesk(Protocol):
    """Repairs of one residence."""

    residence_id: str

    async def repairs(self) -> list[Maintenance]:
        """Every repair of the residence."""
        ...

    async def repair(self, repair_id: str) -> Maintenance:
        """One repair (NotFound when it is gone)."""
        ...

    async def report_repair(
        self,
        *,
        start: datetime,
        finish: datetime,
        description: str,
        contact: str,
        command_id: str,
    ) -> str | None:
        """Creates a repair; its id, when the vendor gives one."""
        ...

    async def cancel_repair(self, repair_id: str, *, command_id: str) -> None:
        """Deletes one repair."""
        ...

    async def clear_repairs(self, repair_ids: Sequence[str], *, command_id: str) -> None:
        """Deletes several repairs at once."""
        ...


class BookingDesk(Protocol):
    """Amenity bookings of one residence."""

    residence_id: str

    async def amenities(self) -> list[Amenity]:
        """The amenities the residence may book."""
        ...

    async def booking_times(self, amenity_id: str, day: date) -> BookingTimeList:
        """The opening window and the taken intervals of one date."""
        ...

    async def bookings(self) -> list[Booking]:
        """Every booking of the residence."""
        ...

    async def booking(self, booking_id: str) -> Booking:
        """One booking (NotFound when it is gone)."""
        ...

    async def book(
        self, *, amenity_id: str, start: datetime, duration_minutes: int, command_id: str
    ) -> str | None:
        """Creates a booking; its id, when the vendor gives one."""
        ...

    async def book_by_code(self, booking_code: str, *, command_id: str) -> str | None:
        """Books with a code someone shared; the new booking's id when given."""
        ...

    async def cancel_booking(self, booking_id: str, *, command_id: str) -> None:
        """Cancels one booking."""
        ...

    async def cancel_bookings(self, booking_ids: Sequence[str], *, command_id: str) -> None:
        """Cancels several bookings at once."""
        ...

    async def download(self, url: str) -> bytes:
        """Fetches a vendor image (an amenity picture, a booking's QR code)."""
        ...


class ResidentDesk(RepairDesk, BookingDesk, Protocol):
    """Everything a linked resident can do, for their chosen residence."""


class Deferrer(Protocol):
    """Keeps a write the vendor could not take now, and sends it later under the same id."""

    async def defer(
        self, telegram_id: int, operation: str, payload: dict[str, Any], *, command_id: str
    ) -> None:
        """Queues `operation` with `payload`; the user is told when it went through."""
        ...
