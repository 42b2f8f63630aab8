"""`concierge check` against the vendor sandbox and the local Bot API: every line, ok and not."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.check import Result, run_checks, webhook_url
from bot.cli import main
from bot.settings import Settings
from tests.bot.conftest import ANN, TOKEN, closed_port


async def _check(env: dict[str, Any], **overrides: Any) -> dict[str, Result]:
    settings = Settings(_env_file=None, **(env | overrides))
    return {result.name: result for result in await run_checks(settings)}


def _failed(results: dict[str, Result]) -> dict[str, str]:
    return {name: result.detail for name, result in results.items() if not result.ok}


async def test_a_healthy_deployment_is_ok_on_every_line(env: dict[str, Any]) -> None:
    results = await _check(env)
    assert list(results) == ["settings", "database", "akubela", "tuya", "servitly", "telegram"]
    assert _failed(results) == {}
    assert "@concierge_demo_bot" in results["telegram"].detail
    assert all(result.line().startswith("ok") for result in results.values())


async def test_an_empty_database_needs_migrating(
    env: dict[str, Any], empty_database_url: str
) -> None:
    failed = _failed(await _check(env, database_url=empty_database_url))
    assert list(failed) == ["database"]
    assert "concierge migrate" in failed["database"]


async def test_an_unreachable_database_is_named(env: dict[str, Any]) -> None:
    url = f"postgresql+asyncpg://concierge:pw@127.0.0.1:{closed_port()}/concierge"
    failed = _failed(await _check(env, database_url=url))
    assert list(failed) == ["database"]
    assert "cannot be reached" in failed["database"]
    assert "pw" not in failed["database"].split("(")[0]


@pytest.mark.parametrize(
    ("vendor", "overrides", "says"),
    [
        ("akubela", {"akubela_client_secret": "Xq9-not-it"}, "refused the credentials"),
        ("akubela", {"akubela_manager_password": "Xq9-not-it"}, "refused the credentials"),
        ("tuya", {"tuya_client_secret": "Xq9-not-it"}, "refused the credentials"),
        ("servitly", {"servitly_pat": "Xq9-not-it"}, "refused the credentials"),
        ("servitly", {"servitly_tenant": "another"}, "refused the credentials"),
    ],
)
async def test_each_vendor_refusing_our_credentials_is_one_failed_line(
    env: dict[str, Any], vendor: str, overrides: dict[str, str], says: str
) -> None:
    failed = _failed(await _check(env, **overrides))
    assert list(failed) == [vendor]
    assert says in failed[vendor]
    assert "Xq9-not-it" not in failed[vendor]


async def test_a_vendor_that_does_not_answer_is_named_with_its_url(env: dict[str, Any]) -> None:
    gone = f"http://127.0.0.1:{closed_port()}/tuya"
    failed = _failed(await _check(env, tuya_base_url=gone))
    assert list(failed) == ["tuya"]
    assert f"not answering at {gone}" in failed["tuya"]


async def test_telegram_refusing_the_token_or_not_answering(env: dict[str, Any]) -> None:
    refused = _failed(await _check(env, telegram_bot_token="123456:NOT-our-token"))
    assert list(refused) == ["telegram"]
    assert "refused TELEGRAM_BOT_TOKEN" in refused["telegram"]
    assert "NOT-our-token" not in refused["telegram"]
    down = f"http://127.0.0.1:{closed_port()}/bot"
    silent = _failed(await _check(env, telegram_base_url=down))
    assert list(silent) == ["telegram"]
    assert "not answering" in silent["telegram"]


async def _set_webhook(botapi: str, url: str) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{botapi}/bot{TOKEN}/setWebhook", data={"url": url})
    assert answer.json()["ok"], answer.text


async def test_webhook_lines_ok_and_failing(env: dict[str, Any], botapi: tuple[str, Any]) -> None:
    base, state = botapi
    hook_port = closed_port()
    webhook = env | {
        "run_mode": "webhook",
        "webhook_secret": "hook-secret",
        "public_base_url": f"http://127.0.0.1:{hook_port}",
    }
    settings = Settings(_env_file=None, **webhook)

    # No webhook set yet: the bot sets it when it starts.
    results = await _check(webhook)
    assert list(results)[-3:] == ["webhook https", "webhook", "webhook errors"]
    assert _failed(results) == {"webhook": results["webhook"].detail}
    assert "no webhook" in results["webhook"].detail

    await _set_webhook(base, "http://127.0.0.1:9/somewhere-else")
    failed = _failed(await _check(webhook))
    assert list(failed) == ["webhook"]
    assert "somewhere-else" in failed["webhook"]

    await _set_webhook(base, webhook_url(settings))
    assert _failed(await _check(webhook)) == {}

    # Someone writes; nothing listens at the webhook, and Telegram says so.
    async with httpx.AsyncClient() as http:
        await http.post(f"{base}/api/chats/{ANN.user_id}/messages", json={"text": "hello"})
    for _ in range(100):
        if state.webhook.last_error_date is not None:
            break
        await asyncio.sleep(0.05)
    failed = _failed(await _check(webhook))
    assert list(failed) == ["webhook errors"]
    assert "last delivery failed" in failed["webhook errors"]


async def test_webhook_on_plain_http_elsewhere_is_not_https(env: dict[str, Any]) -> None:
    failed = _failed(
        await _check(
            env,
            run_mode="webhook",
            webhook_secret="hook-secret",
            public_base_url="http://bot.example.org",
        )
    )
    assert "not HTTPS" in failed["webhook https"]


def test_the_command_prints_a_line_each_and_fails_when_one_fails(
    env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name.upper(), value)
    assert main(["check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert all(line.startswith("ok") for line in lines)

    monkeypatch.setenv("TUYA_CLIENT_SECRET", "wrong")
    assert main(["check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok", "ok", "ok", "FAIL", "ok", "ok"]


def test_settings_that_do_not_load_are_the_first_failed_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BASE_URL", "https://api.telegram.org/bot")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  settings: ")
    assert "SECRET_KEY" in out
    assert list(tmp_path.iterdir()) == []


async def _keep_communities(settings: Settings, sandbox_app: Starlette, password: str) -> None:
    """The demo's two communities stored as `concierge community` keeps them, Marina Bay's
    manager password being `password`."""
    import dataclasses

    from pydantic import SecretStr

    from bot.communities import stored_values
    from bot.crypto import TokenCipher
    from bot.demo import demo_communities
    from bot.storage.repositories import Storage

    garden, marina = demo_communities(settings, sandbox_app)
    marina = dataclasses.replace(marina, manager_password=SecretStr(password))
    storage = Storage.open(settings.database_url)
    cipher = TokenCipher(settings.secret_key)
    try:
        for access in (garden, marina):
            await storage.communities.save(access.community.id, stored_values(access, cipher))
    finally:
        await storage.close()


async def test_each_communitys_manager_login_is_checked_by_name(
    env: dict[str, Any], sandbox_app: Starlette
) -> None:
    settings = Settings(_env_file=None, **env)
    await _keep_communities(settings, sandbox_app, "Xq9-not-it")
    results = await _check(env)
    assert list(results)[-3:] == [
        "manager of Garden Court (1)",
        "manager of Marina Bay (2)",
        "telegram",
    ]
    assert results["manager of Garden Court (1)"].ok
    assert _failed(results) == {
        "manager of Marina Bay (2)": results["manager of Marina Bay (2)"].detail
    }
    problem = results["manager of Marina Bay (2)"].line()
    assert problem.startswith("FAIL  manager of Marina Bay (2): refused the credentials")
    assert "concierge community edit 2" in problem
    printed = "\n".join(result.line() for result in results.values())
    assert "Xq9-not-it" not in printed
    assert settings.akubela_manager_password.get_secret_value() not in printed

    # With the right password kept, every line is ok again.
    await _keep_communities(settings, sandbox_app, _marina_password())
    assert _failed(await _check(env)) == {}


def _marina_password() -> str:
    from sandbox.app import second_community

    return str(second_community()["manager_password"])
