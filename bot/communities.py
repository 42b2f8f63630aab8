"""The deployment's communities and the vendor clients each one reaches.

A community's rules are data (`conversations.community.Community`, kept in the `communities`
table); how the bot reaches its vendors is here: one Akubela client per base URL (one HTTP
pool, shared by every community on it), one manager login per community account, one Tuya
client per project and one Servitly client per tenant. Each is built the first time a
community needs it and kept for the run, so its token and name caches are shared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import phonenumbers
from pydantic import SecretStr

from api.akubela import AkubelaClient, AkubelaTokens
from api.base import Sleep
from api.servitly import ServitlyClient
from api.tuya import TuyaClient
from bot.crypto import TokenCipher
from bot.desks import AkubelaProjectDesk
from bot.settings import SERVITLY_TARGET_KEYS, Settings
from bot.storage.migrate import upgrade
from bot.storage.models import CommunityRecord
from bot.storage.repositories import Storage
from bot.taskboard import ServitlyMaintenanceLog, TuyaTaskBoard
from conversations.community import AmenityRules, Community, UnknownCommunity
from conversations.validation import read_zone

_Client = TypeVar("_Client", AkubelaClient, TuyaClient, ServitlyClient)


@dataclass(frozen=True, slots=True)
class CommunityAccess:
    """A community with how the bot reaches its vendors (the manager's password stays a
    `SecretStr`, and encrypted at rest)."""

    community: Community
    akubela_base_url: str
    manager_username: str
    manager_password: SecretStr = field(repr=False)


def community_from_settings(settings: Settings, community_id: int = 1) -> CommunityAccess:
    """The one community a deployment ran before communities were data, from its settings."""
    return CommunityAccess(
        community=Community(
            id=community_id,
            name_en="Community 1",
            name_zh="社区 1",
            time_zone=settings.timezone,
            phone_region=settings.phone_region,
            service_hours_start=settings.service_hours_start,
            service_hours_end=settings.service_hours_end,
            akubela_project_id=settings.akubela_project_id,
            tuya_project_id=settings.tuya_project_id,
            tuya_room_of_residence=dict(settings.tuya_room_of_residence),
            servitly_tenant=settings.servitly_tenant,
            servitly_location_map={k: dict(v) for k, v in settings.servitly_location_map.items()},
            amenity_defaults=AmenityRules(),
            escalate_repair_after=timedelta(minutes=settings.escalate_repair_after_minutes),
            escalate_task_after=timedelta(minutes=settings.escalate_task_after_minutes),
        ),
        akubela_base_url=settings.akubela_base_url,
        manager_username=settings.akubela_manager_username,
        manager_password=settings.akubela_manager_password,
    )


@dataclass(slots=True)
class VendorFactory:
    """Builds vendor clients the way `Services.open` does (credentials, transport, time-outs)."""

    settings: Settings
    transport: Callable[[], httpx.AsyncBaseTransport]
    timeout: httpx.Timeout
    clock: Callable[[], datetime]
    sleep: Sleep
    observe: Callable[..., None] | None = None

    def akubela(self, base_url: str) -> AkubelaClient:
        """An Akubela client on `base_url`, with the deployment's OAuth client."""
        client = AkubelaClient(
            base_url=base_url,
            client_id=self.settings.akubela_client_id,
            client_secret=self.settings.akubela_client_secret,
            transport=self.transport(),
            timeout=self.timeout,
            clock=self.clock,
            sleep=self.sleep,
        )
        return self._observed(client)

    def tuya(self, project_id: str) -> TuyaClient:
        """A Tuya client for one project."""
        settings = self.settings
        client = TuyaClient(
            base_url=settings.tuya_base_url,
            client_id=settings.tuya_client_id,
            client_secret=settings.tuya_client_secret,
            project_id=project_id,
            transport=self.transport(),
            timeout=self.timeout,
            sleep=self.sleep,
        )
        return self._observed(client)

    def servitly(self, tenant: str) -> ServitlyClient:
        """A Servitly client for one tenant."""
        settings = self.settings
        client = ServitlyClient(
            base_url=settings.servitly_base_url,
            api_key=settings.servitly_api_key,
            pat=settings.servitly_pat,
            tenant=tenant,
            tenant_header=settings.servitly_tenant_header,
            transport=self.transport(),
            timeout=self.timeout,
            sleep=self.sleep,
        )
        return self._observed(client)

    def _observed(self, client: _Client) -> _Client:
        if self.observe is not None:
            client.observe_requests(self.observe)
        return client


class CommunityVendors:
    """Every community of the run and its vendor clients, each client built once."""

    def __init__(
        self,
        factory: VendorFactory,
        *,
        images: httpx.AsyncClient,
        akubela: AkubelaClient,
        tuya: TuyaClient,
        servitly: ServitlyClient,
    ) -> None:
        self._factory = factory
        self._images = images
        self._communities: dict[int, CommunityAccess] = {}
        # The clients the settings name are the first of their kind, so a deployment of one
        # community runs on exactly the clients it ran on before.
        settings = factory.settings
        self._akubela: dict[str, AkubelaClient] = {settings.akubela_base_url: akubela}
        self._tuya: dict[str, TuyaClient] = {settings.tuya_project_id: tuya}
        self._servitly: dict[str, ServitlyClient] = {settings.servitly_tenant: servitly}
        self._managers: dict[tuple[str, str], AkubelaTokens] = {}
        self._boards: dict[str, TuyaTaskBoard] = {}
        # Keyed by what they are built from, so a community whose names or rules change
        # keeps its desk and log, and one whose project moved gets new ones.
        self._logs: dict[str, ServitlyMaintenanceLog] = {}
        self._desks: dict[tuple[str, str, str], AkubelaProjectDesk] = {}

    def observe(self, hook: Callable[..., None]) -> None:
        """Every client built from now on reports its requests to `hook` (the metrics)."""
        self._factory.observe = hook

    def replace(self, communities: Iterable[CommunityAccess]) -> None:
        """Takes these communities as the run's (clients already built are kept)."""
        fresh = {access.community.id: access for access in communities}
        if not fresh:
            raise ValueError("a deployment needs at least one community")
        self._communities = dict(sorted(fresh.items()))

    def all(self) -> list[Community]:
        """Every community, by id."""
        return [access.community for access in self._communities.values()]

    def access(self, community_id: int) -> CommunityAccess:
        """One community and its vendor access; UnknownCommunity when there is none."""
        try:
            return self._communities[community_id]
        except KeyError:
            raise UnknownCommunity(community_id) from None

    def of_akubela_project(self, project_id: str) -> Community | None:
        """The community of an Akubela project, if one of the run's."""
        for access in self._communities.values():
            if project_id and access.community.akubela_project_id == project_id:
                return access.community
        return None

    def akubela(self, base_url: str) -> AkubelaClient:
        """The one Akubela client of a base URL."""
        client = self._akubela.get(base_url)
        if client is None:
            client = self._akubela[base_url] = self._factory.akubela(base_url)
        return client

    def manager(self, community_id: int) -> AkubelaTokens:
        """The manager login of a community: one token holder per account, shared by every
        community that account manages."""
        access = self.access(community_id)
        key = (access.akubela_base_url, access.manager_username)
        holder = self._managers.get(key)
        if holder is None:
            client = self.akubela(access.akubela_base_url)
            holder = client.manager_tokens(access.manager_username, access.manager_password)
            self._managers[key] = holder
        return holder

    def adopt_manager(self, community_id: int, holder: AkubelaTokens) -> None:
        """Makes `holder` the login of that community's manager account (one per account)."""
        access = self.access(community_id)
        self._managers[(access.akubela_base_url, access.manager_username)] = holder

    def tuya(self, project_id: str) -> TuyaClient:
        """The one Tuya client of a project."""
        client = self._tuya.get(project_id)
        if client is None:
            client = self._tuya[project_id] = self._factory.tuya(project_id)
        return client

    def task_board(self, community_id: int) -> TuyaTaskBoard:
        """The task board of a community's Tuya project (one per project)."""
        project_id = self.access(community_id).community.tuya_project_id
        board = self._boards.get(project_id)
        if board is None:
            board = TuyaTaskBoard(self.tuya(project_id), clock=self._factory.clock)
            self._boards[project_id] = board
        return board

    def adopt_task_board(self, board: TuyaTaskBoard) -> None:
        """Makes `board` the one of its project (the board the settings name)."""
        self._boards[board.project_id] = board

    def servitly(self, tenant: str) -> ServitlyClient:
        """The one Servitly client of a tenant."""
        client = self._servitly.get(tenant)
        if client is None:
            client = self._servitly[tenant] = self._factory.servitly(tenant)
        return client

    def maintenance_log(self, community_id: int) -> ServitlyMaintenanceLog:
        """The maintenance log of a community: its tenant, its rooms' places."""
        community = self.access(community_id).community
        key = _log_key(community)
        log = self._logs.get(key)
        if log is None:
            settings = self._factory.settings
            log = ServitlyMaintenanceLog(
                self.servitly(community.servitly_tenant),
                targets=community.servitly_location_map,
                alert_definition_id=settings.servitly_maintenance_alert_definition_id,
                thing_definition_id=settings.servitly_thing_definition_id,
                deprecated_works=settings.servitly_use_deprecated_maintenance_works,
            )
            self._logs[key] = log
        return log

    def adopt_maintenance_log(self, community_id: int, log: ServitlyMaintenanceLog) -> None:
        """Makes `log` the one of that community's tenant and places."""
        self._logs[_log_key(self.access(community_id).community)] = log

    def project_desk(self, community_id: int) -> AkubelaProjectDesk:
        """The whole community's repairs, through its manager's login."""
        access = self.access(community_id)
        key = _desk_key(access)
        desk = self._desks.get(key)
        if desk is None:
            desk = AkubelaProjectDesk(
                self.akubela(access.akubela_base_url),
                self.manager(community_id),
                access.community.akubela_project_id,
                images=self._images,
            )
            self._desks[key] = desk
        return desk

    def adopt_project_desk(self, community_id: int, desk: AkubelaProjectDesk) -> None:
        """Makes `desk` the one of that community's project and manager."""
        self._desks[_desk_key(self.access(community_id))] = desk

    async def aclose(self) -> None:
        """Closes every client's pool (the settings' own clients included)."""
        clients: list[AkubelaClient | TuyaClient | ServitlyClient] = [
            *self._akubela.values(),
            *self._tuya.values(),
            *self._servitly.values(),
        ]
        for client in clients:
            await client.aclose()


def _log_key(community: Community) -> str:
    return json.dumps(
        [
            community.servitly_tenant,
            {k: dict(v) for k, v in community.servitly_location_map.items()},
        ],
        sort_keys=True,
    )


def _desk_key(access: CommunityAccess) -> tuple[str, str, str]:
    return (access.akubela_base_url, access.manager_username, access.community.akubela_project_id)


# ---- stored communities ------------------------------------------------------------------------

RULE_FIELDS = ("grid_minutes", "min_minutes", "max_minutes", "horizon_days")
KNOWN_LANGUAGES = frozenset({"en", "zh"})


def rules_of(data: Mapping[str, Any], defaults: AmenityRules | None = None) -> AmenityRules:
    """Amenity rules from stored or typed values; a field left out takes `defaults`'."""
    unknown = set(data) - set(RULE_FIELDS)
    if unknown:
        raise ValueError(
            "unknown amenity rule "
            + ", ".join(sorted(unknown))
            + " (known: "
            + ", ".join(RULE_FIELDS)
            + ")"
        )
    base = defaults or AmenityRules()
    values: dict[str, int] = {}
    for name in RULE_FIELDS:
        value = data.get(name, getattr(base, name))
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, not {value!r}")
        values[name] = value
    return AmenityRules(**values)


def rules_data(rules: AmenityRules) -> dict[str, int]:
    """Amenity rules as stored."""
    return {name: getattr(rules, name) for name in RULE_FIELDS}


def access_of(row: CommunityRecord, cipher: TokenCipher) -> CommunityAccess:
    """A stored community, its manager's password decrypted."""
    defaults = rules_of(row.amenity_defaults)
    return CommunityAccess(
        community=Community(
            id=row.id,
            name_en=row.name_en,
            name_zh=row.name_zh,
            time_zone=row.time_zone,
            languages=tuple(str(code) for code in row.languages),
            phone_region=row.phone_region,
            service_hours_start=row.service_hours_start,
            service_hours_end=row.service_hours_end,
            akubela_project_id=row.akubela_project_id,
            tuya_project_id=row.tuya_project_id,
            tuya_room_of_residence={str(k): str(v) for k, v in row.tuya_room_of_residence.items()},
            servitly_tenant=row.servitly_tenant,
            servitly_location_map={
                str(k): {str(a): str(b) for a, b in v.items()}
                for k, v in row.servitly_location_map.items()
            },
            amenity_defaults=defaults,
            amenity_rules=MappingProxyType(
                {str(k): rules_of(v, defaults) for k, v in row.amenity_rules.items()}
            ),
            escalate_repair_after=timedelta(minutes=row.escalate_repair_minutes),
            escalate_task_after=timedelta(minutes=row.escalate_task_minutes),
        ),
        akubela_base_url=row.akubela_base_url,
        manager_username=row.manager_username,
        manager_password=SecretStr(cipher.decrypt(row.manager_password_encrypted)),
    )


def stored_values(access: CommunityAccess, cipher: TokenCipher) -> dict[str, Any]:
    """A community's columns (but its id), the manager's password encrypted."""
    community = access.community
    return {
        "name_en": community.name_en,
        "name_zh": community.name_zh,
        "time_zone": community.time_zone,
        "languages": list(community.languages),
        "phone_region": community.phone_region,
        "service_hours_start": community.service_hours_start,
        "service_hours_end": community.service_hours_end,
        "amenity_defaults": rules_data(community.amenity_defaults),
        "amenity_rules": {k: rules_data(v) for k, v in community.amenity_rules.items()},
        "escalate_repair_minutes": int(community.escalate_repair_after.total_seconds() // 60),
        "escalate_task_minutes": int(community.escalate_task_after.total_seconds() // 60),
        "akubela_base_url": access.akubela_base_url,
        "akubela_project_id": community.akubela_project_id,
        "manager_username": access.manager_username,
        "manager_password_encrypted": cipher.encrypt(access.manager_password.get_secret_value()),
        "tuya_project_id": community.tuya_project_id,
        "tuya_room_of_residence": dict(community.tuya_room_of_residence),
        "servitly_tenant": community.servitly_tenant,
        "servitly_location_map": {k: dict(v) for k, v in community.servitly_location_map.items()},
    }


def _minutes(value: int) -> str:
    return f"{value} minute" + ("" if value == 1 else "s")


def rule_problems(where: str, rules: AmenityRules) -> list[str]:
    """What is wrong with one amenity's rules, in plain words."""
    problems: list[str] = []
    grid = rules.grid_minutes
    if grid <= 0:
        problems.append(f"{where}: the grid must be at least 1 minute")
    if rules.min_minutes <= 0:
        problems.append(f"{where}: the shortest booking must be at least 1 minute")
    if rules.horizon_days <= 0:
        problems.append(f"{where}: the booking horizon must be at least 1 day")
    if rules.min_minutes > rules.max_minutes:
        problems.append(
            f"{where}: the shortest booking ({_minutes(rules.min_minutes)}) is longer than the "
            f"longest ({_minutes(rules.max_minutes)})"
        )
    if grid > 0:
        for label, length in (("shortest", rules.min_minutes), ("longest", rules.max_minutes)):
            if length > 0 and length % grid:
                problems.append(
                    f"{where}: the {grid}-minute grid does not divide the {label} booking "
                    f"({_minutes(length)}); bookings last whole steps of the grid"
                )
    return problems


def problems(access: CommunityAccess, others: Iterable[CommunityAccess] = ()) -> list[str]:
    """Everything wrong with a community (given the deployment's other ones), in plain
    words; empty when it may be kept."""
    community = access.community
    found: list[str] = []
    if community.id < 1:
        found.append(f"the community id must be 1 or more, not {community.id}")
    if not community.name_en.strip() or not community.name_zh.strip():
        found.append("the community needs a name in English and in Chinese")
    if read_zone(community.time_zone) is None or read_zone(community.time_zone) != ZoneInfo(
        community.time_zone.strip() or "UTC"
    ):
        found.append(
            f"unknown time zone {community.time_zone!r}: use a name such as Asia/Shanghai or "
            "Asia/Singapore"
        )
    if community.phone_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        found.append(
            f"unknown phone region {community.phone_region!r}: use a code such as CN or SG"
        )
    unknown = set(community.languages) - KNOWN_LANGUAGES
    if not community.languages or unknown:
        found.append("the languages must be some of: " + ", ".join(sorted(KNOWN_LANGUAGES)))
    if community.service_hours_end <= community.service_hours_start:
        found.append(
            f"the service hours end ({community.service_hours_end:%H:%M}) before they start "
            f"({community.service_hours_start:%H:%M})"
        )
    for label, after in (
        ("repair", community.escalate_repair_after),
        ("task", community.escalate_task_after),
    ):
        if after <= timedelta(0):
            found.append(f"the {label} escalation time must be more than 0 minutes")
    found += rule_problems("the amenity defaults", community.amenity_defaults)
    for amenity_id, rules in community.amenity_rules.items():
        found += rule_problems(f"amenity {amenity_id}", rules)
    if not community.akubela_project_id.strip():
        found.append("the community needs its Akubela project id")
    if not access.akubela_base_url.startswith(("http://", "https://")):
        found.append(f"the Akubela base URL {access.akubela_base_url!r} is not an http(s) URL")
    if not access.manager_username.strip() or not access.manager_password.get_secret_value():
        found.append("the community needs its Akubela manager login (username and password)")
    for room_id, target in community.servitly_location_map.items():
        if len(target) != 1 or not set(target) <= SERVITLY_TARGET_KEYS or not all(target.values()):
            found.append(f"Servitly location map: room {room_id} needs one thingId or locationId")
    for other in others:
        if other.community.id == community.id:
            continue
        if other.community.akubela_project_id == community.akubela_project_id:
            found.append(
                f"the Akubela project {community.akubela_project_id} is already community "
                f"{other.community.id}'s"
            )
    return found


async def first_community(storage: Storage, settings: Settings, cipher: TokenCipher) -> bool:
    """Makes community 1 from the settings when the database has no community (a deployment
    of one community upgrading, or a new one); False when there was one already."""
    values = stored_values(community_from_settings(settings), cipher)
    return await storage.communities.add_first(values)


async def stored_communities(storage: Storage, cipher: TokenCipher) -> list[CommunityAccess]:
    """Every stored community, by id."""
    return [access_of(row, cipher) for row in await storage.communities.all()]


async def migrate(settings: Settings) -> bool:
    """`concierge migrate`: the newest schema, and community 1 from the settings when the
    database has no community; whether community 1 was made."""
    await upgrade(settings.database_url)
    storage = Storage.open(settings.database_url)
    try:
        return await first_community(storage, settings, TokenCipher(settings.secret_key))
    finally:
        await storage.close()
