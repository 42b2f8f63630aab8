"""End-to-end fixtures: the real `concierge demo` and headless Chromium driven by Playwright.

Chromium comes from Debian's `chromium` package (`.ci/run` installs it). Under CI a missing
browser fails these tests; elsewhere they are skipped with the reason. A failing test leaves a
screenshot of its pages in `test-artifacts/`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@dataclass(frozen=True)
class Demo:
    """A running demo: where its web chat and its sandbox are."""

    chat: str
    sandbox: str
    log: Path

    def info(self) -> dict[str, Any]:
        """The sandbox's demo credentials and ids."""
        data: dict[str, Any] = httpx.get(f"{self.sandbox}/_sandbox/demo", timeout=5).json()
        return data


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing; .ci/run installs Debian's chromium package")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`concierge demo` as a subprocess on free ports."""
    workdir = tmp_path_factory.mktemp("demo")
    ports = {name: str(_free_port()) for name in ("SANDBOX_PORT", "DEMO_PORT", "WEB_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "DEMO_", "WEB_"))}
    # Alerts poll every couple of seconds here, so a manager sees a new repair within the test.
    env["ALERT_POLL_SECONDS"] = "2"
    log = workdir / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "demo"],
            cwd=workdir,
            env=env | ports,
            stdout=out,
            stderr=out,
        )
    running = Demo(
        chat=f"http://127.0.0.1:{ports['DEMO_PORT']}",
        sandbox=f"http://127.0.0.1:{ports['SANDBOX_PORT']}",
        log=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{running.chat}/api/personas", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            pytest.fail(f"the demo stopped: {log.read_text()}")
        time.sleep(0.2)
    try:
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium."""
    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser, request: pytest.FixtureRequest) -> Generator[BrowserContext]:
    """A fresh browser profile; its pages are photographed when the test fails."""
    opened = browser.new_context(viewport={"width": 1000, "height": 900})
    opened.set_default_timeout(20_000)
    yield opened
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for n, page in enumerate(opened.pages):
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{n}.png"), full_page=True)
    opened.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the test item, so fixtures can tell a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def open_chat(context: BrowserContext, demo: Demo, user_id: int) -> Page:
    """The web chat as one persona."""
    page = context.new_page()
    page.goto(f"{demo.chat}/#user={user_id}")
    page.wait_for_selector("#composer-text")
    return page


def say(page: Page, text: str) -> None:
    """Types a message and sends it."""
    page.fill("#composer-text", text)
    page.click("#send")


def press(page: Page, data_prefix: str) -> None:
    """Presses the newest inline button whose callback data starts with `data_prefix`."""
    buttons = page.locator(f'.inline-btn[data-callback-data^="{data_prefix}"]')
    buttons.last.wait_for()
    buttons.last.click()


def see(page: Page, text: str) -> None:
    """Waits until `text` is in the chat."""
    page.locator("#messages").get_by_text(text).last.wait_for()
