"""Adapters from the Tuya and Servitly clients to the task board's ports, and the mapping of
Tuya's models to the community's records (`conversations.records`). The `vendor_*` methods give
Tuya's own models to the alert watcher, which keeps Tuya's states as they came.

Room, device and worker names change rarely and every task view needs them, so they are kept
for a few minutes (by the Services clock) instead of being fetched for every press.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from api.errors import InvalidRequest
from api.servitly import ServitlyClient
from api.servitly_models import (
    SEVERITY_MAINTENANCE,
    HistoricalEventFilter,
    HistoricalEventWrite,
    MaintenanceWorkWrite,
)
from api.times import to_epoch_millis
from api.tuya import TuyaClient
from api.tuya_models import (
    Device,
    Room,
    RoomDeviceRelation,
    TaskDetail,
    TaskStatus,
    TaskSummary,
    Worker,
)
from conversations import records

NAMES_TTL = timedelta(minutes=5)
MAX_NOTES = 4000  # Servitly's limit on an event's notes

T = TypeVar("T")

_TASK_STATES = {
    TaskStatus.PENDING_MAINTENANCE.value: records.TaskState.NEW,
    TaskStatus.IN_MAINTENANCE.value: records.TaskState.IN_PROGRESS,
    TaskStatus.PENDING_ACCEPTANCE.value: records.TaskState.AWAITING_ACCEPTANCE,
    TaskStatus.ACCEPTANCE_COMPLETE.value: records.TaskState.ACCEPTED,
}


def task_of(item: TaskSummary) -> records.Task:
    """A task of Tuya's list as a record."""
    return records.Task(
        id=item.task_id,
        state=_TASK_STATES.get(item.status),
        state_text=item.status,
        worker_username=item.worker_username,
        worker_nickname=item.worker_nickname,
        created=item.gmt_create,
    )


def task_detail_of(item: TaskDetail) -> records.TaskDetail:
    """One Tuya task with its rooms and devices as a record."""
    return records.TaskDetail(
        id=item.task_id,
        state=_TASK_STATES.get(item.status),
        state_text=item.status,
        worker_username=item.worker_username,
        worker_nickname=item.worker_nickname,
        created=item.gmt_create,
        rooms=tuple(
            records.TaskRoom(room_id=r.room_id, device_ids=tuple(r.device_ids))
            for r in item.room_device_relations
        ),
    )


def worker_of(item: Worker) -> records.Worker:
    """A Tuya construction worker as a record."""
    return records.Worker(id=item.worker_id, username=item.username, nickname=item.nickname)


def room_of(item: Room) -> records.Room:
    """A Tuya room as a record."""
    return records.Room(id=item.room_id, name=item.room_name, number=item.room_no)


def device_of(item: Device) -> records.Device:
    """A Tuya device as a record."""
    return records.Device(id=item.device_id, name=item.name)


@dataclass(slots=True)
class _Entry(Generic[T]):
    value: T
    until: datetime


class TimedCache(Generic[T]):
    """Values by key, each kept for `ttl` after it was loaded."""

    def __init__(self, clock: Callable[[], datetime], ttl: timedelta) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[str, _Entry[T]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """The kept value while it is fresh, else a newly loaded one (failures are not kept)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now < entry.until:
            return entry.value
        value = await load()
        self._entries[key] = _Entry(value, now + self._ttl)
        return value


class TuyaTaskBoard:
    """The maintenance tasks of the configured Tuya project."""

    def __init__(
        self,
        client: TuyaClient,
        *,
        clock: Callable[[], datetime],
        ttl: timedelta = NAMES_TTL,
    ) -> None:
        self._client = client
        self.project_id = client.project_id
        self._rooms: TimedCache[list[Room]] = TimedCache(clock, ttl)
        self._devices: TimedCache[list[Device]] = TimedCache(clock, ttl)
        self._workers: TimedCache[list[Worker]] = TimedCache(clock, ttl)

    async def tasks(self) -> list[records.Task]:
        """Every task of the project, from all pages (never cached: states move)."""
        return [task_of(task) async for task in self._client.iter_tasks()]

    async def task(self, task_id: str) -> records.TaskDetail:
        """One task with its rooms and devices."""
        return task_detail_of(await self.vendor_task(task_id))

    async def vendor_task(self, task_id: str) -> TaskDetail:
        """One task as Tuya gives it (for the alert watcher)."""
        return await self._client.get_task(task_id)

    async def workers(self) -> list[records.Worker]:
        """Every worker, kept for a few minutes."""
        return [worker_of(worker) for worker in await self.vendor_workers()]

    async def vendor_workers(self) -> list[Worker]:
        """Every worker as Tuya gives them, kept for a few minutes (for the alert watcher)."""

        async def load() -> list[Worker]:
            return [worker async for worker in self._client.iter_workers()]

        return await self._workers.get("all", load)

    async def rooms(self) -> list[records.Room]:
        """Every room of the project, kept for a few minutes."""

        async def load() -> list[Room]:
            return [room async for room in self._client.iter_rooms()]

        return [room_of(room) for room in await self._rooms.get("all", load)]

    async def devices(self, room_id: str) -> list[records.Device]:
        """The devices of one room, kept for a few minutes."""
        found = await self._devices.get(room_id, lambda: self._client.list_devices(room_id))
        return [device_of(device) for device in found]

    async def create(self, worker_id: str, rooms: Mapping[str, Sequence[str]]) -> str:
        """Creates a task; Tuya has no de-duplication, so the client never resends it."""
        relations = [
            RoomDeviceRelation(room_id=room_id, device_ids=list(device_ids))
            for room_id, device_ids in rooms.items()
        ]
        return await self._client.create_task(worker_id, relations)

    async def accept(self, task_id: str) -> None:
        """Accepts a finished task."""
        self._done(await self._client.accept_task(task_id), "acceptance")

    async def reopen(self, task_id: str) -> None:
        """Sends a task back to its worker."""
        self._done(await self._client.reopen_task(task_id), "reopen")

    async def delete(self, task_id: str) -> None:
        """Deletes a task."""
        self._done(await self._client.delete_task(task_id), "delete")

    @staticmethod
    def _done(result: bool, what: str) -> None:
        # Tuya may answer `success: true` with `result: false`: it did not do it.
        if not result:
            raise InvalidRequest(f"{what} was not carried out", vendor=TuyaClient.vendor)


class ServitlyMaintenanceLog:
    """Accepted work recorded as MAINTENANCE events on Servitly things or locations."""

    def __init__(
        self,
        client: ServitlyClient,
        *,
        targets: Mapping[str, Mapping[str, str]],
        alert_definition_id: str = "",
        thing_definition_id: str = "",
        deprecated_works: bool = False,
    ) -> None:
        self._client = client
        self._targets = {room: dict(target) for room, target in targets.items()}
        self._definition_id = alert_definition_id
        self._thing_definition_id = thing_definition_id
        self.deprecated_works = deprecated_works

    def places(self, room_ids: Sequence[str]) -> list[dict[str, str]]:
        """The distinct things or locations those rooms map to, in room order."""
        found: list[dict[str, str]] = []
        for room_id in room_ids:
            target = self._targets.get(room_id)
            if target is not None and target not in found:
                found.append(target)
        return found

    def covers(self, room_ids: Sequence[str]) -> bool:
        """Whether at least one of the rooms is mapped."""
        return bool(self.places(room_ids))

    async def maintenance_definition(self) -> str:
        """The MAINTENANCE event definition: the configured id, else looked up once."""
        if not self._definition_id:
            definition = await self._client.find_maintenance_alert_definition(
                self._thing_definition_id
            )
            self._definition_id = definition.id
        return self._definition_id

    async def record_event(
        self,
        *,
        place: Mapping[str, str],
        reference: str,
        start: datetime,
        end: datetime,
        notes: str,
    ) -> str:
        """One MAINTENANCE event on one place, tagged with the task; its id."""
        definition_id = await self.maintenance_definition()
        event = await self._client.create_historical_event(
            HistoricalEventWrite(
                alert_definition_id=definition_id,
                start_timestamp=min(start, end),
                end_timestamp=end,
                thing_id=place.get("thingId"),
                location_id=place.get("locationId"),
                notes=notes[:MAX_NOTES],
                properties={"tuyaTaskId": reference},
            )
        )
        return event.id

    async def find_event(
        self, *, place: Mapping[str, str], reference: str, end: datetime
    ) -> str | None:
        """The event of that task on that place ending at `end` (a lost answer), if any."""
        filters = HistoricalEventFilter(
            thing_id=place.get("thingId"),
            location_id=place.get("locationId"),
            event_severity=SEVERITY_MAINTENANCE,
        )
        wanted = to_epoch_millis(end)
        async for event in self._client.iter_historical_events(filters):
            tagged = (event.properties or {}).get("tuyaTaskId") == reference
            if tagged and event.end_timestamp and to_epoch_millis(event.end_timestamp) == wanted:
                return event.id
        return None

    async def record_work(
        self,
        *,
        place: Mapping[str, str],
        reference: str,
        start: datetime,
        end: datetime,
        notes: str,
    ) -> str | None:
        """The same work as a deprecated maintenance work; its id when Servitly gives one."""
        work = await self._client.create_maintenance_work(
            MaintenanceWorkWrite(
                start_timestamp=min(start, end),
                end_timestamp=end,
                type="MAINTENANCE",
                description=notes[:MAX_NOTES],
                outcome="accepted",
                thing_id=place.get("thingId"),
                location_id=place.get("locationId"),
                properties={"tuyaTaskId": reference},
            )
        )
        return work.id or None

    async def record(
        self,
        *,
        reference: str,
        room_ids: Sequence[str],
        start: datetime,
        end: datetime,
        notes: str,
    ) -> list[str]:
        """One event per mapped place (and a deprecated work each when configured)."""
        created: list[str] = []
        for place in self.places(room_ids):
            created.append(
                await self.record_event(
                    place=place, reference=reference, start=start, end=end, notes=notes
                )
            )
            if self.deprecated_works:
                work = await self.record_work(
                    place=place, reference=reference, start=start, end=end, notes=notes
                )
                if work:
                    created.append(work)
        return created
