"""Small repositories: each method is one short unit of work in its own transaction,
`async with sessions.begin() as session:`, committed when the block ends."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from bot.storage import per_update
from bot.storage.accounts import Accounts, Invites, drafts_key
from bot.storage.columns import utcnow
from bot.storage.communities import Communities
from bot.storage.db import Sessions, create_engine, make_session_factory, upsert, upsert_one
from bot.storage.models import (
    AlertStatus,
    AuditEntry,
    Draft,
    SentAlert,
    TaskAcknowledgement,
    TelegramUser,
    VendorState,
)
from bot.storage.oauth_states import OAuthStates
from bot.storage.repair_reports import RepairReports
from bot.storage.writes import WriteRecords
from conversations.domain import Role

# Rows per statement in bulk upserts: well under SQLite's limit on bound parameters.
_CHUNK = 500
MAX_KEY_LENGTH = 255  # sent_alerts.dedupe_key


class UnknownUser(LookupError):
    """No Telegram user with that id has been stored."""


class UnknownRecord(LookupError):
    """No row with that id exists."""


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


class _Repository:
    __slots__ = ("_sessions",)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions


def storable_key(key: str) -> str:
    """The key as the column holds it: a vendor's very long state or id is hashed to fit."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return key[: MAX_KEY_LENGTH - len(digest) - 1] + "#" + digest


@functools.cache
def _meeting(dialect: str, *, renames: bool) -> ExecutableReturnsRows:
    # Built once per dialect and kind: every /start and first message makes it.
    statement = upsert_one(
        dialect,
        TelegramUser,
        ("telegram_id", "language", "role", "display_name", "created_at", "updated_at"),
        key=("telegram_id",),
        update=("display_name", "updated_at") if renames else (),
        when_changed=("display_name",) if renames else (),
    ).returning(TelegramUser)
    return select(TelegramUser).from_statement(statement)


class Users(_Repository):
    """Telegram users: who they are, how they want to be spoken to, what they may do."""

    __slots__ = ()

    async def get(self, telegram_id: int) -> TelegramUser | None:
        """The stored user, or None."""
        async with self._sessions.begin() as session:
            return await session.get(TelegramUser, telegram_id)

    async def get_many(self, telegram_ids: Iterable[int]) -> dict[int, TelegramUser]:
        """The stored users among these ids, by id."""
        ids = sorted(set(telegram_ids))
        found: dict[int, TelegramUser] = {}
        async with self._sessions.begin() as session:
            for start in range(0, len(ids), _CHUNK):
                query = select(TelegramUser).where(
                    TelegramUser.telegram_id.in_(ids[start : start + _CHUNK])
                )
                found.update((row.telegram_id, row) for row in await session.scalars(query))
        return found

    async def get_or_create(
        self, telegram_id: int, *, language: str = "en", display_name: str | None = None
    ) -> TelegramUser:
        """The user, stored on first contact; a changed display name is kept up to date."""
        now = utcnow()
        values = {
            "telegram_id": telegram_id,
            "language": language,
            "role": Role.RESIDENT,
            "display_name": display_name or "",
            "created_at": now,
            "updated_at": now,
        }
        async with self._sessions.begin() as session:
            # One statement in the usual cases (a new user, a changed name): it stores or
            # renames and returns the row. The first contact decides the language and role; a
            # known user whose name is unchanged is left as is (no row back), and read.
            renames = display_name is not None
            stored: TelegramUser | None = await session.scalar(
                _meeting(_dialect(session), renames=renames), values
            )
            if stored is not None:
                return stored
            return await session.get_one(TelegramUser, telegram_id)

    async def _set(self, telegram_id: int, **values: Any) -> None:
        async with self._sessions.begin() as session:
            changed = await session.scalar(
                update(TelegramUser)
                .where(TelegramUser.telegram_id == telegram_id)
                .values(**values, updated_at=utcnow())
                .returning(TelegramUser.telegram_id)
            )
            if changed is None:
                raise UnknownUser(f"no Telegram user {telegram_id}")

    async def set_language(self, telegram_id: int, language: str) -> None:
        """Remembers the user's language ("en", "zh")."""
        await self._set(telegram_id, language=language)

    async def set_time_zone(self, telegram_id: int, time_zone: str | None) -> None:
        """Remembers the user's IANA time zone; None means the community's."""
        await self._set(telegram_id, time_zone=time_zone)

    async def set_role(self, telegram_id: int, role: Role) -> None:
        """Gives the user a role."""
        await self._set(telegram_id, role=role)

    async def set_blocked(self, telegram_id: int, at: datetime | None) -> None:
        """Records that the user blocked the bot (or, with None, that they came back)."""
        await self._set(telegram_id, blocked_at=at)

    async def set_quiet_hours(
        self, telegram_id: int, start: time | None, end: time | None
    ) -> None:
        """Hours in which alerts wait; both None turns quiet hours off."""
        if (start is None) != (end is None):
            raise ValueError("quiet hours need both a start and an end, or neither")
        await self._set(telegram_id, quiet_hours_start=start, quiet_hours_end=end)


_DRAFT_COLUMNS = ("telegram_id", "job", "data", "updated_at")
_DRAFT_KEY = ("telegram_id", "job")
# Built once: every /cancel and every finished flow runs it.
_DRAFT_DELETE = delete(Draft).where(
    Draft.telegram_id == bindparam("telegram_id"), Draft.job == bindparam("job")
)


class Drafts(_Repository):
    """What a user typed in a job, saved at once so a crash loses no input."""

    __slots__ = ()

    async def save(self, telegram_id: int, job: str, data: dict[str, Any]) -> None:
        """Stores the draft (one upsert, committed before returning)."""
        row = {"telegram_id": telegram_id, "job": job, "data": data, "updated_at": utcnow()}
        async with self._sessions.begin() as session:
            statement = upsert_one(_dialect(session), Draft, _DRAFT_COLUMNS, key=_DRAFT_KEY)
            await session.execute(statement, row)

    async def load(self, telegram_id: int, job: str) -> dict[str, Any] | None:
        """The saved draft, or None; from the update's scope when who the user is was read in
        it (with their drafts) and nothing was written since."""
        found, drafts = per_update.recall(drafts_key(telegram_id))
        if found:
            draft = drafts.get(job)
            return None if draft is None else dict(draft)
        async with self._sessions.begin() as session:
            draft = await session.get(Draft, (telegram_id, job))
            return None if draft is None else draft.data

    async def clear(self, telegram_id: int, job: str) -> None:
        """Forgets the draft (on finish or cancel)."""
        async with self._sessions.begin() as session:
            await session.execute(_DRAFT_DELETE, {"telegram_id": telegram_id, "job": job})


@dataclass(frozen=True, slots=True)
class SeenRecord:
    """A vendor record as the bot saw it in one poll."""

    record_id: str
    state: str
    snapshot: dict[str, Any]


class VendorStates(_Repository):
    """What the bot last saw of each vendor record, to tell what changed."""

    __slots__ = ()

    async def get_many(
        self, vendor: str, kind: str, record_ids: Iterable[str] | None = None
    ) -> dict[str, VendorState]:
        """Last-seen rows by record id; all of that vendor and kind when no ids are given."""
        query = select(VendorState).where(VendorState.vendor == vendor, VendorState.kind == kind)
        async with self._sessions.begin() as session:
            if record_ids is None:
                rows = list(await session.scalars(query))
            else:
                ids = list(record_ids)
                rows = []
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    rows.extend(
                        await session.scalars(query.where(VendorState.record_id.in_(chunk)))
                    )
            return {row.record_id: row for row in rows}

    async def put_many(
        self,
        vendor: str,
        kind: str,
        records: Sequence[SeenRecord],
        seen_at: datetime,
        *,
        expected: Mapping[str, str | None] | None = None,
    ) -> None:
        """Stores what was seen, in one transaction; existing records are overwritten, or with
        `expected` only where the stored state is still that one (None: nothing stored)."""
        if not records:
            return
        if expected is not None:
            await self._put_where_unchanged(vendor, kind, records, seen_at, expected)
            return
        rows = [
            {
                "vendor": vendor,
                "kind": kind,
                "record_id": record.record_id,
                "state": record.state,
                "snapshot": record.snapshot,
                "seen_at": seen_at,
            }
            for record in records
        ]
        async with self._sessions.begin() as session:
            for start in range(0, len(rows), _CHUNK):
                await session.execute(
                    upsert(
                        _dialect(session),
                        VendorState,
                        rows[start : start + _CHUNK],
                        key=["vendor", "kind", "record_id"],
                        update=["state", "snapshot", "seen_at"],
                    )
                )

    async def _put_where_unchanged(
        self,
        vendor: str,
        kind: str,
        records: Sequence[SeenRecord],
        seen_at: datetime,
        expected: Mapping[str, str | None],
    ) -> None:
        async with self._sessions.begin() as session:
            for record in records:
                values = {"state": record.state, "snapshot": record.snapshot, "seen_at": seen_at}
                before = expected.get(record.record_id)
                if before is None:
                    await session.execute(
                        upsert(
                            _dialect(session),
                            VendorState,
                            {"vendor": vendor, "kind": kind, "record_id": record.record_id}
                            | values,
                            key=["vendor", "kind", "record_id"],
                            update=[],
                        )
                    )
                else:
                    await session.execute(
                        update(VendorState)
                        .where(
                            VendorState.vendor == vendor,
                            VendorState.kind == kind,
                            VendorState.record_id == record.record_id,
                            VendorState.state == before,
                        )
                        .values(**values)
                    )


class Alerts(_Repository):
    """`sent_alerts`: alerts owed or sent, with what each says so a pending one can be sent
    later; the dedupe key makes each go out once."""

    __slots__ = ()

    async def record(
        self,
        dedupe_key: str,
        *,
        recipient: int,
        kind: str,
        now: datetime | None = None,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Records a pending alert; False when that dedupe key was recorded before. A key too
        long for its column is kept as `storable_key` makes it."""
        async with self._sessions.begin() as session:
            inserted = await session.scalar(
                upsert(
                    _dialect(session),
                    SentAlert,
                    {
                        "dedupe_key": storable_key(dedupe_key),
                        "recipient": recipient,
                        "kind": kind,
                        "status": AlertStatus.PENDING,
                        "attempts": 0,
                        "created_at": now or utcnow(),
                        "payload": payload,
                    },
                    key=["dedupe_key"],
                    update=[],
                ).returning(SentAlert.id)
            )
            return inserted is not None

    async def pending(self, *, after: int = 0, limit: int) -> list[SentAlert]:
        """Alerts not yet delivered, oldest first, from the one after id `after` on."""
        async with self._sessions.begin() as session:
            query = (
                select(SentAlert)
                .where(SentAlert.status == AlertStatus.PENDING, SentAlert.id > after)
                .order_by(SentAlert.id)
                .limit(limit)
            )
            return list(await session.scalars(query))

    async def get(self, dedupe_key: str) -> SentAlert | None:
        """The alert with that key, or None."""
        async with self._sessions.begin() as session:
            query = select(SentAlert).where(SentAlert.dedupe_key == dedupe_key)
            return await session.scalar(query)

    async def sending(self, dedupe_key: str, *, maybe_sent: bool = True) -> None:
        """A send of the alert leaves now (committed before it does): until Telegram's answer
        is recorded it may have reached its recipient, as the write journal's `maybe_sent`.
        `maybe_sent=False`: Telegram refused that send, and no earlier one may have arrived."""
        await self._change(dedupe_key, maybe_sent=maybe_sent)

    async def mark_sent(self, dedupe_key: str, at: datetime) -> None:
        """The alert reached its recipient."""
        await self._change(
            dedupe_key,
            status=AlertStatus.SENT,
            sent_at=at,
            attempts=SentAlert.attempts + 1,
            last_error=None,
            maybe_sent=False,
        )

    async def mark_attempt_failed(
        self, dedupe_key: str, error: str, *, final: bool, maybe_sent: bool = False
    ) -> None:
        """One delivery attempt failed; `final` gives up on it. `error` must hold no secret.
        `maybe_sent`: this attempt or an earlier one may still have reached the recipient."""
        status = AlertStatus.FAILED if final else AlertStatus.PENDING
        await self._change(
            dedupe_key,
            status=status,
            attempts=SentAlert.attempts + 1,
            last_error=error,
            maybe_sent=maybe_sent,
        )

    async def _change(self, dedupe_key: str, **values: Any) -> None:
        async with self._sessions.begin() as session:
            changed = await session.scalar(
                update(SentAlert)
                .where(SentAlert.dedupe_key == dedupe_key)
                .values(**values)
                .returning(SentAlert.id)
            )
            if changed is None:
                raise UnknownRecord(f"no alert {dedupe_key!r}")


class AuditLog(_Repository):
    """Every vendor write: who asked, what, when and how it ended."""

    __slots__ = ()

    async def append(
        self,
        *,
        telegram_id: int | None,
        vendor: str,
        action: str,
        target: str | None,
        request_summary: dict[str, Any],
        result: str,
        at: datetime | None = None,
    ) -> None:
        """Adds one entry; the summary must already be redacted (api.redaction)."""
        async with self._sessions.begin() as session:
            session.add(
                AuditEntry(
                    telegram_id=telegram_id,
                    vendor=vendor,
                    action=action,
                    target=target,
                    request_summary=request_summary,
                    result=result,
                    at=at or utcnow(),
                )
            )

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries first."""
        async with self._sessions.begin() as session:
            query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            return list(await session.scalars(query.limit(limit)))


class TaskAcknowledgements(_Repository):
    """Which worker has seen which Tuya task."""

    __slots__ = ()

    async def acknowledge(
        self, task_id: str, worker_telegram_id: int, at: datetime | None = None
    ) -> bool:
        """Records the acknowledgement; False when the task was acknowledged before."""
        async with self._sessions.begin() as session:
            inserted = await session.scalar(
                upsert(
                    _dialect(session),
                    TaskAcknowledgement,
                    {
                        "task_id": task_id,
                        "worker_telegram_id": worker_telegram_id,
                        "acknowledged_at": at or utcnow(),
                    },
                    key=["task_id"],
                    update=[],
                ).returning(TaskAcknowledgement.task_id)
            )
            return inserted is not None

    async def get_many(self, task_ids: Iterable[str]) -> dict[str, TaskAcknowledgement]:
        """Acknowledgements of those tasks, by task id."""
        ids = list(task_ids)
        found: dict[str, TaskAcknowledgement] = {}
        async with self._sessions.begin() as session:
            for start in range(0, len(ids), _CHUNK):
                query = select(TaskAcknowledgement).where(
                    TaskAcknowledgement.task_id.in_(ids[start : start + _CHUNK])
                )
                found.update((row.task_id, row) for row in await session.scalars(query))
        return found


class Storage:
    """The engine, its session factory and every repository, opened once at start."""

    __slots__ = (
        "accounts",
        "alerts",
        "audit",
        "communities",
        "drafts",
        "engine",
        "invites",
        "oauth_states",
        "repair_reports",
        "sessions",
        "task_acknowledgements",
        "users",
        "vendor_states",
        "writes",
    )

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        per_update.watch_writes(engine)
        self.sessions = make_session_factory(engine)
        self.accounts = Accounts(self.sessions)
        self.invites = Invites(self.sessions)
        self.oauth_states = OAuthStates(self.sessions)
        self.repair_reports = RepairReports(self.sessions)
        self.communities = Communities(self.sessions)
        self.users = Users(self.sessions)
        self.drafts = Drafts(self.sessions)
        self.vendor_states = VendorStates(self.sessions)
        self.alerts = Alerts(self.sessions)
        self.audit = AuditLog(self.sessions)
        self.task_acknowledgements = TaskAcknowledgements(self.sessions)
        self.writes = WriteRecords(self.sessions)

    @classmethod
    def open(cls, database_url: str) -> Storage:
        """Storage on a new engine for that URL (no I/O until first use)."""
        return cls(create_engine(database_url))

    async def reachable(self) -> bool:
        """Whether the database answers now (the health check asks)."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def close(self) -> None:
        """Closes every pooled connection."""
        await self.engine.dispose()
