"""The community's own words: who is asking and what they may be, independent of any vendor
and of how the bot stores them. `bot` stores these and the flows decide with them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
    # The communities a worker or manager serves (their invites bound them); a resident's
    # community follows from their residence instead, and an administrator serves them all.
    community_ids: frozenset[int] = field(default_factory=frozenset)

    def serves(self, community_id: int) -> bool:
        """Whether this worker, manager or administrator may act in a community's staff views."""
        return self.role is Role.ADMIN or community_id in self.community_ids


@dataclass(frozen=True, slots=True)
class Residence:
    """A home a resident's account may act for, with what the vendor calls it."""

    residence_id: str
    family_name: str = ""
    building_name: str = ""
    room_name: str = ""

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Residence:
        """A residence as the link keeps it (its vendor fields, as JSON)."""
        return cls(
            str(data.get("residence_id") or ""),
            str(data.get("family_name") or ""),
            str(data.get("building_name") or ""),
            str(data.get("room_name") or ""),
        )

    def label(self) -> str:
        """The residence in words: family, building and room, as far as the vendor told us."""
        parts = (self.family_name, self.building_name, self.room_name)
        return " · ".join(part for part in parts if part) or self.residence_id


@dataclass(frozen=True, slots=True)
class ResidentAccount:
    """A resident's linked account: who it is and which residence they act for."""

    email: str
    residences: tuple[Residence, ...]
    chosen_residence_id: str | None
    login_lost: bool = False  # the vendor no longer takes the stored login

    def chosen(self) -> Residence | None:
        """The residence they act for, if chosen."""
        return next(
            (r for r in self.residences if r.residence_id == self.chosen_residence_id), None
        )


@dataclass(frozen=True, slots=True)
class Linked:
    """A resident's account that was just linked, as the user is told of it."""

    telegram_id: int
    email: str
    residences: list[Residence]
    chosen_residence_id: str | None
    resume: str | None  # the flow the user wanted before linking, to bring them back to it
    # Other Telegram users the same account was linked to before: they are told.
    also_linked: tuple[int, ...] = ()
    name: str = ""  # the Telegram name the account was linked to, as the others are told


class RedeemOutcome(StrEnum):
    """What became of an invite code someone sent."""

    BOUND = "bound"
    VALID = "valid"  # a preview: the code may be redeemed
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    LOCKED = "locked"  # too many wrong codes from this user; try again later


@dataclass(frozen=True, slots=True)
class Redeemed:
    """The outcome of redeeming a code, and what the invite grants when it is valid or bound."""

    outcome: RedeemOutcome
    role: Role | None = None
    worker_id: str | None = None
    project_id: str | None = None
    community_ids: tuple[int, ...] = ()
