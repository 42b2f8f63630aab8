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
