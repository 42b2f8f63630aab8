"""Single-use nonces of login links and link confirmations (`oauth_states`).

A nonce's row is made when its link is handed out and claimed once when the link comes back;
a second claim (a replay, or the same link opened twice) finds it used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from bot.storage.db import Sessions, upsert
from bot.storage.models import OAuthState, TelegramUser


class OAuthStates:
    """Each method is one short unit of work in its own transaction."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def add(self, nonce: str, telegram_id: int, *, now: datetime) -> None:
        """Keeps a fresh nonce for that user (stored on first contact if they are new)."""
        async with self._sessions.begin() as session:
            await session.execute(
                upsert(
                    session.get_bind().dialect.name,
                    TelegramUser,
                    {"telegram_id": telegram_id},
                    key=["telegram_id"],
                    update=[],
                )
            )
            session.add(OAuthState(nonce=nonce, telegram_id=telegram_id, created_at=now))

    async def claim(self, nonce: str, telegram_id: int, *, now: datetime) -> bool:
        """Uses the nonce up; False when it is unknown, another user's or used already."""
        async with self._sessions.begin() as session:
            claimed = await session.scalar(
                update(OAuthState)
                .where(
                    OAuthState.nonce == nonce,
                    OAuthState.telegram_id == telegram_id,
                    OAuthState.used_at.is_(None),
                )
                .values(used_at=now)
                .returning(OAuthState.nonce)
            )
        return claimed is not None
