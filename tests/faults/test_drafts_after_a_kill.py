"""Drafts live in one place: `kill -9` after a persistence flush loses nothing typed since.

The real bot process on the demo stack, with PTB's persistence flushed every few seconds. A
resident describes a repair and sends a photo; the flush writes their user_data; then they send
a second photo and the bot is killed before the next flush. Started again, the bot offers the
report with both photos: the newer draft in the drafts table is what it reads, and nothing
older (a copy flushed with user_data, as before) comes back over it.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.applications import Starlette

from bot.demo import DemoPersona, seed
from bot.settings import Settings
from conversations import callbacks
from sandbox.botapi import Persona, create_botapi_app
from tests.faults.conftest import Figures
from tests.faults.live import BotProcess, WebChat, bot_env, free_port
from tests.support_bot import demo_residents
from tests.support_server import serve

TOKEN = "123456:DRAFTS-demo-token"
RESIDENT = Persona(user_id=7401, name="Dave", role="resident")
MANAGER = Persona(user_id=7499, name="Morgan", role="manager")
DESCRIPTION = "Shower drain blocked, reported just before the crash"
FLUSH_SECONDS = 8


@pytest.fixture
def botapi() -> Iterator[str]:
    # The manager took their invite in the bot, so Telegram knows their chat: the alert of
    # the repair created at once must reach a chat that exists.
    app = create_botapi_app(token=TOKEN, personas=[RESIDENT, MANAGER])
    with serve(app) as url:
        yield url
    app.state.botapi.close()


@pytest.fixture
def vendors(sandbox_app: Starlette) -> Iterator[str]:
    with serve(sandbox_app) as url:
        yield url


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (shade, 80, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def _flushed_at(path: Path) -> str | None:
    """When PTB last wrote the resident's user_data (a flush), as the database keeps it."""
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT updated_at FROM user_data WHERE user_id = ?", (RESIDENT.user_id,)
        ).fetchone()
    return None if row is None else str(row[0])


def _until(check: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# After the kill, user_data is as the last flush left it: the prompt it names as the open
# flow's newest may since have lost its buttons. The new process cannot know, so taking them
# off again is a no-op Telegram refuses, which the bot takes as done.
@pytest.mark.telegram_refusals("message is not modified")
def test_a_kill_after_a_flush_loses_no_photo_and_overwrites_nothing_newer(
    botapi: str, vendors: str, sandbox_app: Starlette, tmp_path: Path, figures: Figures
) -> None:
    person = next(r for r in demo_residents(sandbox_app) if r["email"].startswith("dave"))
    database = tmp_path / "bot.db"
    database_url = f"sqlite+aiosqlite:///{database}"
    web_port = free_port()
    env = bot_env(
        {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": f"{botapi}/bot",
            "DATABASE_URL": database_url,
            "AKUBELA_BASE_URL": f"{vendors}/akubela",
            "TUYA_BASE_URL": f"{vendors}/tuya",
            "SERVITLY_BASE_URL": f"{vendors}/servitly",
            "WEB_PORT": str(web_port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            "PERSISTENCE_UPDATE_INTERVAL": str(FLUSH_SECONDS),
            "OUTBOX_INTERVAL_SECONDS": "3600",
            "ALERT_POLL_SECONDS": "3600",
        }
    )
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        akubela_base_url=f"{vendors}/akubela",
        tuya_base_url=f"{vendors}/tuya",
        servitly_base_url=f"{vendors}/servitly",
    )
    resident = DemoPersona(RESIDENT, email=person["email"], password=person["password"])
    asyncio.run(seed(settings, [resident, DemoPersona(MANAGER, manages=True)], None))
    chat = WebChat(botapi, RESIDENT.user_id)
    bot = BotProcess(env, tmp_path, web_port)

    bot.start()
    try:
        chat.say("/repair")
        chat.wait_for_text("What needs repairing?")
        chat.say(DESCRIPTION)
        chat.send_photo(_png(10))
        chat.wait_for_text("1 of 5 photos received")
        # The periodic flush writes the resident's user_data after the first photo...
        before = _flushed_at(database)
        _until(lambda: _flushed_at(database) != before, "a flush", FLUSH_SECONDS * 2)
        flushed = _flushed_at(database)
        # ...and the second photo comes before the next one.
        chat.send_photo(_png(200))
        chat.wait_for_text("2 of 5 photos received")
    finally:
        code = bot.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL, bot.log()
    assert _flushed_at(database) == flushed, "a flush came after the second photo: too slow"
    figures.faults["sigkill"] += 1

    bot.start()
    try:
        chat.say("/repair")
        chat.wait_for_text("You have an unfinished repair report")
        chat.press(callbacks.build("repair", "continue"))
        # Both photos: the draft is read from its table, which the second photo updated.
        chat.wait_for_text("2 of 5 photos received")
        chat.press(callbacks.build("repair", "done"))
        chat.press(callbacks.build("repair", "when", "1m"))
        chat.press(callbacks.build("repair", "ok"))
        chat.wait_for_text("How can the technician reach you?")
        chat.say("+86 139 0000 0021")
        summary = chat.wait_for_text("Please check your repair report")
        assert "📷 Photos: 2" in (summary.get("text") or "")
        chat.press(callbacks.build("repair", "confirm"))
        chat.wait_for_text("created")
    finally:
        code = bot.stop(signal.SIGTERM)
    assert code == 0, bot.log()
    assert "Traceback" not in bot.log()

    with sqlite3.connect(database) as db:
        [(photos,)] = db.execute(
            "SELECT photo_file_ids FROM repair_reports WHERE description = ?", (DESCRIPTION,)
        ).fetchall()
        [(user_data,)] = db.execute(
            "SELECT data FROM user_data WHERE user_id = ?", (RESIDENT.user_id,)
        ).fetchall()
    assert len(set(json.loads(photos))) == 2
    # user_data holds no draft (drafts were once kept under the flow's name): only what is the
    # user's own (language, last contact, the open flow's live prompt...).
    assert "repair" not in json.loads(user_data)
    figures.outcome("repair draft after a flush and sigkill", 1)
