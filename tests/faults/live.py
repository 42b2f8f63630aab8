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
    """The resident's side of the web chat, through its JSON API.

    Waiting looks again each time the chat changes (the web chat's long poll), not on a timer:
    hundreds of residents waiting at once then cost the server nothing between the bot's
    answers. `http` keeps one connection open for a resident's many requests (the caller
    closes it); without it each request opens its own.
    """

    def __init__(self, url: str, user_id: int, http: httpx.Client | None = None) -> None:
        self.base = f"{url}/api/chats/{user_id}"
        self.seen = 0  # the newest message when the resident last acted
        self._http = http

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        options.setdefault("timeout", 5)
        if self._http is not None:
            return self._http.request(method, f"{self.base}{path}", **options)
        return httpx.request(method, f"{self.base}{path}", **options)

    def _acting(self) -> None:
        self.seen = max((m["message_id"] for m in self.bot_messages()), default=self.seen)

    def bot_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self._request("GET", "/messages").json()
        return [m for m in messages if m["from"] == "bot" and not m.get("deleted")]

    def _version_after(self, version: int, seconds: float) -> int:
        """The chat's version once it passes `version`, or after `seconds`."""
        answer = self._request(
            "GET",
            "/events",
            params={"since": version, "timeout": round(seconds, 2)},
            timeout=httpx.Timeout(5, read=seconds + 5),
        )
        answer.raise_for_status()
        return int(answer.json()["version"])

    def wait(self, check: Callable[[], T | None], what: str, seconds: float = 30) -> T:
        """`check()`'s answer once it has one, asked again after each change of the chat."""
        deadline = time.monotonic() + seconds
        since = -1  # answered at once with the chat's version
        while True:
            left = deadline - time.monotonic()
            try:
                # The version is read before `check` looks: a change while it looks makes the
                # next long poll answer at once.
                since = self._version_after(since, 0 if since < 0 else min(max(left, 0), 25))
                result = check()
            except (httpx.TransportError, ValueError):
                result, since = None, -1
                time.sleep(0.05)
            if result:
                return result
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")

    def say(self, text: str) -> None:
        self._acting()
        self._request("POST", "/messages", json={"text": text}).raise_for_status()

    def send_photo(self, data: bytes, caption: str | None = None) -> None:
        """Sends a photo (image bytes) from the resident's side."""
        self._acting()
        form = {"caption": caption} if caption else None
        files = {"photo": ("photo.png", data, "image/png")}
        self._request("POST", "/messages", data=form, files=files).raise_for_status()

    def wait_for_text(self, part: str) -> dict[str, Any]:
        """The bot's answer to the last action (a new message, or one edited) holding `part`."""

        def found() -> dict[str, Any] | None:
            for message in reversed(self.bot_messages()):
                fresh = message["message_id"] > self.seen or message["edited"]
                if fresh and part in (message.get("text") or message.get("caption") or ""):
                    return dict(message)
            return None

        message: dict[str, Any] = self.wait(found, repr(part))
        return message

    def press(self, data: str) -> None:
        """Presses the newest button carrying `data`, once the bot has shown it."""

        def shown() -> dict[str, Any] | None:
            for message in reversed(self.bot_messages()):
                for row in message.get("buttons") or []:
                    if any(button.get("callback_data") == data for button in row):
                        return dict(message)
            return None

        message = self.wait(shown, f"a button {data!r}")
        self._acting()
        answer = self._request(
            "POST", "/callbacks", json={"message_id": message["message_id"], "data": data}
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
