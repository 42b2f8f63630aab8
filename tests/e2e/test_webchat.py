"""The demo in a real browser: what a newcomer, a resident and a manager do first."""

from __future__ import annotations

import base64
from pathlib import Path

from playwright.sync_api import BrowserContext

from tests.e2e.conftest import Demo, open_chat, press, say, see

NEWCOMER = 4001
BOB = 1002
MANAGER = 3001

# A 1×1 PNG: enough for the chat's upload and for Telegram's photo checks.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_a_newcomer_links_and_reports_a_repair_and_the_manager_is_alerted(
    context: BrowserContext, demo: Demo, tmp_path: Path
) -> None:
    resident = next(
        r for r in demo.info()["akubela"]["residents"] if r["email"].startswith("dave")
    )
    manager = open_chat(context, demo, MANAGER)  # a second page, watching for alerts
    chat = open_chat(context, demo, NEWCOMER)
    say(chat, "/start")
    link = chat.locator('a.inline-btn[href*="oauth2/auth"]').last
    link.wait_for()
    login = context.new_page()
    login.goto(str(link.get_attribute("href")))
    login.fill("#email", resident["email"])
    login.fill("#password", resident["password"])
    login.locator("form").last.evaluate("form => form.requestSubmit()")
    # The bot's page names both sides before anything is linked.
    login.get_by_text(resident["email"]).first.wait_for()
    assert "新住户 Newcomer" in login.content()
    login.locator("button[value='yes']").click()
    login.get_by_text("is now linked").first.wait_for()
    see(chat, resident["email"])
    # The newcomer's Telegram speaks Chinese, and so does the bot after linking.
    see(chat, "已绑定")

    say(chat, "/repair")
    chat.locator('.inline-btn[data-callback-data="1:repair:cancel"]').last.wait_for()
    say(chat, "The bathroom ceiling light flickers all evening")
    photo = tmp_path / "light.png"
    photo.write_bytes(PIXEL)
    chat.set_input_files("#attach", str(photo))
    press(chat, "1:repair:done")
    press(chat, "1:repair:when:1")
    press(chat, "1:repair:ok")
    say(chat, "138 0000 0004")
    press(chat, "1:repair:confirm")
    see(chat, "#")
    created = [
        r
        for r in _repairs(demo)
        if r["description"] == "The bathroom ceiling light flickers all evening"
    ]
    assert len(created) == 1
    # The manager's page receives the new-repair alert, live.
    see(manager, "The bathroom ceiling light flickers all evening")


def _repairs(demo: Demo) -> list[dict[str, str]]:
    import httpx

    # The manager's view of the project, straight from the sandbox.
    info = demo.info()["akubela"]
    token = httpx.post(
        f"{demo.sandbox}/akubela/api/v1.0/invoke/open-ability/method/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "username": info["manager"]["username"],
            "password": info["manager"]["password"],
            "scope": "manager",
        },
    ).json()["result"]["access_token"]
    answer = httpx.post(
        f"{demo.sandbox}/akubela/api/v1.0/invoke/open-ability/method/manager-commands",
        # Akubela refuses a command whose Accept is not JSON, as its documents show.
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        json={
            "command": "get_maintenance_list",
            "id": "e2e",
            "param": {"project_id": info["project_id"], "page_size": 100, "page_index": 1},
        },
    ).json()
    result = answer["result"]
    repairs: list[dict[str, str]] = (
        result.get("list", result) if isinstance(result, dict) else result
    )
    return repairs


def test_a_resident_books_the_gym_and_sees_the_pin_and_qr(
    context: BrowserContext, demo: Demo
) -> None:
    gym = demo.info()["akubela"]["amenities"]["gym"]
    chat = open_chat(context, demo, BOB)
    say(chat, "/book")
    press(chat, f"1:book:am:{gym}")
    press(chat, "1:book:day:")
    press(chat, "1:book:at:")
    press(chat, "1:book:dur:")
    press(chat, "1:book:confirm")
    see(chat, "PIN")
    qr = chat.locator("#messages img.photo").last
    qr.wait_for()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")


def test_a_manager_accepts_a_task_awaiting_acceptance(context: BrowserContext, demo: Demo) -> None:
    chat = open_chat(context, demo, MANAGER)
    say(chat, "/tasks")
    press(chat, "1:tasks:filter:PENDING_ACCEPTANCE")
    press(chat, "1:tasks:open:")
    press(chat, "1:tasks:accept:")
    see(chat, "accepted")
