"""The long-lived services: opened once at start, put in `bot_data`, closed at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from api.akubela import AkubelaClient, AkubelaTokens
from api.base import Sleep, default_timeout
from api.servitly import ServitlyClient
from api.tuya import TuyaClient
from bot.alert_kinds import MANAGER_KINDS
from bot.communities import (
    CommunityVendors,
    VendorFactory,
    community_from_settings,
    first_community,
    stored_communities,
)
from bot.crypto import TokenCipher
from bot.desks import AkubelaProjectDesk, AkubelaResidentDesk
from bot.directory import AccountDirectory, InviteDesk, StoredPeople
from bot.errors import OperatorReports
from bot.linking import Linker
from bot.metrics import Metrics
from bot.presses import AnswerPressFirst
from bot.settings import Settings
from bot.storage.accounts import Accounts, Invites
from bot.storage.models import ResidentLink
from bot.storage.repair_reports import RepairReports
from bot.storage.repositories import AuditLog, Drafts, Storage, TaskAcknowledgements
from bot.taskboard import ServitlyMaintenanceLog, TuyaTaskBoard
from bot.tokens import TokenHolders
from bot.writes import WriteJournalService
from conversations.community import Community
from conversations.ports import MaintenanceLog, Ports, ProjectDesk, ResidentDesk, TaskBoard
from conversations.writes import NotLinked, Outcome, RepairCreate, Result


def utc_now() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(slots=True)
class Services:
    """Everything handlers and jobs use, reached through `context.services`; the
    conversations see it as their `Ports` (conversations.ports) and nothing more."""

    settings: Settings
    storage: Storage
    accounts: Accounts
    invites: Invites
    cipher: TokenCipher
    akubela: AkubelaClient
    tokens: TokenHolders  # one holder per linked resident account, shared by every user of it
    tuya: TuyaClient
    servitly: ServitlyClient
    linker: Linker
    images: httpx.AsyncClient
    repair_reports: RepairReports
    vendors: CommunityVendors  # every community and its vendor clients (bot.communities)
    clock: Callable[[], datetime] = field(default=utc_now)
    metrics: Metrics = field(default_factory=Metrics)
    reports: OperatorReports = field(init=False)
    task_board: TuyaTaskBoard = field(init=False)
    maintenance_log: MaintenanceLog = field(init=False)
    manager_auth: AkubelaTokens = field(init=False)
    project_desk: ProjectDesk = field(init=False)
    writes: WriteJournalService = field(init=False)
    directory: AccountDirectory = field(init=False)
    invite_desk: InviteDesk = field(init=False)
    people: StoredPeople = field(init=False)

    def __post_init__(self) -> None:
        for client in (self.akubela, self.tuya, self.servitly):
            client.observe_requests(self.metrics.vendor_request)
        self.vendors.observe(self.metrics.vendor_request)
        # Until the database's communities are read (load_communities), the settings are the
        # one community, as they were before communities were data.
        self.vendors.replace([community_from_settings(self.settings)])
        self.reports = OperatorReports(
            delay=self.settings.operator_report_delay_seconds,
            interval=self.settings.operator_report_interval_seconds,
        )
        # Built here from the clients above, so each keeps its name cache for the whole run;
        # the first community's board, log, login and desk are these same objects.
        self.task_board = TuyaTaskBoard(self.tuya, clock=self.clock)
        self.vendors.adopt_task_board(self.task_board)
        settings = self.settings
        self.maintenance_log = ServitlyMaintenanceLog(
            self.servitly,
            targets=settings.servitly_location_map,
            alert_definition_id=settings.servitly_maintenance_alert_definition_id,
            thing_definition_id=settings.servitly_thing_definition_id,
            deprecated_works=settings.servitly_use_deprecated_maintenance_works,
        )
        # One manager login per account for the whole run, shared by every view that needs it.
        self.manager_auth = self.akubela.manager_tokens(
            settings.akubela_manager_username, settings.akubela_manager_password
        )
        self.vendors.adopt_manager(1, self.manager_auth)
        self.project_desk = AkubelaProjectDesk(
            self.akubela, self.manager_auth, settings.akubela_project_id, images=self.images
        )
        self.vendors.adopt_maintenance_log(1, self.maintenance_log)
        self.vendors.adopt_project_desk(1, self.project_desk)
        # Long enough for a write's look, preparation and send, each with the client's
        # timeouts and read retries; a process killed mid-send is taken over sooner (bot.writes).
        lease = timedelta(seconds=4 * (settings.http_connect_timeout + settings.http_read_timeout))
        self.writes = WriteJournalService(
            self.storage,
            targets_for=lambda telegram_id: UserTargets(self, telegram_id),
            clock=self.clock,
            lease=lease + timedelta(seconds=30),
        )
        self.writes.on_outcome(self._keep_repair_photos)
        self.writes.on_outcome(self._audit)
        self.directory = AccountDirectory(
            self.accounts,
            self.linker,
            self.tokens,
            settings.admin_telegram_ids,
            self.community_of_residence,
        )
        self.invite_desk = InviteDesk(self.invites, self.directory, self.clock)
        self.people = StoredPeople(self.storage.users)

    @property
    def alert_switches(self) -> dict[str, str]:
        """The manager alert kinds /alerts offers, with their labels."""
        return {kind.value: label for kind, label in MANAGER_KINDS.items()}

    @property
    def drafts(self) -> Drafts:
        """Drafts of unfinished flows."""
        return self.storage.drafts

    @property
    def audit(self) -> AuditLog:
        """The audit log."""
        return self.storage.audit

    @property
    def acknowledgements(self) -> TaskAcknowledgements:
        """Which worker has seen which task."""
        return self.storage.task_acknowledgements

    async def load_communities(self) -> None:
        """Takes the database's communities as the run's; a database with none (a deployment
        of one community, upgraded) gets community 1 from the settings first. A change made
        with `concierge community` is read here, at the next start."""
        await first_community(self.storage, self.settings, self.cipher)
        self.vendors.replace(await stored_communities(self.storage, self.cipher))

    def communities(self) -> list[Community]:
        """Every community of the deployment, by id."""
        return self.vendors.all()

    def community(self, community_id: int) -> Community:
        """One community (UnknownCommunity when there is none)."""
        return self.vendors.access(community_id).community

    async def community_of(self, telegram_id: int) -> Community:
        """The user's community: a resident's follows the residence they act for (the project
        Akubela's family list gave it); a worker's or manager's is the first they serve, so a
        Marina Bay manager reads Marina Bay's times; anyone else's is the first community."""
        link = await self.accounts.resident(telegram_id)
        if link is not None and link.residence_id is not None:
            community = self._community_of_residence(link, link.residence_id)
            if community is not None:
                return community
        known = {c.id: c for c in self.communities()}
        served = sorted(
            i for i in await self.accounts.staff_community_ids(telegram_id) if i in known
        )
        return known[served[0]] if served else self.communities()[0]

    def community_of_residence(self, residence: Mapping[str, Any]) -> Community | None:
        """The community of a residence as a resident's link keeps it, by its Akubela project:
        the first community for a link from before links kept the project, None for a project
        that is none of the deployment's (nobody here manages it)."""
        project_id = str(residence.get("project_id") or "")
        if not project_id:
            return self.communities()[0]
        return self.vendors.of_akubela_project(project_id)

    def _community_of_residence(self, link: ResidentLink, residence_id: str) -> Community | None:
        for residence in link.residences:
            if isinstance(residence, dict) and str(residence.get("residence_id")) == residence_id:
                return self.vendors.of_akubela_project(str(residence.get("project_id") or ""))
        return None

    def task_board_of(self, community_id: int) -> TaskBoard:
        """One community's task board."""
        return self.vendors.task_board(community_id)

    def project_desk_of(self, community_id: int) -> ProjectDesk:
        """One community's repairs, through its manager's login."""
        return self.vendors.project_desk(community_id)

    def maintenance_log_of(self, community_id: int) -> MaintenanceLog:
        """One community's maintenance log."""
        return self.vendors.maintenance_log(community_id)

    async def _keep_repair_photos(self, outcome: Outcome) -> None:
        """A reported repair keeps its photos once it is created, however that became known."""
        write = outcome.write
        if not outcome.done or not isinstance(write, RepairCreate) or not outcome.record_id:
            return
        await self.repair_reports.add(
            maintenance_id=outcome.record_id,
            telegram_id=outcome.telegram_id,
            residence_id=write.residence_id,
            photo_file_ids=write.photo_file_ids,
            description=write.description,
        )

    async def _audit(self, outcome: Outcome) -> None:
        """Every write that reached a vendor goes in the audit log."""
        if outcome.result is not Result.DONE:
            return
        write = outcome.write
        await self.storage.audit.append(
            telegram_id=outcome.telegram_id,
            vendor=write.vendor,
            action=write.audit_action,
            target=write.audit_target(outcome.record_id),
            request_summary=write.summary()
            | ({"record_id": outcome.record_id} if outcome.record_id else {}),
            result="found after a lost answer" if outcome.found else "done",
            at=self.clock(),
        )

    async def resident_desk(self, telegram_id: int) -> ResidentDesk | None:
        """The resident's desk for their chosen residence; None until linked and chosen, and
        while a lost login waits for them to link again."""
        link = await self.accounts.resident(telegram_id)
        if link is None:
            self.tokens.forget(telegram_id)  # unlinked, perhaps by another process
            return None
        if link.residence_id is None:
            return None
        return self._desk(link, link.residence_id)

    async def desk_for_residence(
        self, telegram_id: int, residence_id: str
    ) -> AkubelaResidentDesk | None:
        """The resident's desk for one of their residences (None when it is not theirs, or
        while their login is lost)."""
        link = await self.accounts.resident(telegram_id)
        if link is None:
            self.tokens.forget(telegram_id)
            return None
        return self._desk(link, residence_id)

    def _desk(self, link: ResidentLink, residence_id: str) -> AkubelaResidentDesk | None:
        if residence_id not in {
            str(r.get("residence_id")) for r in link.residences if isinstance(r, dict)
        }:
            return None
        holder = self.tokens.holder(link)
        if holder is None:
            return None
        community = self._community_of_residence(link, residence_id) or self.communities()[0]
        utc_dates_in = community.zone if self.settings.akubela_time_list_date == "utc" else None
        return AkubelaResidentDesk(
            self.akubela, holder, residence_id, images=self.images, utc_dates_zone=utc_dates_in
        )

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        vendor_transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
        vendor_sleep: Sleep = asyncio.sleep,
    ) -> Services:
        """Builds every service from the settings (tests pass the sandbox's transport)."""

        def vendor() -> httpx.AsyncBaseTransport:
            # A vendor call answers the button press that caused it first (bot.presses).
            return AnswerPressFirst(vendor_transport)

        timeout = default_timeout(settings.http_connect_timeout, settings.http_read_timeout)
        storage = Storage.open(settings.database_url)
        accounts = storage.accounts
        cipher = TokenCipher(settings.secret_key)
        akubela = AkubelaClient(
            base_url=settings.akubela_base_url,
            client_id=settings.akubela_client_id,
            client_secret=settings.akubela_client_secret,
            transport=vendor(),
            timeout=timeout,
            clock=clock,
            sleep=vendor_sleep,
        )
        images = httpx.AsyncClient(transport=vendor(), timeout=timeout, follow_redirects=True)
        tokens = TokenHolders(accounts=accounts, akubela=akubela, cipher=cipher, clock=clock)
        tuya = TuyaClient(
            base_url=settings.tuya_base_url,
            client_id=settings.tuya_client_id,
            client_secret=settings.tuya_client_secret,
            project_id=settings.tuya_project_id,
            transport=vendor(),
            timeout=timeout,
            sleep=vendor_sleep,
        )
        servitly = ServitlyClient(
            base_url=settings.servitly_base_url,
            api_key=settings.servitly_api_key,
            pat=settings.servitly_pat,
            tenant=settings.servitly_tenant,
            tenant_header=settings.servitly_tenant_header,
            transport=vendor(),
            timeout=timeout,
            sleep=vendor_sleep,
        )
        factory = VendorFactory(
            settings=settings, transport=vendor, timeout=timeout, clock=clock, sleep=vendor_sleep
        )
        return cls(
            settings=settings,
            images=images,
            repair_reports=storage.repair_reports,
            storage=storage,
            accounts=accounts,
            invites=storage.invites,
            cipher=cipher,
            akubela=akubela,
            tokens=tokens,
            tuya=tuya,
            servitly=servitly,
            vendors=CommunityVendors(
                factory, images=images, akubela=akubela, tuya=tuya, servitly=servitly
            ),
            linker=Linker(
                oauth_states=storage.oauth_states,
                users=storage.users,
                accounts=accounts,
                akubela=akubela,
                tokens=tokens,
                cipher=cipher,
                secret_key=settings.secret_key.get_secret_value(),
                public_base_url=settings.public_base_url,
                state_ttl_seconds=settings.oauth_state_ttl_seconds,
                clock=clock,
            ),
            clock=clock,
        )

    async def aclose(self) -> None:
        """Closes every connection pool."""
        await self.reports.aclose()
        await self.vendors.aclose()  # the settings' own clients among them
        await self.images.aclose()
        await self.storage.close()


class UserTargets:
    """Where one user's writes go: their desks, the task board, the maintenance log."""

    def __init__(self, services: Services, telegram_id: int) -> None:
        self._services = services
        self._telegram_id = telegram_id

    async def desk(self, residence_id: str) -> ResidentDesk:
        """The user's desk for that residence; NotLinked when it is no longer theirs."""
        desk = await self._services.desk_for_residence(self._telegram_id, residence_id)
        if desk is None:
            raise NotLinked(f"residence {residence_id} is not linked")
        return desk

    def task_board_of(self, community_id: int) -> TaskBoard:
        """A community's task board."""
        return self._services.task_board_of(community_id)

    def maintenance_log_of(self, community_id: int) -> MaintenanceLog:
        """A community's maintenance log."""
        return self._services.maintenance_log_of(community_id)


def _provides_ports(services: Services) -> Ports:
    # mypy checks here, once, that the services give the conversations every port they use.
    return services
