"""The communities table: each community's rules and vendor access, one row per community.

Values go in and come out as stored (the manager's password already encrypted); turning a row
into a `Community` and checking it is `bot.communities`' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import CursorResult, func, select

from bot.storage.columns import utcnow
from bot.storage.db import Sessions, upsert
from bot.storage.models import CommunityRecord


class Communities:
    """Each method is one short unit of work in its own session, committed."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def all(self) -> list[CommunityRecord]:
        """Every community, by id."""
        async with self._sessions.begin() as session:
            return list(
                await session.scalars(select(CommunityRecord).order_by(CommunityRecord.id))
            )

    async def get(self, community_id: int) -> CommunityRecord | None:
        """One community, or None."""
        async with self._sessions.begin() as session:
            return await session.get(CommunityRecord, community_id)

    async def count(self) -> int:
        """How many communities there are."""
        async with self._sessions.begin() as session:
            return int(
                await session.scalar(select(func.count()).select_from(CommunityRecord)) or 0
            )

    async def save(self, community_id: int, values: Mapping[str, Any]) -> None:
        """Adds the community, or replaces the values of the one with that id."""
        now = utcnow()
        async with self._sessions.begin() as session:
            row = await session.get(CommunityRecord, community_id)
            if row is None:
                session.add(
                    CommunityRecord(id=community_id, created_at=now, updated_at=now, **values)
                )
                return
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now

    async def add_first(self, values: Mapping[str, Any]) -> bool:
        """Adds community 1 when there is no community at all; False when there was one
        (two processes starting at once add it once: whichever unique constraint the second
        meets first, its row is not added)."""
        now = utcnow()
        async with self._sessions.begin() as session:
            if await session.scalar(select(func.count()).select_from(CommunityRecord)):
                return False
            result = await session.execute(
                upsert(
                    session.get_bind().dialect.name,
                    CommunityRecord,
                    {"id": 1, "created_at": now, "updated_at": now, **values},
                    key=(),
                    update=(),
                )
            )
            return bool(cast(CursorResult[Any], result).rowcount)
