"""The real bot process on the demo stack, killed with SIGKILL half way through a repair and a
booking, started again on the same database: both are finished, each exists once at Akubela,
and what the resident typed before the kill is what was stored.

The bot runs as `concierge run` against the vendor sandbox and the local Bot API, each on a
free loopback port; the resident talks through the web chat's JSON API, as the page does.
PTB's timed persistence writer is set to a minute, so nothing of its state is written before
the kill: only what the bot stores the moment the user types survives, the harshest case.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette

from bot.demo import DemoPersona, seed
from bot.settings import Settings
from conversations import callbacks
from conversations.booking import at_arg
from sandbox.akubela_seed import GYM
from sandbox.botapi import Persona, create_botapi_app
from tests.faults.conftest import Figures
from tests.faults.live import BotProcess, WebChat, bot_env, free_port
from tests.support_bot import demo_residents
from tests.support_server import serve

TOKEN = "123456:SIGKILL-demo-token"
RESIDENT = Persona(user_id=7201, name="Zhao Lei", role="resident")
ZONE = ZoneInfo("Asia/Shanghai")
DESCRIPTION = "Water stains spread on the bedroom ceiling, typed before the crash"
CONTACT = "+86 139 0000 0009"
T = TypeVar("T")


@pytest.fixture
def botapi() -> Iterator[str]:
    # The manager opened the bot when they took their invite, so Telegram knows their chat: the
    # new-repair alert they get at once must reach a chat that exists.
    app = create_botapi_app(token=TOKEN, personas=[RESIDENT, _manager()])
    with serve(app) as url:
        yield url
    app.state.botapi.close()


@pytest.fixture
def vendors(sandbox_app: Starlette) -> Iterator[str]:
    with serve(sandbox_app) as url:
        yield url


def _tomorrow_at(hour: int) -> datetime:
    day = datetime.now(ZONE).date() + timedelta(days=1)
    return datetime.combine(day, clock_time(hour), tzinfo=ZONE)


def test_a_bot_killed_half_way_through_a_repair_and_a_booking_finishes_both_once(
    botapi: str, vendors: str, sandbox_app: Starlette, tmp_path: Path, figures: Figures
) -> None:
    person = next(r for r in demo_residents(sandbox_app) if len(r["residence_ids"]) == 1)
    home = person["residence_ids"][0]
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    web_port = free_port()
    overrides = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": f"{botapi}/bot",
        "DATABASE_URL": database_url,
        "AKUBELA_BASE_URL": f"{vendors}/akubela",
        "TUYA_BASE_URL": f"{vendors}/tuya",
        "SERVITLY_BASE_URL": f"{vendors}/servitly",
        "WEB_PORT": str(web_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "PERSISTENCE_UPDATE_INTERVAL": "60",
    }
    env = bot_env(overrides)
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        akubela_base_url=f"{vendors}/akubela",
        tuya_base_url=f"{vendors}/tuya",
        servitly_base_url=f"{vendors}/servitly",
    )
    demo = DemoPersona(RESIDENT, email=person["email"], password=person["password"])
    asyncio.run(seed(settings, [demo, DemoPersona(_manager(), manages=True)], None))
    akubela = sandbox_app.state.control.vendors["akubela"]
    chat = WebChat(botapi, RESIDENT.user_id)
    bot = BotProcess(env, tmp_path, web_port)
    start = _tomorrow_at(19)

    bot.start()
    try:
        # Half way through a repair: described, no photos, a window chosen and confirmed.
        chat.say("/repair")
        chat.wait_for_text("What needs repairing?")
        chat.say(DESCRIPTION)
        chat.press(callbacks.build("repair", "skip"))
        chat.press(callbacks.build("repair", "when", "1m"))
        chat.press(callbacks.build("repair", "ok"))
        chat.wait_for_text("How can the technician reach you?")
        # Half way through a booking: the gym, tomorrow; the start not chosen yet.
        chat.say("/book")
        chat.press(callbacks.build("book", "am", GYM))
        chat.press(callbacks.build("book", "day", _tomorrow_at(0).date().isoformat()))
        chat.wait_for_text("Gym, Tomorrow (")
    finally:
        code = bot.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL, bot.log()
    figures.faults["sigkill"] += 1

    bot.start()
    try:
        chat.say("/repair")
        chat.wait_for_text(DESCRIPTION)
        chat.press(callbacks.build("repair", "continue"))
        chat.wait_for_text("How can the technician reach you?")
        chat.say(CONTACT)
        chat.press(callbacks.build("repair", "confirm"))
        chat.wait_for_text("created")

        chat.say("/book")
        chat.wait_for_text("Picking up your unfinished booking.")
        chat.press(callbacks.build("book", "at", at_arg(start)))
        chat.press(callbacks.build("book", "dur", "60"))
        chat.press(callbacks.build("book", "confirm"))
        chat.wait_for_text("Booked!")
    finally:
        code = bot.stop(signal.SIGTERM)
    log = bot.log()
    assert code == 0, log
    assert "Traceback" not in log
    assert TOKEN.split(":")[1] not in log

    repairs = [r for r in akubela._repairs.values() if r.residence_id == home]
    mine = [r for r in repairs if "bedroom ceiling" in r.description]
    assert [(r.description, r.contact) for r in mine] == [(DESCRIPTION, CONTACT)]
    bookings = [
        b
        for b in akubela._bookings.values()
        if b.residence_id == home and b.amenity_id == GYM and b.start_time == start
    ]
    assert len(bookings) == 1
    assert bookings[0].finish_time - bookings[0].start_time == timedelta(hours=1)
    figures.outcome("repair after sigkill", len(mine))
    figures.outcome("booking after sigkill", len(bookings))


def _manager() -> Persona:
    # seed() binds a manager; nobody chats as them here.
    return Persona(user_id=7299, name="Morgan", role="manager")
