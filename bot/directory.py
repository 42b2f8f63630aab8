"""The conversations' `Directory`, `Invites` and `People` ports, over the stored accounts."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime, time
from typing import Any

from bot.alert_kinds import MANAGER_KINDS, WORKER_KINDS
from bot.linking import Linker
from bot.storage.accounts import Accounts, Invites
from bot.storage.repositories import Users
from bot.tokens import TokenHolders
from conversations.community import Community
from conversations.domain import (
    Actor,
    Redeemed,
    RedeemOutcome,
    Residence,
    ResidentAccount,
    Role,
)


class AccountDirectory:
    """Who people are to the community: their links, their role, administrators included."""

    def __init__(
        self,
        accounts: Accounts,
        linker: Linker,
        tokens: TokenHolders,
        admin_ids: Collection[int],
        community_of_residence: Callable[[Mapping[str, Any]], Community | None],
    ) -> None:
        self._accounts = accounts
        self._linker = linker
        self._tokens = tokens
        self._admin_ids = frozenset(admin_ids)
        self._community_of_residence = community_of_residence

    async def actor(self, telegram_id: int) -> Actor:
        """Everything authorisation needs; configured administrators are administrators."""
        return await self._accounts.actor(telegram_id, admin_ids=self._admin_ids)

    async def telegram_ids_of_worker(self, worker_id: str) -> list[int]:
        """The Telegram users bound to a worker."""
        return await self._accounts.telegram_ids_of_worker(worker_id)

    def _in(self, residence: Mapping[str, Any], community_id: int) -> bool:
        community = self._community_of_residence(residence)
        return community is not None and community.id == community_id

    async def residences_of_residents(
        self, community_id: int | None = None
    ) -> list[tuple[int, list[str]]]:
        """Every linked resident with their residences (only those in one community, when
        named)."""
        return [
            (
                link.telegram_id,
                [
                    str(r["residence_id"])
                    for r in link.residences
                    if isinstance(r, dict) and (community_id is None or self._in(r, community_id))
                ],
            )
            for link in await self._accounts.residents()
        ]

    async def login_lost(self, telegram_id: int) -> bool:
        """Never linked, or Akubela no longer takes the stored login."""
        link = await self._accounts.resident(telegram_id)
        return link is None or link.relink_required_at is not None

    async def login_url(self, telegram_id: int, *, resume: str | None = None) -> str:
        """A fresh single-use Akubela login link."""
        return await self._linker.login_url(telegram_id, resume=resume)

    async def resident(self, telegram_id: int) -> ResidentAccount | None:
        """The linked Akubela account and its residences."""
        link = await self._accounts.resident(telegram_id)
        if link is None:
            return None
        return ResidentAccount(
            email=link.email or "",
            residences=tuple(
                Residence.from_stored(r) for r in link.residences if isinstance(r, dict)
            ),
            chosen_residence_id=link.residence_id,
            login_lost=link.relink_required_at is not None,
        )

    async def worker_name(self, telegram_id: int) -> str | None:
        """The Tuya worker the user is bound to: their nickname, else the worker id."""
        worker = await self._accounts.worker(telegram_id)
        return (worker.nickname or worker.tuya_worker_id) if worker is not None else None

    async def choose_residence(self, telegram_id: int, residence_id: str) -> bool:
        """Selects one of the resident's residences."""
        return await self._accounts.choose_residence(telegram_id, residence_id)

    async def unlink(self, telegram_id: int) -> bool:
        """Deletes the link and drops the tokens held in memory for it."""
        if not await self._accounts.unlink_resident(telegram_id):
            return False
        self._tokens.forget(telegram_id)
        return True


def alert_kinds_lost(actor: Actor, grant: Redeemed) -> set[str]:
    """The alert kinds `actor` stops getting when `grant` is redeemed (pending ones go too)."""
    assert grant.role is not None
    new = grant.role
    lost: set[str] = set()
    if actor.worker_id and (new is not Role.WORKER or grant.worker_id != actor.worker_id):
        lost |= {kind.value for kind in WORKER_KINDS}
    if actor.project_ids and new is Role.WORKER:
        lost |= {kind.value for kind in MANAGER_KINDS}
    return lost


class InviteDesk:
    """Invite codes, redeemed so that the alerts of a role the user leaves stop with it."""

    def __init__(
        self, invites: Invites, directory: AccountDirectory, clock: Callable[[], datetime]
    ) -> None:
        self._invites = invites
        self._directory = directory
        self._clock = clock

    async def preview(self, code: str, telegram_id: int) -> Redeemed:
        """What the code would grant, without using it."""
        return await self._invites.preview(code, telegram_id, now=self._clock())

    async def redeem(self, code: str, telegram_id: int, *, display_name: str) -> Redeemed:
        """Uses the code; pending alerts of the role given up are dropped with it."""
        actor = await self._directory.actor(telegram_id)
        grant = await self.preview(code, telegram_id)
        stale = alert_kinds_lost(actor, grant) if grant.outcome is RedeemOutcome.VALID else set()
        return await self._invites.redeem(
            code,
            telegram_id,
            now=self._clock(),
            display_name=display_name,
            stale_alert_kinds=stale,
        )


class StoredPeople:
    """What the bot keeps of each user for talking to them outside a conversation."""

    def __init__(self, users: Users) -> None:
        self._users = users

    async def language(self, telegram_id: int) -> str | None:
        """The language stored for the user."""
        user = await self._users.get(telegram_id)
        return user.language if user is not None else None

    async def set_blocked(self, telegram_id: int, at: datetime | None) -> None:
        """Notes (or lifts) that the user blocked the bot."""
        await self._users.set_blocked(telegram_id, at)

    async def first_contact(self, telegram_id: int, *, language: str, display_name: str) -> None:
        """Stores the user; one who blocked the bot and writes again has unblocked it."""
        stored = await self._users.get_or_create(
            telegram_id, language=language, display_name=display_name
        )
        if stored.blocked_at is not None:
            await self._users.set_blocked(telegram_id, None)

    async def set_language(self, telegram_id: int, language: str) -> None:
        """Keeps the chosen language."""
        await self._users.set_language(telegram_id, language)

    async def set_time_zone(self, telegram_id: int, time_zone: str | None) -> None:
        """Keeps the user's own time zone."""
        await self._users.set_time_zone(telegram_id, time_zone)

    async def quiet_hours(self, telegram_id: int) -> tuple[time, time] | None:
        """The user's quiet hours, when both ends are set."""
        user = await self._users.get(telegram_id)
        if user is None or user.quiet_hours_start is None or user.quiet_hours_end is None:
            return None
        return user.quiet_hours_start, user.quiet_hours_end

    async def set_quiet_hours(
        self, telegram_id: int, start: time | None, end: time | None
    ) -> None:
        """Sets or clears the quiet hours."""
        await self._users.set_quiet_hours(telegram_id, start, end)
