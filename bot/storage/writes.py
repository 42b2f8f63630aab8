"""Vendor writes in flight: recorded before they leave, held by one process while it sends.

Each method is one short unit of work in its own session, committed. Taking a write to send
it is a conditional update (or `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two processes never
send the same write at once; settling it is conditional too, so it ends once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Update, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.storage.db import Sessions, upsert
from bot.storage.models import Draft, WriteRecord, WriteStatus

UNSETTLED = (WriteStatus.PENDING,)


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A write to record once another one is done."""

    command_id: str
    telegram_id: int
    vendor: str
    kind: str
    subject: str | None
    write: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Begun:
    """What `begin` found: the write to send now, or why not."""

    row: WriteRecord
    # The caller now holds the write and sends it.
    held: bool
    # Another write on the same record is still in flight (`row` is that one).
    other: bool = False


def reported_statement(row_ids: Sequence[int], now: datetime) -> Update:
    """Marks writes as told, for a transaction of its caller's (cluster mode: the one that
    stores the update whose handler told them)."""
    return (
        update(WriteRecord)
        .where(WriteRecord.id.in_(list(row_ids)), WriteRecord.reported_at.is_(None))
        .values(reported_at=now, owner=None)
    )


class WriteRecords:
    """The `vendor_writes` table."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def begin(
        self,
        *,
        command_id: str,
        telegram_id: int,
        vendor: str,
        kind: str,
        subject: str | None,
        write: dict[str, Any],
        owner: str,
        now: datetime,
        lease_until: datetime,
        draft_job: str | None = None,
    ) -> Begun:
        """Records a write (or takes up the one recorded under this command id) to send it.

        In the same transaction the user's draft `draft_job` is deleted: from now on the write
        is what holds their input. A write another live process holds is left to it.
        """
        try:
            async with self._sessions.begin() as session:
                row = await session.scalar(
                    select(WriteRecord)
                    .where(WriteRecord.command_id == command_id)
                    .with_for_update()
                )
                if row is None and subject is not None:
                    busy = await session.scalar(
                        select(WriteRecord)
                        .where(
                            WriteRecord.subject == subject,
                            WriteRecord.status.in_(UNSETTLED),
                        )
                        .order_by(WriteRecord.id)
                        .limit(1)
                    )
                    if busy is not None:
                        return Begun(busy, held=False, other=True)
                if row is None:
                    row = WriteRecord(
                        command_id=command_id,
                        telegram_id=telegram_id,
                        vendor=vendor,
                        kind=kind,
                        subject=subject,
                        write=write,
                        status=WriteStatus.PENDING,
                        maybe_sent=False,
                        attempts=1,
                        next_attempt_at=lease_until,
                        owner=owner,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(row)
                elif row.status is WriteStatus.DONE or (
                    # Someone is sending it right now (even in this process): left to them.
                    row.status is WriteStatus.PENDING
                    and row.owner is not None
                    and row.next_attempt_at > now
                ):
                    return Begun(row, held=False)
                else:
                    # Sent again by the user: after a refusal it is their new version
                    # (nothing was done); otherwise it is taken up as it stands, so a write
                    # whose answer may have been lost is looked for first.
                    if row.status is WriteStatus.FAILED:
                        row.kind, row.subject, row.write = kind, subject, write
                        row.maybe_sent = False
                    row.status = WriteStatus.PENDING
                    row.attempts += 1
                    row.owner = owner
                    row.next_attempt_at = lease_until
                    row.updated_at = now
                if draft_job is not None:
                    await session.execute(
                        delete(Draft).where(
                            Draft.telegram_id == telegram_id, Draft.job == draft_job
                        )
                    )
                return Begun(row, held=True)
        except IntegrityError:
            # The same command recorded at this very moment by another process (found by the
            # commit at the block's end, or a flush before it): theirs.
            taken = await self.get(command_id)
            if taken is None:
                raise
            return Begun(taken, held=False)

    async def claim_due(
        self, *, now: datetime, owner: str, lease_until: datetime, limit: int = 20
    ) -> list[WriteRecord]:
        """Takes the writes waiting for a retry whose time has come (or whose holder's lease
        ran out), counting the attempt."""
        async with self._sessions.begin() as session:
            rows = list(
                await session.scalars(
                    select(WriteRecord)
                    .where(
                        WriteRecord.status == WriteStatus.PENDING,
                        WriteRecord.next_attempt_at <= now,
                    )
                    .order_by(WriteRecord.next_attempt_at, WriteRecord.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            self._hold(rows, owner=owner, now=now, lease_until=lease_until)
            return rows

    async def claim_orphans(
        self,
        *,
        now: datetime,
        owner: str,
        lease_until: datetime,
        gone: Callable[[str], bool],
        limit: int = 100,
    ) -> list[WriteRecord]:
        """Takes the writes held by processes that are gone (`gone(owner)`), lease or not."""
        async with self._sessions.begin() as session:
            rows = [
                row
                for row in await session.scalars(
                    select(WriteRecord)
                    .where(
                        WriteRecord.status == WriteStatus.PENDING,
                        WriteRecord.owner.is_not(None),
                        WriteRecord.owner != owner,
                    )
                    .order_by(WriteRecord.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                if row.owner is not None and gone(row.owner)
            ]
            self._hold(rows, owner=owner, now=now, lease_until=lease_until)
            return rows

    @staticmethod
    def _hold(
        rows: list[WriteRecord], *, owner: str, now: datetime, lease_until: datetime
    ) -> None:
        for row in rows:
            row.attempts += 1
            row.owner = owner
            row.next_attempt_at = lease_until
            row.updated_at = now

    async def update_write(self, row_id: int, owner: str, write: dict[str, Any]) -> None:
        """Keeps what the write learned before it was sent (e.g. the ids known just before)."""
        await self._change(row_id, owner, write=write)

    async def sending(self, row_id: int, owner: str) -> None:
        """The write is about to leave: from now on its answer may be lost."""
        await self._change(row_id, owner, maybe_sent=True)

    async def release(
        self,
        row_id: int,
        owner: str,
        *,
        maybe_sent: bool,
        error: str,
        next_attempt_at: datetime,
    ) -> None:
        """The attempt did not settle it: it waits for `next_attempt_at`. `error` is no secret."""
        await self._change(
            row_id,
            owner,
            maybe_sent=maybe_sent,
            last_error=error,
            next_attempt_at=next_attempt_at,
            release=True,
        )

    async def settle(
        self,
        row_id: int,
        status: WriteStatus,
        *,
        now: datetime,
        record_id: str | None = None,
        error: str | None = None,
        then: Sequence[FollowUp] = (),
        reporter: str | None = None,
        report_by: datetime | None = None,
    ) -> bool:
        """Ends the write; False when it had ended already (so its end is told once).

        With `reporter`, that process's handler tells the user, and the write counts as told
        only once `reported` says so: until then `reporter` holds it until `report_by` (which
        its handler moves on while it runs, `hold_unreported`), and afterwards (or when the
        reporter is gone) `claim_unreported` hands it to the journal.
        Without, the caller tells the user now and it counts as told at once.

        `then` are the writes that follow it, recorded in the same transaction: due at once,
        held by nobody, so a process that stops before sending them leaves them to the next.
        """
        told_later = reporter is not None
        async with self._sessions.begin() as session:
            settled_id = await session.scalar(
                update(WriteRecord)
                .where(WriteRecord.id == row_id, WriteRecord.status == WriteStatus.PENDING)
                .values(
                    status=status,
                    record_id=record_id,
                    last_error=error,
                    owner=reporter,
                    next_attempt_at=report_by if told_later else WriteRecord.next_attempt_at,
                    reported_at=None if told_later else now,
                    updated_at=now,
                )
                .returning(WriteRecord.id)
            )
            settled = settled_id is not None
            if settled and then:
                await session.execute(
                    upsert(
                        session.get_bind().dialect.name,
                        WriteRecord,
                        [
                            {
                                "command_id": follow.command_id,
                                "telegram_id": follow.telegram_id,
                                "vendor": follow.vendor,
                                "kind": follow.kind,
                                "subject": follow.subject,
                                "write": follow.write,
                                "status": WriteStatus.PENDING,
                                "maybe_sent": False,
                                "attempts": 0,
                                "next_attempt_at": now,
                                "owner": None,
                                "created_at": now,
                                "updated_at": now,
                            }
                            for follow in then
                        ],
                        key=["command_id"],
                        update=[],
                    )
                )
            return settled

    async def claim_unreported(
        self,
        *,
        now: datetime,
        owner: str,
        lease_until: datetime,
        gone: Callable[[str], bool],
        limit: int = 100,
    ) -> list[WriteRecord]:
        """Takes the writes that ended but were never told: their reporter is gone
        (`gone(owner)`) or its time to tell them ran out.

        Only those are locked: a write a live handler still holds is neither locked (its
        holder's renewal and marking it told never wait on this) nor counted in `limit` (so
        many of them cannot keep a due one waiting)."""
        unreported = (
            WriteRecord.reported_at.is_(None),
            WriteRecord.status != WriteStatus.PENDING,
        )
        async with self._sessions.begin() as session:
            holders = await session.scalars(
                select(WriteRecord.owner)
                .where(
                    *unreported,
                    WriteRecord.owner.is_not(None),
                    WriteRecord.owner != owner,
                    WriteRecord.next_attempt_at > now,
                )
                .distinct()
            )
            gone_holders = [holder for holder in holders if holder is not None and gone(holder)]
            rows = list(
                await session.scalars(
                    select(WriteRecord)
                    .where(
                        *unreported,
                        or_(
                            WriteRecord.owner.is_(None),
                            WriteRecord.next_attempt_at <= now,
                            WriteRecord.owner.in_(gone_holders),
                        ),
                    )
                    .order_by(WriteRecord.next_attempt_at, WriteRecord.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.owner = owner
                row.next_attempt_at = lease_until
            return rows

    async def hold_unreported(self, row_ids: Sequence[int], *, owner: str, until: datetime) -> int:
        """`owner`'s handler is still telling how these writes ended: it holds them until
        `until`. Only those it still holds (not told yet, not taken over); how many."""
        if not row_ids:
            return 0
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(WriteRecord)
                .where(
                    WriteRecord.id.in_(list(row_ids)),
                    WriteRecord.owner == owner,
                    WriteRecord.reported_at.is_(None),
                    WriteRecord.status != WriteStatus.PENDING,
                )
                .values(next_attempt_at=until)
            )
            return cast(CursorResult[Any], result).rowcount

    async def reported(self, row_ids: Sequence[int], *, now: datetime) -> None:
        """The users were told how these writes ended."""
        if not row_ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(reported_statement(row_ids, now))

    async def _change(
        self, row_id: int, holder: str, *, release: bool = False, **values: Any
    ) -> None:
        """Changes a write only while `holder` holds it; `release` lets it go."""
        if release:
            values["owner"] = None
        async with self._sessions.begin() as session:
            await session.execute(
                update(WriteRecord)
                .where(WriteRecord.id == row_id, WriteRecord.owner == holder)
                .values(**values)
            )

    async def get(self, command_id: str) -> WriteRecord | None:
        """The write recorded under that command id, or None."""
        async with self._sessions.begin() as session:
            query = select(WriteRecord).where(WriteRecord.command_id == command_id)
            return await session.scalar(query)

    async def all(self) -> list[WriteRecord]:
        """Every write, oldest first (tests and the operator's eyes)."""
        async with self._sessions.begin() as session:
            query = select(WriteRecord).order_by(WriteRecord.id)
            return list(await session.scalars(query))
