"""The `concierge` command as a person runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("SANDBOX_")}


def test_sandbox_command_serves_the_demo_data(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own console entry point
        [sys.executable, "-m", "bot.cli", "sandbox", "--port", str(port)],
        cwd=tmp_path,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        demo = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                demo = httpx.get(f"http://127.0.0.1:{port}/_sandbox/demo", timeout=1).json()
                break
            except httpx.TransportError:
                time.sleep(0.05)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert demo is not None, f"the sandbox never answered: {output.decode(errors='replace')}"
    assert {"akubela", "tuya", "servitly"} <= set(demo)


def test_busy_port_gets_a_clear_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["sandbox", "--port", str(port)]) == 2
    assert f"Port {port}" in capsys.readouterr().err


def test_bad_setting_is_named_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus")
    assert main(["sandbox"]) == 2
    err = capsys.readouterr().err
    assert "TIMEZONE" in err
    assert "Traceback" not in err


def test_migrate_is_idempotent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.count("up to date") == 2


def test_invite_prints_a_code_that_binds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    # No Bot API is listening: the code is still printed, without the t.me link.
    monkeypatch.setenv("TELEGRAM_BASE_URL", f"http://127.0.0.1:{_free_port()}/bot")
    assert main(["invite", "worker", "--worker-id", "w-42", "--community", "1"]) == 0
    out = capsys.readouterr().out
    code = out.split("Code: ")[1].split()[0]

    import asyncio
    from datetime import UTC, datetime

    from bot.storage.accounts import Invites
    from bot.storage.repositories import Storage
    from conversations.domain import RedeemOutcome

    async def redeem() -> RedeemOutcome:
        storage = Storage.open(url)
        try:
            result = await Invites(storage.sessions).redeem(code, 77, now=datetime.now(UTC))
            return result.outcome
        finally:
            await storage.close()

    assert asyncio.run(redeem()) is RedeemOutcome.BOUND


def test_a_manager_invite_binds_to_the_communities_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TELEGRAM_BASE_URL", f"http://127.0.0.1:{_free_port()}/bot")
    monkeypatch.setenv("AKUBELA_MANAGER_PASSWORD", "manager-secret")
    assert main(["migrate"]) == 0  # community 1, from the settings
    for n in (2, 3):
        community = ["--name-en", f"Court {n}", "--name-zh", f"苑 {n}", "--time-zone", "UTC"]
        community += ["--akubela-project-id", f"p-{n}", "--tuya-project-id", f"t-{n}"]
        assert main(["community", "add", *community]) == 0
    capsys.readouterr()
    command = ["invite", "manager", "--project", "p-1", "--community", "1,2", "--community", "3"]
    assert main(command) == 0
    out = capsys.readouterr().out
    # The communities by name, with the number `--community` takes.
    assert "Invite for a manager of Community 1 (1), Court 2 (2), Court 3 (3)" in out
    code = out.split("Code: ")[1].split()[0]

    import asyncio
    from datetime import UTC, datetime

    from bot.storage.repositories import Storage

    async def redeem() -> frozenset[int]:
        storage = Storage.open(url)
        try:
            await storage.invites.redeem(code, 78, now=datetime.now(UTC))
            return (await storage.accounts.actor(78)).community_ids
        finally:
            await storage.close()

    assert asyncio.run(redeem()) == {1, 2, 3}


def test_an_invite_to_a_community_there_is_not_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("TELEGRAM_BASE_URL", f"http://127.0.0.1:{_free_port()}/bot")
    command = ["invite", "manager", "--project", "p-1", "--community", "1,7"]
    assert main(command) == 2
    out, err = capsys.readouterr()
    assert "There is no community 7: `concierge community list` shows them." in err
    assert "Code:" not in out


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ([], "the following arguments are required: --community"),
        (["--community", "Shanghai"], "'Shanghai' is not a community id: give its number"),
        (["--community", "1,0"], "'1,0' is not a community id"),
    ],
)
def test_a_staff_invite_without_a_community_is_refused_in_plain_words(
    extra: list[str],
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    with pytest.raises(SystemExit) as exit_:
        main(["invite", "worker", "--worker-id", "w-42", *extra])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert problem in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["invite", "admin"]])
def test_demo_values_outside_the_demo_are_refused_before_anything_is_written(
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BASE_URL", "https://API.TELEGRAM.ORG/bot")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("AKUBELA_CLIENT_SECRET", "a-real-one")
    assert main(command) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1  # one message names them all
    assert "SECRET_KEY" in lines[0]
    assert "AKUBELA_BASE_URL" in lines[0]
    assert "TUYA_CLIENT_SECRET" in lines[0]
    assert "AKUBELA_CLIENT_SECRET" not in lines[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_importing_the_bot_changes_no_environment_variable() -> None:
    # A program that embeds the bot (a test, the benchmark) keeps its own environment: only the
    # `concierge` command, where the process starts, sets what PTB should read.
    env = {key: value for key, value in _clean_env().items() if key != "PTB_TIMEDELTA"}
    probe = (
        "import os\n"
        "before = dict(os.environ)\n"
        "import bot.app, bot.runner, bot.alert_watcher\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter on a fixed script
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"
