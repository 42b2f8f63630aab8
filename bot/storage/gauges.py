"""What the metrics read from the database when scraped: backlogs and open conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from bot.storage.db import Sessions
from bot.storage.models import (
    AlertStatus,
    ConversationState,
    InboundUpdate,
    SentAlert,
    WriteRecord,
    WriteStatus,
)


@dataclass(frozen=True, slots=True)
class Backlog:
    """How much work is waiting, as of one reading."""

    outbox_pending: int
    outbox_oldest_seconds: float  # age of the oldest pending write; 0 when there is none
    alerts_pending: int
    conversations_active: int
    # Cluster mode's updates stored and not handled yet (none in single-process mode).
    inbound_waiting: int = 0
    inbound_oldest_seconds: float = 0.0


async def read_backlog(sessions: Sessions, now: datetime) -> Backlog:
    """Counts unsettled vendor writes (the outbox), pending alerts, stored conversations and
    the cluster's unhandled updates in one short session."""
    async with sessions.begin() as session:
        outbox = (
            await session.execute(
                select(func.count(), func.min(WriteRecord.created_at)).where(
                    WriteRecord.status == WriteStatus.PENDING
                )
            )
        ).one()
        alerts = await session.scalar(
            select(func.count()).where(SentAlert.status == AlertStatus.PENDING)
        )
        conversations = await session.scalar(select(func.count()).select_from(ConversationState))
        inbound = (
            await session.execute(
                select(func.count(), func.min(InboundUpdate.received_at)).where(
                    InboundUpdate.handled_at.is_(None)
                )
            )
        ).one()
    pending, oldest = outbox
    waiting, first = inbound
    return Backlog(
        outbox_pending=int(pending),
        outbox_oldest_seconds=_age(now, oldest),
        alerts_pending=int(alerts or 0),
        conversations_active=int(conversations or 0),
        inbound_waiting=int(waiting),
        inbound_oldest_seconds=_age(now, first),
    )


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
