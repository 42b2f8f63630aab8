"""The community's own words: who is asking and what they may be, independent of any vendor
and of how the bot stores them. `bot` stores these and the flows decide with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """A Telegram user's standing in the community (stored as its value)."""

    RESIDENT = "resident"
    WORKER = "worker"
    MANAGER = "manager"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Actor:
    """The user asking, as far as authorisation cares."""

    telegram_id: int
    role: Role = Role.RESIDENT
    residence_ids: frozenset[str] = field(default_factory=frozenset)
    worker_id: str | None = None
    project_ids: frozenset[str] = field(default_factory=frozenset)
