"""A community as the flows see it: its names, zone, service hours, amenity rules and escalation
times, read from the database (the `communities` table) and never from module constants.

A deployment may run several communities; every resident, worker and manager belongs to one or
more of them. Vendor credentials are not here: they are the adapters' business (`bot`), and the
flows never need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from conversations.rules import (
    BOOKING_MAX_LEAD,
    BOOKING_MAX_MINUTES,
    BOOKING_STEP_MINUTES,
    SERVICE_HOURS_END,
    SERVICE_HOURS_START,
)

# The community a deployment ran as before communities were data: what it had (its staff, their
# kept writes) belongs to this one.
FIRST_COMMUNITY = 1


@dataclass(frozen=True, slots=True)
class AmenityRules:
    """How one amenity may be booked: starts on a grid, a length between two bounds, within a
    horizon. The defaults are what one community ran with before rules became data."""

    grid_minutes: int = BOOKING_STEP_MINUTES
    min_minutes: int = BOOKING_STEP_MINUTES
    max_minutes: int = BOOKING_MAX_MINUTES
    horizon_days: int = BOOKING_MAX_LEAD.days

    @property
    def horizon(self) -> timedelta:
        """How far ahead a booking may start."""
        return timedelta(days=self.horizon_days)


def _frozen(mapping: Mapping[str, AmenityRules] | None = None) -> Mapping[str, AmenityRules]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Community:
    """One community: what its people read (names in both languages, times in its zone) and the
    rules its flows follow. `id` is the deployment's own number, never shown to residents."""

    id: int
    name_en: str
    name_zh: str
    time_zone: str = "Asia/Shanghai"
    languages: tuple[str, ...] = ("en", "zh")
    phone_region: str = "CN"
    service_hours_start: time = SERVICE_HOURS_START
    service_hours_end: time = SERVICE_HOURS_END
    akubela_project_id: str = ""
    tuya_project_id: str = ""
    tuya_room_of_residence: Mapping[str, str] = field(default_factory=dict)
    servitly_tenant: str = ""
    servitly_location_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    amenity_defaults: AmenityRules = AmenityRules()
    amenity_rules: Mapping[str, AmenityRules] = field(default_factory=_frozen)
    escalate_repair_after: timedelta = timedelta(hours=4)
    escalate_task_after: timedelta = timedelta(hours=4)

    @property
    def zone(self) -> ZoneInfo:
        """The community's time zone, in which its times are shown unless a user chose theirs."""
        return ZoneInfo(self.time_zone)

    def name(self, language: str) -> str:
        """The community's name in the reader's language (Chinese for "zh*", else English)."""
        if language.startswith("zh") and self.name_zh:
            return self.name_zh
        return self.name_en or self.name_zh

    def rules_for(self, amenity_id: str) -> AmenityRules:
        """The booking rules of one amenity: its own where set, else the community's defaults."""
        return self.amenity_rules.get(amenity_id, self.amenity_defaults)


class UnknownCommunity(LookupError):
    """No community has that id (a stale press or a removed community)."""

    def __init__(self, community_id: int) -> None:
        super().__init__(f"no community {community_id}")
        self.community_id = community_id
