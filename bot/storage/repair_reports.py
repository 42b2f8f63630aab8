"""Repairs residents reported through the bot: their photos, which Akubela cannot hold.

Akubela documents no upload for a repair's pictures, so the photos stay on Telegram and the
bot keeps their file ids here, by repair, for whoever handles the repair to see.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from bot.storage.columns import utcnow
from bot.storage.db import Sessions, upsert
from bot.storage.models import RepairReport


class RepairReports:
    """Each method is one short unit of work in its own session, committed."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def add(
        self,
        *,
        maintenance_id: str,
        telegram_id: int,
        residence_id: str,
        photo_file_ids: Sequence[str],
        description: str,
    ) -> None:
        """Keeps a reported repair; reporting the same repair again replaces it."""
        async with self._sessions.begin() as session:
            await session.execute(
                upsert(
                    session.get_bind().dialect.name,
                    RepairReport,
                    {
                        "maintenance_id": maintenance_id,
                        "telegram_id": telegram_id,
                        "residence_id": residence_id,
                        "photo_file_ids": list(photo_file_ids),
                        "description": description,
                        "created_at": utcnow(),
                    },
                    key=["maintenance_id"],
                )
            )

    async def get(self, maintenance_id: str, *, residence_id: str) -> RepairReport | None:
        """The report of one repair of that residence, or None."""
        async with self._sessions.begin() as session:
            return await session.scalar(
                select(RepairReport).where(
                    RepairReport.maintenance_id == maintenance_id,
                    RepairReport.residence_id == residence_id,
                )
            )

    async def by_user(self, telegram_id: int) -> list[RepairReport]:
        """Every repair one user reported, newest first."""
        async with self._sessions.begin() as session:
            query = (
                select(RepairReport)
                .where(RepairReport.telegram_id == telegram_id)
                .order_by(RepairReport.created_at.desc())
            )
            return list(await session.scalars(query))
