"""The watcher's eyes: it looks at the vendors and at what the bot last saw of them.

Each source is read whole or not at all: a source that fails (vendor down, rate-limited,
refusing our credentials) is skipped for that poll, its old snapshot stays and nothing is taken
for gone. What a poll saw is turned into an `Observed` by the pure rules (`bot.alert_kinds`)
and stored back here, only where a record still stands as the poll read it.

Every source is one community's (the deployment may run several):

- Repairs: the Akubela manager list of the community's project (its manager's login).
- Bookings: each linked residence of the community, through one of its residents' desks.
- Tasks: the community's Tuya task list, with its workers; a new task's rooms are looked up once.
- The bot's own writes: the written records read back, for an announcement at once.

What the bot saw is kept with the community it belongs to (`community` in the snapshot; rows
from before there were several communities are the first's), so one community's poll never
takes another's records for gone.
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
from conversations.community import FIRST_COMMUNITY, Community
from conversations.domain import Role
from conversations.ports import OwnWrite

logger = logging.getLogger(__name__)

# Markers of sources seen at least once live beside the records, under our own name.
MARKER_VENDOR = "concierge"
MARKER_KIND = "scope"
# Where the snapshot keeps whose record it is.
COMMUNITY = "community"


def source(name: str, community: Community) -> str:
    """A source's marker: the first community's under the name it had before there were
    several (so an upgrade does not take its records for a first look), others' by id."""
    return name if community.id == FIRST_COMMUNITY else f"{name}@{community.id}"


def community_of_record(record: SeenRecord) -> int:
    """The community a kept record belongs to."""
    value = record.snapshot.get(COMMUNITY)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else FIRST_COMMUNITY


def owned(records: list[SeenRecord], community: Community) -> list[SeenRecord]:
    """The records, each marked as that community's."""
    for record in records:
        record.snapshot[COMMUNITY] = community.id
    return records


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
        self,
        vendor: str,
        kind: str,
        record_ids: Iterable[str] | None = None,
        community: Community | None = None,
    ) -> dict[str, SeenRecord]:
        """What the bot last saw of those records (all of that vendor and kind without ids),
        only the community's when one is named."""
        rows = await self._services.storage.vendor_states.get_many(vendor, kind, record_ids)
        seen = {rid: SeenRecord(rid, row.state, row.snapshot) for rid, row in rows.items()}
        if community is None:
            return seen
        return {rid: r for rid, r in seen.items() if community_of_record(r) == community.id}

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

    async def directory(self, community: Community) -> Directory:
        """Who lives where in the community, and who manages it: its managers are those who
        serve it and manage one of its projects."""
        services = self._services
        residents: dict[str, list[int]] = defaultdict(list)
        flats: dict[str, str] = {}
        for link in await services.accounts.residents():
            for residence in link.residences:
                if isinstance(residence, dict) and residence.get("residence_id"):
                    home = services.community_of_residence(residence)
                    if home is None or home.id != community.id:
                        continue
                    rid = str(residence["residence_id"])
                    residents[rid].append(link.telegram_id)
                    flat = " ".join(
                        str(residence.get(part) or "").strip()
                        for part in ("building_name", "room_name")
                    ).strip()
                    if flat:
                        flats[rid] = flat
        managers: set[int] = set()
        for project in {community.akubela_project_id, community.tuya_project_id} - {""}:
            managers.update(await services.accounts.managers_of(project))
        served = await services.accounts.staff_communities()
        managers = {m for m in managers if community.id in served.get(m, frozenset())}
        return Directory(
            residents={rid: tuple(ids) for rid, ids in residents.items()},
            managers=tuple(sorted(managers)),
            flats=flats,
        )

    async def by_username(
        self, workers: Iterable[Worker], community: Community
    ) -> dict[str, tuple[int, ...]]:
        """Linked workers' Telegram accounts by Tuya username, those who serve the community:
        tasks name their worker by username, links name the Tuya worker id."""
        accounts = self._services.accounts
        served = await accounts.staff_communities()
        linked: dict[str, tuple[int, ...]] = {}
        for worker in workers:
            ids = [
                telegram_id
                for telegram_id in await accounts.telegram_ids_of_worker(worker.worker_id)
                if community.id in served.get(telegram_id, frozenset())
            ]
            if ids and worker.username:
                linked[worker.username] = tuple(ids)
        return linked

    async def readers_of_several(self) -> set[int]:
        """Who serves more than one community, so their alerts name the community: staff bound
        to several, and administrators of a deployment of several."""
        services = self._services
        served = await services.accounts.staff_communities()
        several = {telegram_id for telegram_id, ids in served.items() if len(ids) > 1}
        if len(services.communities()) > 1:
            several |= set(services.settings.admin_telegram_ids)
            several |= set(await services.accounts.with_role(Role.ADMIN))
        return several

    async def linked_workers(self, community: Community) -> dict[str, tuple[int, ...]] | None:
        """The community's task board's workers who are linked, by username; None when it
        cannot say now."""
        try:
            workers = await self._services.vendors.task_board(community.id).vendor_workers()
        except ApiError as exc:
            logger.info("alerts: workers unknown now (%s); next poll", type(exc).__name__)
            return None
        return await self.by_username(workers, community)

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

    async def repairs(
        self, community: Community, markers: Mapping[str, Any], now: datetime
    ) -> Observed | None:
        """The community's repairs; None when its manager list cannot be read now."""
        vendors = self._services.vendors
        access = vendors.access(community.id)
        try:
            items = [
                item
                async for item in vendors.akubela(
                    access.akubela_base_url
                ).iter_project_maintenance(
                    vendors.manager(community.id), community.akubela_project_id
                )
            ]
        except ApiError as exc:
            logger.warning(
                "alerts: the Akubela manager list of community %s failed (%s); next poll",
                community.id,
                type(exc).__name__,
            )
            return None
        current = owned([repair_record(item) for item in items if item.maintenance_id], community)
        previous = await self.previous("akubela", "repair", community=community)
        return observe(previous, current, source("akubela.repair", community), markers, now)

    async def bookings(
        self, community: Community, directory: Directory, markers: Mapping[str, Any], now: datetime
    ) -> list[Observed]:
        """Each linked residence's bookings (the directory's are the community's); a residence
        none of whose desks answers is left out."""
        services = self._services
        previous_all = await self.previous("akubela", "booking", community=community)
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
            current = owned(
                [booking_record(b, residence_id) for b in bookings if b.booking_id], community
            )
            marker = f"akubela.booking.{residence_id}"
            results.append(observe(by_residence[residence_id], current, marker, markers, now))
        return results

    async def tasks(
        self, community: Community, markers: Mapping[str, Any], now: datetime
    ) -> tuple[Observed, dict[str, tuple[int, ...]]] | None:
        """The community's tasks and the linked workers by username; None when its task list
        cannot be read now."""
        tuya = self._services.vendors.tuya(community.tuya_project_id)
        try:
            tasks = [task async for task in tuya.iter_tasks()]
            workers = [worker async for worker in tuya.iter_workers()]
        except ApiError as exc:
            logger.warning(
                "alerts: the Tuya task list of community %s failed (%s); next poll",
                community.id,
                type(exc).__name__,
            )
            return None
        linked = await self.by_username(workers, community)
        current = owned([task_record(task) for task in tasks if task.task_id], community)
        previous = await self.previous("tuya", "task", community=community)
        marker = source("tuya.task", community)
        if marker in markers:
            # The list does not say where a task is: a new one's rooms are looked up once.
            for record in current:
                if record.record_id not in previous:
                    record.snapshot["rooms"] = await self._rooms_of(community, record.record_id)
        return observe(previous, current, marker, markers, now), linked

    async def _rooms_of(self, community: Community, task_id: str) -> str:
        """The names of a task's rooms, or "" when they cannot be read now."""
        board = self._services.vendors.task_board(community.id)
        try:
            detail = await board.task(task_id)
            names = {room.id: room.name for room in await board.rooms()}
        except ApiError as exc:
            logger.info("alerts: rooms of a new task unknown (%s)", type(exc).__name__)
            return ""
        return ", ".join(names.get(r.room_id) or r.room_id for r in detail.rooms)

    # ---- the bot's own writes --------------------------------------------------------------

    async def community_of_write(self, write: OwnWrite) -> Community | None:
        """The community a write of the bot's was made in: a task write names it, a resident's
        follows from the residence it was made for (None: a project none of ours)."""
        services = self._services
        named = write.payload.get("community_id")
        if isinstance(named, int):
            return services.community(named)
        residence_id = str(write.payload.get("residence_id") or "")
        link = await services.accounts.resident(write.telegram_id)
        for residence in link.residences if link is not None else ():
            if isinstance(residence, dict) and str(residence.get("residence_id")) == residence_id:
                return services.community_of_residence(residence)
        return services.communities()[0]

    async def records_after(
        self, write: OwnWrite, community: Community
    ) -> tuple[str, str, list[SeenRecord], list[str]] | None:
        """The written records as they stand now (none for one deleted): vendor, kind,
        records and every id the write touched; None when that cannot be learned now."""
        services = self._services
        payload = write.payload
        ids = [rid for rid in write.record_ids if rid]
        operation = write.operation
        try:
            if operation.startswith("tuya.task."):
                board = services.vendors.task_board(community.id)
                details = [await board.vendor_task(tid) for tid in ids]
                facts: dict[str, Any] = {k: str(payload[k]) for k in STICKY if payload.get(k)}
                facts[COMMUNITY] = community.id
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
                return "akubela", "repair", owned(current, community), ids
            if operation.startswith("akubela.repair."):
                return "akubela", "repair", [], ids  # a resident's repair goes by being deleted
            if operation.startswith("akubela.booking."):
                listed = {b.booking_id: b for b in await desk.vendor_bookings()}
                current = [
                    booking_record(listed[rid], residence_id) for rid in ids if rid in listed
                ]
                return "akubela", "booking", owned(current, community), ids
        except ApiError as exc:
            logger.info("alerts: %s could not be read back (%s)", operation, type(exc).__name__)
            return await self._as_written(write, ids, community)
        logger.warning("alerts: no announcement for %s", operation)
        return None

    async def _as_written(
        self, write: OwnWrite, ids: list[str], community: Community
    ) -> tuple[str, str, list[SeenRecord], list[str]] | None:
        """A task that cannot be read back is in the state its write leads to (Tuya refuses
        the write otherwise), with what was known of it, so the worker still hears now (and a
        reopen's reason is not lost); anything else waits for the next poll."""
        after = WRITE_LEADS_TO.get(write.operation)
        if after is None:
            return None
        rows = await self._services.storage.vendor_states.get_many("tuya", "task", ids)
        facts: dict[str, Any] = {
            k: str(v) for k, v in write.payload.items() if k != "reason" and v
        }
        facts[COMMUNITY] = community.id
        current = [
            SeenRecord(rid, after, {**(rows[rid].snapshot if rid in rows else {}), **facts})
            for rid in ids
        ]
        return "tuya", "task", current, ids
