"""The outbox: a user's write that the vendor could not take now is kept and sent later.

Each write keeps the command id its conversation chose, so a retry is the same command. Before
a create is sent again, the record is looked for (an earlier attempt, the conversation's own
included, may have reached the vendor even though its answer was lost), so nothing is created
twice. The user hears once: when it went through, or, after the retry budget, that it did not
and what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.errors import ApiError, RateLimited, Unavailable
from bot.storage.models import OutboxItem
from bot.storage.repositories import Storage
from conversations.i18n import N_
from conversations.ports import ResidentDesk

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(minutes=30)

DONE_MESSAGES = {
    "akubela.repair.create": N_("✅ Your repair report went through: repair #{short_id}."),
    "akubela.booking.create": N_("✅ Your booking went through. Send /bookings to see it."),
    "akubela.booking.by_code": N_("✅ Your booking with the code went through."),
}
DONE_DEFAULT = N_("✅ Your request went through.")
FAILED_MESSAGE = N_(
    "⚠️ I could not send your request to Akubela after several tries ({reason}). "
    "Nothing was created; please try again."
)

REASON_UNKNOWN_OPERATION = N_("an unknown kind of request")
REASON_NOT_LINKED = N_("the Akubela account is no longer linked")
REASON_NO_ANSWER = N_("Akubela did not answer")

DeskFor = Callable[[int, str], Awaitable[ResidentDesk | None]]
Notify = Callable[[int, str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Delivered:
    """A deferred write that went through, with the vendor's id for what it created."""

    item: OutboxItem
    record_id: str | None


OnDelivered = Callable[[Delivered], Awaitable[None]]


class OutboxService:
    """Queues deferred writes (the conversations' `Deferrer`) and delivers them."""

    def __init__(self, storage: Storage, *, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._clock = clock
        self._on_delivered: list[OnDelivered] = []

    def on_delivered(self, hook: OnDelivered) -> None:
        """Runs `hook` after each delivered write (e.g. to keep a repair's photos)."""
        self._on_delivered.append(hook)

    async def defer(
        self, telegram_id: int, operation: str, payload: dict[str, Any], *, command_id: str
    ) -> None:
        """Keeps the write; the same command id deferred twice stays one item."""
        vendor = operation.split(".", 1)[0]
        await self._storage.outbox.enqueue(
            telegram_id=telegram_id,
            vendor=vendor,
            operation=operation,
            command_id=command_id,
            payload=payload,
            now=self._clock(),
        )
        logger.info("deferred %s for user %s", operation, telegram_id)

    async def deliver_due(self, *, desk_for: DeskFor, notify: Notify) -> int:
        """Tries every due write once; returns how many went through."""
        delivered = 0
        for item in await self._storage.outbox.claim_due(self._clock()):
            if await self._deliver(item, desk_for=desk_for, notify=notify):
                delivered += 1
        return delivered

    async def _deliver(self, item: OutboxItem, *, desk_for: DeskFor, notify: Notify) -> bool:
        if item.operation not in OPERATIONS:
            await self._give_up(item, REASON_UNKNOWN_OPERATION, notify)
            return False
        residence_id = str(item.payload.get("residence_id", ""))
        desk = await desk_for(item.telegram_id, residence_id)
        if desk is None:
            await self._give_up(item, REASON_NOT_LINKED, notify)
            return False
        try:
            # Even the first delivery looks: the write was deferred because the vendor failed,
            # and a timed-out or dropped create may have landed without its answer reaching us.
            found = await _already_there(item, desk)
            record_id = found if found is not None else await _perform(item, desk)
        except (Unavailable, RateLimited) as exc:
            if item.attempts >= MAX_ATTEMPTS:
                await self._give_up(item, REASON_NO_ANSWER, notify)
                return False
            wait = min(LONGEST_WAIT, FIRST_RETRY * 2 ** (item.attempts - 1))
            if isinstance(exc, RateLimited) and exc.retry_after:
                wait = max(wait, timedelta(seconds=exc.retry_after))
            await self._storage.outbox.mark_retry(
                item.id, type(exc).__name__, self._clock() + wait
            )
            logger.info("outbox item %s retries in %s", item.id, wait)
            return False
        except ApiError as exc:
            await self._give_up(item, exc.message, notify)
            return False
        await self._storage.outbox.mark_done(item.id, {"id": record_id} if record_id else None)
        logger.info("outbox item %s (%s) went through", item.id, item.operation)
        for hook in self._on_delivered:
            await hook(Delivered(item, record_id))
        message = DONE_MESSAGES.get(item.operation, DONE_DEFAULT)
        await notify(item.telegram_id, message, {"short_id": (record_id or "")[-6:]})
        return True

    async def _give_up(self, item: OutboxItem, reason: str, notify: Notify) -> None:
        await self._storage.outbox.mark_failed(item.id, reason)
        logger.warning("outbox item %s (%s) failed: %s", item.id, item.operation, reason)
        await notify(item.telegram_id, FAILED_MESSAGE, {"reason": reason})


def _moment(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


async def _already_there(item: OutboxItem, desk: ResidentDesk) -> str | None:
    """The id of the record an earlier attempt created, if it is there."""
    payload = item.payload
    if item.operation == "akubela.repair.create":
        start, finish = _moment(payload["start"]), _moment(payload["finish"])
        for repair in await desk.repairs():
            if (
                repair.description == payload["description"]
                and repair.start_time == start
                and repair.finish_time == finish
            ):
                return repair.maintenance_id or ""
    if item.operation == "akubela.booking.create":
        start = _moment(payload["start"])
        for booking in await desk.bookings():
            if (
                booking.amenity_id == payload["amenity_id"]
                and booking.start_time == start
                and booking.state != "canceled"
            ):
                return booking.booking_id or ""
    return None


async def _perform(item: OutboxItem, desk: ResidentDesk) -> str | None:
    """Sends the write under its original command id."""
    payload, command_id = item.payload, item.command_id
    match item.operation:
        case "akubela.repair.create":
            return await desk.report_repair(
                start=_moment(payload["start"]),
                finish=_moment(payload["finish"]),
                description=str(payload["description"]),
                contact=str(payload["contact"]),
                command_id=command_id,
            )
        case "akubela.repair.cancel":
            await desk.cancel_repair(str(payload["repair_id"]), command_id=command_id)
        case "akubela.repair.clear":
            await desk.clear_repairs(list(payload["repair_ids"]), command_id=command_id)
        case "akubela.booking.create":
            return await desk.book(
                amenity_id=str(payload["amenity_id"]),
                start=_moment(payload["start"]),
                duration_minutes=int(payload["duration_minutes"]),
                command_id=command_id,
            )
        case "akubela.booking.cancel":
            await desk.cancel_booking(str(payload["booking_id"]), command_id=command_id)
        case "akubela.booking.cancel_many":
            await desk.cancel_bookings(list(payload["booking_ids"]), command_id=command_id)
        case "akubela.booking.by_code":
            return await desk.book_by_code(str(payload["booking_code"]), command_id=command_id)
    return None


OPERATIONS = frozenset(
    {
        "akubela.repair.create",
        "akubela.repair.cancel",
        "akubela.repair.clear",
        "akubela.booking.create",
        "akubela.booking.cancel",
        "akubela.booking.cancel_many",
        "akubela.booking.by_code",
    }
)
