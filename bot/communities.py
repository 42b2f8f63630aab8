"""The deployment's communities and the vendor clients each one reaches.

A community's rules are data (`conversations.community.Community`, kept in the `communities`
table); how the bot reaches its vendors is here: one Akubela client per base URL (one HTTP
pool, shared by every community on it), one manager login per community account, one Tuya
client per project and one Servitly client per tenant. Each is built the first time a
community needs it and kept for the run, so its token and name caches are shared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import httpx
from pydantic import SecretStr

from api.akubela import AkubelaClient, AkubelaTokens
from api.base import Sleep
from api.servitly import ServitlyClient
from api.tuya import TuyaClient
from bot.desks import AkubelaProjectDesk
from bot.settings import Settings
from bot.taskboard import ServitlyMaintenanceLog, TuyaTaskBoard
from conversations.community import AmenityRules, Community, UnknownCommunity

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
