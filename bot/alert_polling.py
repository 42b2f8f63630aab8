"""The watcher's eyes: it looks at the vendors and at what the bot last saw of them.

Each source is read whole or not at all: a source that fails (vendor down, rate-limited,
refusing our credentials) is skipped for that poll, its old snapshot stays and nothing is taken
for gone. What a poll saw is turned into an `Observed` by the pure rules (`bot.alert_kinds`)
and stored back here, only where a record still stands as the poll read it.

- Repairs: the Akubela manager list of the project (manager password grant).
- Bookings: each linked residence's own list, through one of its residents' desks.
- Tasks: the Tuya task list, with its workers; a new task's rooms are looked up once.
- The bot's own writes: the written records read back, for an announcement at once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from api.errors import ApiError
from api.tuya_models import Worker
from bot.alert_kinds import (
    STICKY,
    WRITE_LEADS_TO,
    Change,
    ChangeKind,
    Directory,
    Observed,
    booking_record,
    observe,
    repair_record,
    task_record,
)
from bot.services import Services
from bot.storage.repositories import SeenRecord
from conversations.ports import OwnWrite

logger = logging.getLogger(__name__)

# Markers of sources seen at least once live beside the records, under our own name.
MARKER_VENDOR = "concierge"
MARKER_KIND = "scope"


class VendorPolling:
    """Reads the vendors and `vendor_states`; writes only `vendor_states`."""

    __slots__ = ("_services",)

    def __init__(self, services: Services) -> None:
        self._services = services

    # ---- what the bot knows ----------------------------------------------------------------

    async def markers(self) -> Mapping[str, Any]:
        """The sources looked at before, by marker."""
        return await self._services.storage.vendor_states.get_many(MARKER_VENDOR, MARKER_KIND)

    async def previous(
        self, vendor: str, kind: str, record_ids: Iterable[str] | None = None
    ) -> dict[str, SeenRecord]:
        """What the bot last saw of those records (all of that vendor and kind without ids)."""
        rows = await self._services.storage.vendor_states.get_many(vendor, kind, record_ids)
        return {rid: SeenRecord(rid, row.state, row.snapshot) for rid, row in rows.items()}

    async def store(
        self,
        observed: Sequence[tuple[str, str, Observed]],
        markers: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """Keeps what a poll saw, and marks the sources it looked at for the first time."""
        vendor_states = self._services.storage.vendor_states
        for vendor, kind, seen in observed:
            # Only where the record still stands as this poll found it: a write the bot
            # announced meanwhile is newer than what the poll saw, and stays.
            await vendor_states.put_many(vendor, kind, seen.writes, now, expected=seen.expected)
        new_markers = [
            SeenRecord(seen.marker, "seen", {})
            for _, _, seen in observed
            if seen.marker not in markers
        ]
        await vendor_states.put_many(MARKER_VENDOR, MARKER_KIND, new_markers, now)

    async def store_announced(
        self, vendor: str, kind: str, records: Sequence[SeenRecord], now: datetime
    ) -> None:
        """Keeps the records a write of the bot's left, as announced."""
        await self._services.storage.vendor_states.put_many(vendor, kind, records, now)

    async def acknowledged(self, task_ids: Iterable[str]) -> set[str]:
        """Which of those tasks a worker has acknowledged."""
        found = await self._services.storage.task_acknowledgements.get_many(task_ids)
        return set(found)

    # ---- who is who ------------------------------------------------------------------------

    async def directory(self) -> Directory:
        """Who lives where, which worker is whom, who manages the community."""
        services = self._services
        residents: dict[str, list[int]] = defaultdict(list)
        flats: dict[str, str] = {}
        for link in await services.accounts.residents():
            for residence in link.residences:
                if isinstance(residence, dict) and residence.get("residence_id"):
                    rid = str(residence["residence_id"])
                    residents[rid].append(link.telegram_id)
                    flat = " ".join(
                        str(residence.get(part) or "").strip()
                        for part in ("building_name", "room_name")
                    ).strip()
                    if flat:
                        flats[rid] = flat
        settings = services.settings
        managers: set[int] = set()
        for project in {settings.akubela_project_id, settings.tuya_project_id}:
            managers.update(await services.accounts.managers_of(project))
        return Directory(
            residents={rid: tuple(ids) for rid, ids in residents.items()},
            managers=tuple(sorted(managers)),
            flats=flats,
        )

    async def by_username(self, workers: Iterable[Worker]) -> dict[str, tuple[int, ...]]:
        """Linked workers' Telegram accounts by Tuya username: tasks name their worker by
        username, links name the Tuya worker id."""
        linked: dict[str, tuple[int, ...]] = {}
        for worker in workers:
            ids = await self._services.accounts.telegram_ids_of_worker(worker.worker_id)
            if ids and worker.username:
                linked[worker.username] = tuple(ids)
        return linked

    async def linked_workers(self) -> dict[str, tuple[int, ...]] | None:
        """The task board's workers who are linked, by username; None when it cannot say now."""
        try:
            workers = await self._services.task_board.vendor_workers()
        except ApiError as exc:
            logger.info("alerts: workers unknown now (%s); next poll", type(exc).__name__)
            return None
        return await self.by_username(workers)

    async def photos(self, changes: Iterable[Change]) -> dict[str, list[str]]:
        """Photos residents sent with new repairs through the bot, by repair id."""
        found: dict[str, list[str]] = {}
        for change in changes:
            if change.kind is not ChangeKind.NEW:
                continue
            residence_id = str(change.snapshot.get("residence_id", ""))
            report = await self._services.repair_reports.get(
                change.record_id, residence_id=residence_id
            )
            if report is not None and report.photo_file_ids:
                found[change.record_id] = [str(p) for p in report.photo_file_ids]
        return found

    # ---- the sources -----------------------------------------------------------------------

    async def repairs(self, markers: Mapping[str, Any], now: datetime) -> Observed | None:
        """The project's repairs; None when the manager list cannot be read now."""
        services = self._services
        vendors = services.vendors
        try:
            # Every community's list: a repair of another community is not gone from this one.
            items = [
                item
                for community in services.communities()
                async for item in vendors.akubela(
                    vendors.access(community.id).akubela_base_url
                ).iter_project_maintenance(
                    vendors.manager(community.id), community.akubela_project_id
                )
            ]
        except ApiError as exc:
            logger.warning(
                "alerts: the Akubela manager list failed (%s); next poll", type(exc).__name__
            )
            return None
        current = [repair_record(item) for item in items if item.maintenance_id]
        previous = await self.previous("akubela", "repair")
        return observe(previous, current, "akubela.repair", markers, now)

    async def bookings(
        self, directory: Directory, markers: Mapping[str, Any], now: datetime
    ) -> list[Observed]:
        """Each linked residence's bookings; a residence none of whose desks answers is left
        out."""
        services = self._services
        previous_all = await self.previous("akubela", "booking")
        by_residence: dict[str, dict[str, SeenRecord]] = defaultdict(dict)
        for rid, record in previous_all.items():
            by_residence[str(record.snapshot.get("residence_id", ""))][rid] = record
        results: list[Observed] = []
        for residence_id, people in directory.residents.items():
            bookings = None
            for telegram_id in people:
                desk = await services.desk_for_residence(telegram_id, residence_id)
                if desk is None:
                    continue
                try:
                    bookings = await desk.vendor_bookings()
                except ApiError as exc:
                    logger.warning(
                        "alerts: bookings of a residence failed (%s); next poll",
                        type(exc).__name__,
                    )
                    continue
                break
            if bookings is None:
                continue
            current = [booking_record(b, residence_id) for b in bookings if b.booking_id]
            marker = f"akubela.booking.{residence_id}"
            results.append(observe(by_residence[residence_id], current, marker, markers, now))
        return results

    async def tasks(
        self, markers: Mapping[str, Any], now: datetime
    ) -> tuple[Observed, dict[str, tuple[int, ...]]] | None:
        """The project's tasks and the linked workers by username; None when the task list
        cannot be read now."""
        services = self._services
        try:
            tasks = [task async for task in services.tuya.iter_tasks()]
            workers = [worker async for worker in services.tuya.iter_workers()]
        except ApiError as exc:
            logger.warning("alerts: the Tuya task list failed (%s); next poll", type(exc).__name__)
            return None
        linked = await self.by_username(workers)
        current = [task_record(task) for task in tasks if task.task_id]
        previous = await self.previous("tuya", "task")
        if "tuya.task" in markers:
            # The list does not say where a task is: a new one's rooms are looked up once.
            for record in current:
                if record.record_id not in previous:
                    record.snapshot["rooms"] = await self._rooms_of(record.record_id)
        return observe(previous, current, "tuya.task", markers, now), linked

    async def _rooms_of(self, task_id: str) -> str:
        """The names of a task's rooms, or "" when they cannot be read now."""
        board = self._services.task_board
        try:
            detail = await board.task(task_id)
            names = {room.id: room.name for room in await board.rooms()}
        except ApiError as exc:
            logger.info("alerts: rooms of a new task unknown (%s)", type(exc).__name__)
            return ""
        return ", ".join(names.get(r.room_id) or r.room_id for r in detail.rooms)

    # ---- the bot's own writes --------------------------------------------------------------

    async def records_after(
        self, write: OwnWrite
    ) -> tuple[str, str, list[SeenRecord], list[str]] | None:
        """The written records as they stand now (none for one deleted): vendor, kind,
        records and every id the write touched; None when that cannot be learned now."""
        services = self._services
        payload = write.payload
        ids = [rid for rid in write.record_ids if rid]
        operation = write.operation
        try:
            if operation.startswith("tuya.task."):
                details = [await services.task_board.vendor_task(tid) for tid in ids]
                facts = {k: str(payload[k]) for k in STICKY if payload.get(k)}
                current = [
                    SeenRecord(d.task_id, d.status, {**task_record(d).snapshot, **facts})
                    for d in details
                ]
                return "tuya", "task", current, ids
            residence_id = str(payload.get("residence_id") or "")
            desk = await services.desk_for_residence(write.telegram_id, residence_id)
            if desk is None:
                return None
            if operation == "akubela.repair.create":
                current = [
                    repair_record(await desk.vendor_repair(rid), residence_id) for rid in ids
                ]
                return "akubela", "repair", current, ids
            if operation.startswith("akubela.repair."):
                return "akubela", "repair", [], ids  # a resident's repair goes by being deleted
            if operation.startswith("akubela.booking."):
                listed = {b.booking_id: b for b in await desk.vendor_bookings()}
                current = [
                    booking_record(listed[rid], residence_id) for rid in ids if rid in listed
                ]
                return "akubela", "booking", current, ids
        except ApiError as exc:
            logger.info("alerts: %s could not be read back (%s)", operation, type(exc).__name__)
            return await self._as_written(write, ids)
        logger.warning("alerts: no announcement for %s", operation)
        return None

    async def _as_written(
        self, write: OwnWrite, ids: list[str]
    ) -> tuple[str, str, list[SeenRecord], list[str]] | None:
        """A task that cannot be read back is in the state its write leads to (Tuya refuses
        the write otherwise), with what was known of it, so the worker still hears now (and a
        reopen's reason is not lost); anything else waits for the next poll."""
        after = WRITE_LEADS_TO.get(write.operation)
        if after is None:
            return None
        rows = await self._services.storage.vendor_states.get_many("tuya", "task", ids)
        facts = {k: str(v) for k, v in write.payload.items() if k != "reason" and v}
        current = [
            SeenRecord(rid, after, {**(rows[rid].snapshot if rid in rows else {}), **facts})
            for rid in ids
        ]
        return "tuya", "task", current, ids
