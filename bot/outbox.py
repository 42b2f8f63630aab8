"""The outbox: a user's write that the vendor could not take now is kept and sent later.

Each write keeps the command id its conversation chose, so a retry is the same command. When
an earlier attempt may have reached the vendor (a timeout, a dropped connection), the record
is looked for before the write is sent again, so nothing is created twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.storage.repositories import Storage

logger = logging.getLogger(__name__)


class OutboxService:
    """Queues deferred writes (the conversations' `Deferrer`)."""

    def __init__(self, storage: Storage, *, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._clock = clock

    async def defer(
        self, telegram_id: int, operation: str, payload: dict[str, Any], *, command_id: str
    ) -> None:
        """Keeps the write; the same command id deferred twice stays one item."""
        vendor = operation.split(".", 1)[0]
        await self._storage.outbox.enqueue(
            telegram_id=telegram_id,
            vendor=vendor,
            operation=operation,
            command_id=command_id,
            payload=payload,
            now=self._clock(),
        )
        logger.info("deferred %s for user %s", operation, telegram_id)
