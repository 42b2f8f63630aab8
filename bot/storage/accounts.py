"""Who is linked to what: resident, worker and manager links, and single-use invites."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage import per_update
from bot.storage.db import Sessions, upsert
from bot.storage.models import (
    AlertStatus,
    CommunityRecord,
    Draft,
    Invite,
    ManagerLink,
    ResidentLink,
    SentAlert,
    StaffCommunity,
    TelegramUser,
    WorkerLink,
)
from conversations.domain import Actor, Redeemed, RedeemOutcome, Role

INVITE_CODE_BYTES = 15  # 20 URL-safe characters: fits a /start parameter, out of guessing range
MAX_FAILED_INVITE_ATTEMPTS = 5
INVITE_LOCKOUT = timedelta(minutes=15)
# The roles bound to communities by their invites.
STAFF_ROLES = frozenset({Role.WORKER, Role.MANAGER})


def hash_code(code: str) -> str:
    """The stored form of an invite code (codes are random, so a plain hash is enough)."""
    return hashlib.sha256(code.strip().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredTokens:
    """A resident's encrypted tokens as kept at rest."""

    access_token_encrypted: str
    refresh_token_encrypted: str | None
    expires_at: datetime

    def as_dict(self) -> dict[str, str | None]:
        """As JSON-ready values (still encrypted), to carry until a link is confirmed."""
        return {
            "access": self.access_token_encrypted,
            "refresh": self.refresh_token_encrypted,
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredTokens:
        """Back from `as_dict`."""
        return cls(
            access_token_encrypted=str(data["access"]),
            refresh_token_encrypted=None if data.get("refresh") is None else str(data["refresh"]),
            expires_at=datetime.fromisoformat(str(data["expires_at"])),
        )


class LockedTokens:
    """A resident's stored tokens, read under a lock on their row held until the block ends."""

    __slots__ = ("_link",)

    def __init__(self, link: ResidentLink) -> None:
        self._link = link

    @property
    def stored(self) -> StoredTokens | None:
        """The tokens as stored (None when the link keeps none)."""
        link = self._link
        if link.access_token_encrypted is None or link.token_expires_at is None:
            return None
        return StoredTokens(
            access_token_encrypted=link.access_token_encrypted,
            refresh_token_encrypted=link.refresh_token_encrypted,
            expires_at=link.token_expires_at,
        )

    @property
    def relink_required(self) -> bool:
        """Whether the login was lost and the resident asked to link again."""
        return self._link.relink_required_at is not None

    def save(self, tokens: StoredTokens) -> None:
        """Replaces the stored tokens (written when the block ends)."""
        self._link.access_token_encrypted = tokens.access_token_encrypted
        self._link.refresh_token_encrypted = tokens.refresh_token_encrypted
        self._link.token_expires_at = tokens.expires_at

    def require_relink(self, now: datetime) -> bool:
        """Marks the login as lost; False when it already was (the resident was told then)."""
        if self._link.relink_required_at is not None:
            return False
        self._link.relink_required_at = now
        return True


# Built once: every update that asks who its user is runs it.
_IDENTITY = (
    select(TelegramUser.role, ResidentLink, WorkerLink.tuya_worker_id)
    .add_columns(ManagerLink.project_id, StaffCommunity.community_id, Draft.job, Draft.data)
    .outerjoin(ResidentLink, ResidentLink.telegram_id == TelegramUser.telegram_id)
    .outerjoin(WorkerLink, WorkerLink.telegram_id == TelegramUser.telegram_id)
    .outerjoin(ManagerLink, ManagerLink.telegram_id == TelegramUser.telegram_id)
    .outerjoin(StaffCommunity, StaffCommunity.telegram_id == TelegramUser.telegram_id)
    .outerjoin(Draft, Draft.telegram_id == TelegramUser.telegram_id)
    .where(TelegramUser.telegram_id == bindparam("telegram_id"))
)


def drafts_key(telegram_id: int) -> tuple[str, int]:
    """Where an update's scope keeps the user's drafts ({job: data}) read with who they are."""
    return ("drafts", telegram_id)


@dataclass(frozen=True, slots=True)
class _Identity:
    """A user's role and links as one statement reads them."""

    role: Role | None  # None: the user was never stored
    resident: ResidentLink | None
    worker_id: str | None
    project_ids: frozenset[str]
    community_ids: frozenset[int]


class Accounts:
    """Links between Telegram users and vendor identities."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def actor(self, telegram_id: int, *, admin_ids: frozenset[int] = frozenset()) -> Actor:
        """Everything authorisation needs to know about a user (read once per update)."""
        identity = await self._identity(telegram_id)
        role = identity.role if identity.role is not None else Role.RESIDENT
        if telegram_id in admin_ids:
            role = Role.ADMIN
        residence_ids = frozenset(
            str(r["residence_id"])
            for r in (identity.resident.residences if identity.resident is not None else [])
            if isinstance(r, dict) and r.get("residence_id")
        )
        return Actor(
            telegram_id=telegram_id,
            role=role,
            residence_ids=residence_ids,
            worker_id=identity.worker_id,
            project_ids=identity.project_ids,
            community_ids=identity.community_ids,
        )

    async def resident(self, telegram_id: int) -> ResidentLink | None:
        """The resident link, if any (read once per update, with the actor)."""
        return (await self._identity(telegram_id)).resident

    async def staff_community_ids(self, telegram_id: int) -> frozenset[int]:
        """The communities a worker or manager serves (read once per update, with the actor)."""
        return (await self._identity(telegram_id)).community_ids

    async def _identity(self, telegram_id: int) -> _Identity:
        # The gate, the handler and the menu each ask who the user is; one update reads it once.
        return await per_update.remembered(
            ("identity", telegram_id), lambda: self._read_identity(telegram_id)
        )

    async def _read_identity(self, telegram_id: int) -> _Identity:
        # One statement: the links all hang off the user's row (foreign keys), so a user with
        # no row has none; a manager of several projects and communities comes back as one row
        # per project and community (a handful at most). The user's drafts come along (a row
        # per draft): a flow the update opens reads its draft from this update's scope instead
        # of with a statement of its own.
        async with self._sessions.begin() as session:
            rows = (await session.execute(_IDENTITY, {"telegram_id": telegram_id})).all()
        if not rows:
            return _Identity(
                role=None,
                resident=None,
                worker_id=None,
                project_ids=frozenset(),
                community_ids=frozenset(),
            )
        per_update.remember(
            drafts_key(telegram_id), {row[5]: row[6] for row in rows if row[5] is not None}
        )
        role, resident, worker_id = rows[0][:3]
        return _Identity(
            role=role,
            resident=resident,
            worker_id=worker_id,
            project_ids=frozenset(row[3] for row in rows if row[3] is not None),
            community_ids=frozenset(row[4] for row in rows if row[4] is not None),
        )

    async def holders_of(self, account_id: str) -> list[int]:
        """The Telegram users an Akubela account is linked to."""
        async with self._sessions.begin() as session:
            rows = await session.scalars(
                select(ResidentLink.telegram_id).where(
                    ResidentLink.akubela_account_id == account_id
                )
            )
            return list(rows)

    async def residents(self) -> list[ResidentLink]:
        """Every linked resident (for the watchers)."""
        async with self._sessions.begin() as session:
            return list(await session.scalars(select(ResidentLink)))

    async def link_resident(
        self,
        telegram_id: int,
        *,
        account_id: str,
        email: str | None,
        residences: list[dict[str, Any]],
        tokens: StoredTokens,
    ) -> ResidentLink:
        """Stores (or replaces) a resident's link; a single residence is chosen at once."""
        chosen = str(residences[0]["residence_id"]) if len(residences) == 1 else None
        values = {
            "telegram_id": telegram_id,
            "akubela_account_id": account_id,
            "email": email,
            "residences": residences,
            "residence_id": chosen,
            "access_token_encrypted": tokens.access_token_encrypted,
            "refresh_token_encrypted": tokens.refresh_token_encrypted,
            "token_expires_at": tokens.expires_at,
            "relink_required_at": None,  # linking again is what a lost login waits for
        }
        async with self._sessions.begin() as session:
            statement = upsert(
                session.get_bind().dialect.name, ResidentLink, values, key=["telegram_id"]
            )
            await session.execute(statement)
        link = await self.resident(telegram_id)
        assert link is not None
        return link

    async def store_tokens(self, telegram_id: int, tokens: StoredTokens) -> None:
        """Keeps a resident's renewed tokens."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(ResidentLink)
                .where(ResidentLink.telegram_id == telegram_id)
                .values(
                    access_token_encrypted=tokens.access_token_encrypted,
                    refresh_token_encrypted=tokens.refresh_token_encrypted,
                    token_expires_at=tokens.expires_at,
                )
            )

    @asynccontextmanager
    async def locked_tokens(self, telegram_id: int) -> AsyncIterator[LockedTokens | None]:
        """The resident's tokens under a row lock, for renewing them (None: not linked).

        On PostgreSQL this is `SELECT ... FOR UPDATE`: another process renewing the same
        account waits here until this block ends, then reads what it wrote, so two processes
        never spend the same single-use refresh token. SQLite ignores FOR UPDATE; it serves one
        process, where the one token holder per account (and its asyncio lock) suffices.

        What the block wrote is committed even when the block raises: it records what the
        vendor already did (a rotated token, a login it no longer takes).
        """
        failure: BaseException | None = None
        async with self._sessions.begin() as session:
            link = await session.get(ResidentLink, telegram_id, with_for_update=True)
            try:
                yield None if link is None else LockedTokens(link)
            except BaseException as exc:  # re-raised below, once the writes are kept
                failure = exc
        if failure is not None:
            raise failure

    async def choose_residence(self, telegram_id: int, residence_id: str) -> bool:
        """Selects one of the resident's own residences; False when it is not theirs."""
        link = await self.resident(telegram_id)
        if link is None or residence_id not in {
            str(r.get("residence_id")) for r in link.residences if isinstance(r, dict)
        }:
            return False
        async with self._sessions.begin() as session:
            await session.execute(
                update(ResidentLink)
                .where(ResidentLink.telegram_id == telegram_id)
                .values(residence_id=residence_id)
            )
        return True

    async def unlink_resident(self, telegram_id: int) -> bool:
        """Deletes the link and its tokens; False when there was none."""
        async with self._sessions.begin() as session:
            gone = await session.scalar(
                delete(ResidentLink)
                .where(ResidentLink.telegram_id == telegram_id)
                .returning(ResidentLink.telegram_id)
            )
        return gone is not None

    async def worker(self, telegram_id: int) -> WorkerLink | None:
        """The worker link, if any."""
        async with self._sessions.begin() as session:
            return await session.get(WorkerLink, telegram_id)

    async def telegram_ids_of_worker(self, worker_id: str) -> list[int]:
        """The Telegram users bound to a Tuya worker."""
        async with self._sessions.begin() as session:
            rows = await session.scalars(
                select(WorkerLink.telegram_id).where(WorkerLink.tuya_worker_id == worker_id)
            )
            return list(rows)

    async def managers_of(self, project_id: str) -> list[int]:
        """The Telegram users who manage a project."""
        async with self._sessions.begin() as session:
            rows = await session.scalars(
                select(ManagerLink.telegram_id).where(ManagerLink.project_id == project_id)
            )
            return list(rows)

    async def with_role(self, role: Role) -> list[int]:
        """The Telegram users who hold a role (for the watcher: administrators)."""
        async with self._sessions.begin() as session:
            rows = await session.scalars(
                select(TelegramUser.telegram_id).where(TelegramUser.role == role)
            )
            return list(rows)

    async def staff_communities(self) -> dict[int, frozenset[int]]:
        """Every worker's and manager's communities, by Telegram user (for the watcher)."""
        async with self._sessions.begin() as session:
            rows = (
                await session.execute(
                    select(StaffCommunity.telegram_id, StaffCommunity.community_id)
                )
            ).all()
        served: dict[int, set[int]] = {}
        for telegram_id, community_id in rows:
            served.setdefault(telegram_id, set()).add(community_id)
        return {telegram_id: frozenset(ids) for telegram_id, ids in served.items()}


class Invites:
    """Single-use, expiring invite codes; only their hashes are stored."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def create(
        self,
        role: Role,
        *,
        expires_at: datetime,
        worker_id: str | None = None,
        project_id: str | None = None,
        community_ids: Collection[int] = (),
        created_by: int | None = None,
    ) -> str:
        """Makes a new code and returns it; this is the only time the plain code exists.

        A worker or manager invite binds to the communities it names; an administrator serves
        every community (communities named on their invite are not kept).
        """
        if role is Role.WORKER and not worker_id:
            raise ValueError("a worker invite names the Tuya worker")
        if role in STAFF_ROLES and not community_ids:
            raise ValueError("a worker or manager invite names at least one community")
        code = secrets.token_urlsafe(INVITE_CODE_BYTES)
        async with self._sessions.begin() as session:
            session.add(
                Invite(
                    code_hash=hash_code(code),
                    role=role,
                    worker_id=worker_id,
                    project_id=project_id,
                    community_ids=sorted(set(community_ids)) if role in STAFF_ROLES else None,
                    created_by=created_by,
                    expires_at=expires_at,
                )
            )
        return code

    async def _look_up(
        self, session: AsyncSession, code: str, telegram_id: int, now: datetime
    ) -> tuple[Redeemed | None, Invite | None, TelegramUser]:
        """The invite a code names, or why it cannot be redeemed; counts wrong guesses.

        Wrong codes are counted per user; after a few in a row the user is locked out for a
        while, so codes cannot be guessed by trying.
        """
        dialect = session.get_bind().dialect.name
        await session.execute(
            upsert(
                dialect, TelegramUser, {"telegram_id": telegram_id}, key=["telegram_id"], update=[]
            )
        )
        user = await session.get(TelegramUser, telegram_id, with_for_update=True)
        assert user is not None
        if user.invite_locked_until is not None and user.invite_locked_until > now:
            return Redeemed(RedeemOutcome.LOCKED), None, user
        invite = await session.scalar(
            select(Invite).where(Invite.code_hash == hash_code(code)).with_for_update()
        )
        if invite is None:
            user.failed_invite_attempts += 1
            if user.failed_invite_attempts >= MAX_FAILED_INVITE_ATTEMPTS:
                user.failed_invite_attempts = 0
                user.invite_locked_until = now + INVITE_LOCKOUT
            return Redeemed(RedeemOutcome.UNKNOWN), None, user
        # A real but used or expired code is no guess, yet it does not clear the count:
        # otherwise one spent code slipped between guesses would buy endless guesses.
        if invite.used_at is not None:
            return Redeemed(RedeemOutcome.USED), None, user
        if invite.expires_at <= now:
            return Redeemed(RedeemOutcome.EXPIRED), None, user
        return None, invite, user

    async def preview(self, code: str, telegram_id: int, *, now: datetime) -> Redeemed:
        """What the code would grant (outcome VALID), without using it; or why it cannot."""
        async with self._sessions.begin() as session:
            refusal, invite, _ = await self._look_up(session, code, telegram_id, now)
            if refusal is not None or invite is None:
                return refusal or Redeemed(RedeemOutcome.UNKNOWN)
            return Redeemed(
                RedeemOutcome.VALID,
                role=invite.role,
                worker_id=invite.worker_id,
                project_id=invite.project_id,
                community_ids=_communities_of(invite),
            )

    async def redeem(
        self,
        code: str,
        telegram_id: int,
        *,
        now: datetime,
        display_name: str = "",
        stale_alert_kinds: Collection[str] = (),
    ) -> Redeemed:
        """Binds the user to what the code grants, once; refuses unknown, used, expired codes.

        The new role replaces the old one whole: a worker's binding goes when they become a
        manager or an administrator, a manager's projects when they become a worker, and so do
        their pending alerts of `stale_alert_kinds` (those of the role they leave).
        """
        async with self._sessions.begin() as session:
            refusal, invite, user = await self._look_up(session, code, telegram_id, now)
            if refusal is not None or invite is None:
                return refusal or Redeemed(RedeemOutcome.UNKNOWN)
            # Marked used in the same transaction that binds, so a code races to one winner.
            claimed = await session.scalar(
                update(Invite)
                .where(Invite.id == invite.id, Invite.used_at.is_(None))
                .values(used_at=now, used_by=telegram_id)
                .returning(Invite.id)
            )
            if claimed is None:
                return Redeemed(RedeemOutcome.USED)
            user.failed_invite_attempts = 0
            # A manager invited to one more community keeps the others, as with projects.
            keeps_communities = user.role is Role.MANAGER and invite.role is Role.MANAGER
            user.role = invite.role
            if display_name:
                user.display_name = display_name
            await self._take_role(
                session, invite, telegram_id, stale_alert_kinds, keeps_communities
            )
            return Redeemed(
                RedeemOutcome.BOUND,
                role=invite.role,
                worker_id=invite.worker_id,
                project_id=invite.project_id,
                community_ids=_communities_of(invite),
            )

    @staticmethod
    async def _take_role(
        session: AsyncSession,
        invite: Invite,
        telegram_id: int,
        stale_alert_kinds: Collection[str],
        keeps_communities: bool,
    ) -> None:
        """Links for the invite's role, and none of another role's left behind."""
        dialect = session.get_bind().dialect.name
        if invite.role is not Role.WORKER:
            await session.execute(delete(WorkerLink).where(WorkerLink.telegram_id == telegram_id))
        if invite.role is Role.WORKER:
            # An administrator's or manager's projects go with the role.
            await session.execute(
                delete(ManagerLink).where(ManagerLink.telegram_id == telegram_id)
            )
            if invite.worker_id:
                await session.execute(
                    upsert(
                        dialect,
                        WorkerLink,
                        {"telegram_id": telegram_id, "tuya_worker_id": invite.worker_id},
                        key=["telegram_id"],
                    )
                )
        if invite.role is Role.MANAGER:
            # The project the invite names (as invites did before there were communities),
            # else every project of the communities it binds to.
            projects = {invite.project_id or ""}
            if not invite.project_id:
                rows = await session.execute(
                    select(
                        CommunityRecord.akubela_project_id, CommunityRecord.tuya_project_id
                    ).where(CommunityRecord.id.in_(_communities_of(invite)))
                )
                projects.update(project for row in rows for project in row)
            managed = [
                {"telegram_id": telegram_id, "project_id": project}
                for project in sorted(projects - {""})
            ]
            if managed:
                await session.execute(
                    upsert(dialect, ManagerLink, managed, key=["telegram_id", "project_id"])
                )
        # Otherwise the invite's communities replace the old role's whole.
        if not keeps_communities:
            await session.execute(
                delete(StaffCommunity).where(StaffCommunity.telegram_id == telegram_id)
            )
        served = [
            {"telegram_id": telegram_id, "community_id": community_id}
            for community_id in _communities_of(invite)
        ]
        if invite.role in STAFF_ROLES and served:
            await session.execute(
                upsert(
                    dialect, StaffCommunity, served, key=["telegram_id", "community_id"], update=[]
                )
            )
        if stale_alert_kinds:
            await session.execute(
                delete(SentAlert).where(
                    SentAlert.recipient == telegram_id,
                    SentAlert.status == AlertStatus.PENDING,
                    SentAlert.kind.in_(sorted(stale_alert_kinds)),
                )
            )


def _communities_of(invite: Invite) -> tuple[int, ...]:
    return tuple(sorted({int(i) for i in invite.community_ids or ()}))
