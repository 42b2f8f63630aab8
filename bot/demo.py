"""`concierge demo`: the vendor sandbox, a local Bot API with its web chat, and the real bot.

Everything listens on 127.0.0.1. The bot runs exactly as in production (`run_bot`), pointed at
the local Bot API through TELEGRAM_BASE_URL; only the outside world is simulated. The demo
database is made fresh each time, with the demo residents already linked, the workers and the
managers already bound to their communities, and one persona left as a newcomer who has
linked nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette

from bot.communities import (
    CommunityAccess,
    community_from_settings,
    first_community,
    stored_values,
)
from bot.runner import EmbeddedServer, run_bot, stop_on_signals
from bot.services import Services
from bot.settings import Settings
from bot.storage.accounts import StoredTokens
from bot.storage.migrate import upgrade
from conversations.community import AmenityRules, Community
from conversations.domain import Role
from conversations.i18n import pick_language
from sandbox.app import create_app, second_community
from sandbox.botapi import Persona, Rules, create_botapi_app

logger = logging.getLogger(__name__)

DEMO_DATABASE = "concierge-demo.db"
AUTO_ADVANCE_SECONDS = 45.0
# Someone trying the demo sees what the office did within 10 s; the sandbox is local, so the
# requests a poll costs (see the README) cost nothing here.
DEMO_ALERT_POLL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class DemoPersona:
    """Someone to chat as, and what they are in the demo data."""

    persona: Persona
    email: str | None = None
    password: str | None = None
    worker_id: str | None = None
    manages: bool = False


def demo_settings(base: Settings, *, database_path: Path) -> Settings:
    """The settings the demo runs with: every vendor and Telegram on loopback."""
    sandbox = f"http://{base.sandbox_host}:{base.sandbox_port}"
    return base.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{database_path}",
            "telegram_base_url": f"http://{base.demo_host}:{base.demo_port}/bot",
            "akubela_base_url": f"{sandbox}/akubela",
            "tuya_base_url": f"{sandbox}/tuya",
            "servitly_base_url": f"{sandbox}/servitly",
            "public_base_url": f"http://{base.web_host}:{base.web_port}",
            "run_mode": "polling",
            "alert_poll_seconds": DEMO_ALERT_POLL_SECONDS,
        }
    )


def demo_communities(settings: Settings, sandbox_app: Starlette) -> list[CommunityAccess]:
    """The demo's two communities: Garden Court in Shanghai (the settings' own, community 1)
    and Marina Bay in Singapore (community 2), each amenity with its own booking rules."""
    amenities: dict[str, str] = sandbox_app.state.control.vendors["akubela"].demo_info()[
        "amenities"
    ]
    first = community_from_settings(settings)
    shanghai = dataclasses.replace(
        first,
        community=dataclasses.replace(
            first.community,
            name_en="Garden Court",
            name_zh="花园阁",
            amenity_rules={
                # The gym takes any start: on a 5-minute grid, 80 minutes from 13:15 fit.
                amenities["gym"]: AmenityRules(5, 30, 120, 30),
                amenities["meeting_room"]: AmenityRules(30, 30, 180, 30),
                amenities["bbq"]: AmenityRules(60, 60, 120, 14),
            },
        ),
    )
    marina = second_community()
    singapore = CommunityAccess(
        community=Community(
            id=2,
            name_en="Marina Bay",
            name_zh="滨海湾",
            time_zone=marina["time_zone"],
            phone_region="SG",
            service_hours_start=time(9, 0),
            service_hours_end=time(18, 0),
            akubela_project_id=marina["akubela_project_id"],
            tuya_project_id=marina["tuya_project_id"],
            tuya_room_of_residence=marina["tuya_room_of_residence"],
            servitly_tenant=marina["servitly_tenant"],
            servitly_location_map=marina["servitly_location_map"],
            amenity_rules={
                marina["amenities"]["pool"]: AmenityRules(60, 60, 120, 14),
                marina["amenities"]["tennis"]: AmenityRules(30, 30, 120, 14),
            },
        ),
        akubela_base_url=settings.akubela_base_url,
        manager_username=marina["manager_username"],
        manager_password=SecretStr(marina["manager_password"]),
    )
    return [shanghai, singapore]


def demo_personas(sandbox_app: Starlette) -> list[DemoPersona]:
    """One persona per demo resident (Shanghai's from 1001, Singapore's from 1101), worker and
    manager, and a newcomer."""
    vendors = sandbox_app.state.control.vendors
    info = vendors["akubela"].demo_info()
    project_of = {home["residence_id"]: home["project_id"] for home in info["residences"]}
    community_of = {project["project_id"]: n for n, project in enumerate(info["projects"], 1)}
    people: list[DemoPersona] = []
    numbers = {1: 1001, 2: 1101}
    for resident in info["residents"]:
        community = community_of[project_of[resident["residence_ids"][0]]]
        user_id = numbers[community]
        numbers[community] += 1
        people.append(
            DemoPersona(
                Persona(
                    user_id=user_id,
                    name=str(resident["name"]),
                    role="resident",
                    communities=(community,),
                ),
                email=str(resident["email"]),
                password=str(resident["password"]),
            )
        )
    # The workers work at Garden Court; Morgan manages both communities, Mei and Arjun one each.
    for n, worker in enumerate(vendors["tuya"].demo_info()["workers"]):
        people.append(
            DemoPersona(
                Persona(
                    user_id=2001 + n,
                    name=f"{worker['nickname']} (worker)",
                    role="worker",
                    communities=(1,),
                ),
                worker_id=str(worker["worker_id"]),
            )
        )
    managers = [
        (3001, "Morgan (manager)", (1, 2), "en"),
        (3002, "Mei 梅 (manager, Garden Court)", (1,), "zh"),
        (3003, "Arjun (manager, Marina Bay)", (2,), "en"),
    ]
    for user_id, name, communities, language in managers:
        people.append(
            DemoPersona(
                Persona(user_id, name, "manager", language, communities=communities),
                manages=True,
            )
        )
    people.append(
        DemoPersona(
            Persona(user_id=4001, name="新住户 Newcomer", role="newcomer", language_code="zh")
        )
    )
    return people


async def seed(
    settings: Settings,
    people: list[DemoPersona],
    transport: Any,
    communities: Sequence[CommunityAccess] = (),
) -> None:
    """Keeps the communities (none given: the settings' one, made at start), links the
    residents, binds the workers and the manager, in a fresh database."""
    await upgrade(settings.database_url)
    services = Services.open(settings, vendor_transport=transport)
    try:
        for access in communities:
            await services.storage.communities.save(
                access.community.id, stored_values(access, services.cipher)
            )
        for person in people:
            user_id = person.persona.user_id
            await services.storage.users.get_or_create(
                user_id,
                language=pick_language(None, person.persona.language_code),
                display_name=person.persona.name,
            )
            if person.email and person.password:
                await _link(services, user_id, person.email, person.password)
        await first_community(services.storage, settings, services.cipher)
        await bind_staff(services, people, communities)
    finally:
        await services.aclose()


async def bind_staff(
    services: Services, people: list[DemoPersona], communities: Sequence[CommunityAccess]
) -> None:
    """Binds the demo's workers and managers to their communities as staff are bound: an
    invite naming them (`concierge invite ... --community`), redeemed. A manager manages
    their communities' projects. Only the communities the demo keeps are named (the first
    alone when none are given); residents land in theirs by their homes."""
    kept = {access.community.id for access in communities} or {1}
    for person in people:
        # A persona that names no community serves the first.
        serves = [c for c in person.persona.communities or (1,) if c in kept]
        if not serves or not (person.worker_id or person.manages):
            continue
        role = Role.WORKER if person.worker_id else Role.MANAGER
        code = await services.invites.create(
            role,
            worker_id=person.worker_id,
            community_ids=serves,
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        )
        await services.invites.redeem(code, person.persona.user_id, now=datetime.now(UTC))


async def _link(services: Services, user_id: int, email: str, password: str) -> None:
    akubela = services.akubela
    tokens = await akubela.password_login(email, SecretStr(password), scope="user")
    auth = akubela.user_tokens(tokens)
    account = await akubela.get_account_info(auth)
    families = await akubela.get_family_list(auth)
    refresh = tokens.refresh_token
    cipher = services.cipher
    await services.accounts.link_resident(
        user_id,
        account_id=account.account_id,
        email=account.email or email,
        residences=[family.model_dump(mode="json") for family in families],
        tokens=StoredTokens(
            access_token_encrypted=cipher.encrypt(tokens.access_token.get_secret_value()),
            refresh_token_encrypted=cipher.encrypt(refresh.get_secret_value())
            if refresh
            else None,
            expires_at=tokens.expires_at,
        ),
    )
    if families:
        await services.accounts.choose_residence(user_id, families[0].residence_id)


async def _serve(
    app: Starlette, host: str, port: int
) -> tuple[EmbeddedServer, asyncio.Task[None]]:
    server = EmbeddedServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,  # Bot API paths carry the token
            timeout_graceful_shutdown=1,
        )
    )
    serving = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(500):
        if server.started:
            return server, serving
        await asyncio.sleep(0.01)
    raise RuntimeError(f"nothing answers on {host}:{port}")


def _print_welcome(settings: Settings, people: list[DemoPersona]) -> None:
    chat = f"http://{settings.demo_host}:{settings.demo_port}/"
    lines = [
        "",
        "Concierge demo is running. Open the web chat:",
        f"  {chat}",
        "",
        "Chat as (pick in the page; open two tabs to be two people):",
    ]
    for person in people:
        extra = f"  {person.email} / {person.password}" if person.email else ""
        ids = ", ".join(str(c) for c in person.persona.communities)
        where = f", community {ids}" if ids else ""
        lines.append(f"  - {person.persona.name} [{person.persona.role}{where}]{extra}")
    lines += [
        "",
        "Communities: 1 Garden Court (Asia/Shanghai), 2 Marina Bay (Asia/Singapore).",
        f"Vendor sandbox: http://{settings.sandbox_host}:{settings.sandbox_port}/_sandbox/demo",
        "The newcomer links an account through the sandbox's login page with the e-mail and",
        "password of any resident above. Repairs, bookings and tasks move on their own.",
        "Press Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _remove_old_database(workdir: Path) -> None:
    """A fresh demo every time: the previous run's database (and its WAL files) go."""
    for leftover in workdir.glob(f"{DEMO_DATABASE}*"):
        leftover.unlink()


async def run_demo(base: Settings, *, workdir: Path, stop: asyncio.Event | None = None) -> None:
    """Starts the sandbox, the local Bot API and the bot; runs until Ctrl-C or `stop`."""
    stop = stop or asyncio.Event()
    stop_on_signals(stop)
    database = workdir / DEMO_DATABASE
    _remove_old_database(workdir)
    settings = demo_settings(base, database_path=database)
    sandbox_app = create_app(settings, auto_advance_every=AUTO_ADVANCE_SECONDS)
    people = demo_personas(sandbox_app)
    sandbox, sandbox_task = await _serve(sandbox_app, settings.sandbox_host, settings.sandbox_port)
    botapi_app = create_botapi_app(
        token=settings.telegram_bot_token.get_secret_value(),
        personas=[person.persona for person in people],
        rules=Rules(
            answer_window=settings.demo_answer_window_seconds,
            flood_control=settings.demo_flood_control,
        ),
    )
    botapi, botapi_task = await _serve(botapi_app, settings.demo_host, settings.demo_port)
    try:
        communities = demo_communities(settings, sandbox_app)
        await seed(settings, people, httpx.ASGITransport(app=sandbox_app), communities)
        _print_welcome(settings, people)
        await run_bot(settings, stop=stop)
    finally:
        botapi_app.state.botapi.close()
        for server in (botapi, sandbox):
            server.should_exit = True
        # Let each server finish its own shutdown (lifespan included) before the loop ends;
        # cancelling them half way is what makes uvicorn print a traceback.
        await asyncio.wait({botapi_task, sandbox_task}, timeout=10)
    logger.info("demo stopped")
