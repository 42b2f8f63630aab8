"""The conversations' `Directory` and `People` ports, over the stored accounts and users."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from bot.linking import Linker
from bot.storage.accounts import Accounts
from bot.storage.repositories import Users
from conversations.domain import Actor


class AccountDirectory:
    """Who people are to the community: their links, their role, administrators included."""

    def __init__(self, accounts: Accounts, linker: Linker, admin_ids: Collection[int]) -> None:
        self._accounts = accounts
        self._linker = linker
        self._admin_ids = frozenset(admin_ids)

    async def actor(self, telegram_id: int) -> Actor:
        """Everything authorisation needs; configured administrators are administrators."""
        return await self._accounts.actor(telegram_id, admin_ids=self._admin_ids)

    async def telegram_ids_of_worker(self, worker_id: str) -> list[int]:
        """The Telegram users bound to a worker."""
        return await self._accounts.telegram_ids_of_worker(worker_id)

    async def residences_of_residents(self) -> list[tuple[int, list[str]]]:
        """Every linked resident with their residences."""
        return [
            (
                link.telegram_id,
                [str(r["residence_id"]) for r in link.residences if isinstance(r, dict)],
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
