"""`concierge demo` as a newcomer runs it: one command, a web chat, a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _poll(check: Any, seconds: float = 40) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.TransportError, ValueError, KeyError, IndexError):
            result = None
        if result:
            return result
        time.sleep(0.1)
    return None


def test_demo_starts_serves_the_web_chat_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {name: str(_free_port()) for name in ("SANDBOX_PORT", "DEMO_PORT", "WEB_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "DEMO_", "WEB_"))}
    env |= ports
    chat = f"http://127.0.0.1:{ports['DEMO_PORT']}"
    out = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "demo"], cwd=tmp_path, env=env, stdout=out, stderr=out
    )
    try:
        personas = _poll(lambda: httpx.get(f"{chat}/api/personas", timeout=1).json())
        assert personas, (tmp_path / "demo.log").read_text()
        roles = {p["role"] for p in personas}
        assert {"resident", "worker", "manager", "newcomer"} <= roles
        resident = next(p for p in personas if p["role"] == "resident")["user_id"]
        page = httpx.get(f"{chat}/", timeout=5)
        assert page.status_code == 200
        assert "<html" in page.text.lower()

        def menu() -> Any:
            messages = httpx.get(f"{chat}/api/chats/{resident}/messages", timeout=2).json()
            return [m for m in messages if m["from"] == "bot" and m["buttons"]]

        httpx.post(f"{chat}/api/chats/{resident}/messages", json={"text": "/start"})
        answered = _poll(menu)
        assert answered, (tmp_path / "demo.log").read_text()
        labels = [b["text"] for row in answered[0]["buttons"] for b in row]
        assert any("Report a repair" in label for label in labels)
        assert (tmp_path / "concierge-demo.db").exists()
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        out.close()
    log = (tmp_path / "demo.log").read_text()
    assert code == 0, log
    assert "Concierge demo is running" in log
    assert "Traceback" not in log


def test_the_demo_polls_often_enough_to_show_every_alert_within_ten_seconds(
    tmp_path: Path,
) -> None:
    from bot.demo import demo_settings
    from bot.settings import Settings

    production = Settings(_env_file=None)
    demo = demo_settings(production, database_path=tmp_path / "demo.db")
    assert demo.alert_poll_seconds <= 10
    assert production.alert_poll_seconds == 60


async def test_the_demos_staff_serve_their_communities(tmp_path: Path, sandbox_app: Any) -> None:
    from bot.demo import demo_communities, demo_personas, seed
    from bot.settings import Settings
    from bot.storage.repositories import Storage
    from sandbox.botapi import create_botapi_app

    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    people = demo_personas(sandbox_app)
    communities = demo_communities(settings, sandbox_app)
    await seed(settings, people, httpx.ASGITransport(app=sandbox_app), communities)

    chat = create_botapi_app(token="1:demo", personas=[p.persona for p in people])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=chat), base_url="http://t"
    ) as web:
        listed = (await web.get("/api/personas")).json()
    staff = {p["user_id"]: p["community"] for p in listed if p["role"] in ("worker", "manager")}
    # Morgan manages both communities, Mei Garden Court, Arjun Marina Bay; the workers work
    # at Garden Court.
    assert staff == {2001: [1], 2002: [1], 3001: [1, 2], 3002: [1], 3003: [2]}
    storage = Storage.open(settings.database_url)
    try:
        for user_id, serves in staff.items():
            actor = await storage.accounts.actor(user_id)
            assert actor.community_ids == set(serves), user_id
        morgan = await storage.accounts.actor(3001)
        projects = {c.community.akubela_project_id for c in communities}
        projects |= {c.community.tuya_project_id for c in communities}
        assert morgan.project_ids == projects
    finally:
        await storage.close()
