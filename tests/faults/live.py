"""The real bot process on the demo stack, for tests that kill it: the resident's side of the
web chat, `concierge run` as a child process, and waiting for either to show something."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def eventually(check: Callable[[], T | None], what: str, seconds: float = 30) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.TransportError, ValueError):
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class WebChat:
    """The resident's side of the web chat, through its JSON API."""

    def __init__(self, url: str, user_id: int) -> None:
        self.base = f"{url}/api/chats/{user_id}"
        self.seen = 0  # the newest message when the resident last acted

    def _acting(self) -> None:
        self.seen = max((m["message_id"] for m in self.bot_messages()), default=self.seen)

    def bot_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = httpx.get(f"{self.base}/messages", timeout=5).json()
        return [m for m in messages if m["from"] == "bot" and not m.get("deleted")]

    def say(self, text: str) -> None:
        self._acting()
        httpx.post(f"{self.base}/messages", json={"text": text}, timeout=5).raise_for_status()

    def send_photo(self, data: bytes, caption: str | None = None) -> None:
        """Sends a photo (image bytes) from the resident's side."""
        self._acting()
        form = {"caption": caption} if caption else None
        files = {"photo": ("photo.png", data, "image/png")}
        answer = httpx.post(f"{self.base}/messages", data=form, files=files, timeout=5)
        answer.raise_for_status()

    def wait_for_text(self, part: str) -> dict[str, Any]:
        """The bot's answer to the last action (a new message, or one edited) holding `part`."""

        def found() -> dict[str, Any] | None:
            for message in reversed(self.bot_messages()):
                fresh = message["message_id"] > self.seen or message["edited"]
                if fresh and part in (message.get("text") or message.get("caption") or ""):
                    return dict(message)
            return None

        message: dict[str, Any] = eventually(found, repr(part))
        return message

    def press(self, data: str) -> None:
        """Presses the newest button carrying `data`, once the bot has shown it."""

        def shown() -> dict[str, Any] | None:
            for message in reversed(self.bot_messages()):
                for row in message.get("buttons") or []:
                    if any(button.get("callback_data") == data for button in row):
                        return dict(message)
            return None

        message = eventually(shown, f"a button {data!r}")
        self._acting()
        answer = httpx.post(
            f"{self.base}/callbacks",
            json={"message_id": message["message_id"], "data": data},
            timeout=5,
        )
        answer.raise_for_status()


class BotProcess:
    """`concierge run` as its own process, logging to a file."""

    def __init__(self, env: dict[str, str], workdir: Path, web_port: int) -> None:
        self.env, self.workdir, self.web_port = env, workdir, web_port
        self.log_path = workdir / "bot.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, seconds: float = 30) -> None:
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        health = f"http://127.0.0.1:{self.web_port}/healthz"
        eventually(lambda: httpx.get(health, timeout=1).json() == {"ok": True}, "the bot", seconds)

    def stop(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text()


def bot_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: this one without vendor settings, plus `overrides`."""
    kept = {
        k: v for k, v in os.environ.items() if not k.startswith(("AKUBELA", "TUYA", "SERVITLY"))
    }
    return kept | dict(overrides)
