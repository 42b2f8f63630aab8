"""The repository explains itself: its pages link only inside it, and the commands the
deployment page shows do what it says (where they can run here)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import make_url

from bot.cli import build_parser, main
from bot.metrics import Metrics
from bot.storage.db import create_engine, make_session_factory
from bot.storage.repositories import Users
from bot.web import create_web_app
from tests.support_server import serve

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEPLOYMENT = ROOT / "docs" / "deployment.md"
PG_TOOLS = {"psql", "pg_dump", "pg_restore"}


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def shown_commands(page: Path = DEPLOYMENT) -> list[str]:
    """Every command line of the page's ```sh blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", page.read_text(), flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_links_to_both_pages() -> None:
    readme = _links(ROOT / "README.md")
    assert "docs/architecture.md" in readme
    assert "docs/deployment.md" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_link_only_to_files_inside_the_repository(page: Path) -> None:
    for link in _links(page):
        assert "://" not in link, f"{page.name} links outside the repository: {link}"
        target = (page.parent / link.split("#")[0]).resolve()
        assert target.is_relative_to(ROOT), f"{page.name}: {link} leaves the repository"
        assert target.exists(), f"{page.name}: {link} does not exist"


def test_every_concierge_command_shown_is_one_the_cli_knows() -> None:
    commands = [line for line in shown_commands() if line.startswith("concierge ")]
    assert {shlex.split(line)[1] for line in commands} >= {"migrate", "check", "invite"}
    for line in commands:
        build_parser().parse_args(shlex.split(line)[1:])


def test_the_concierge_commands_shown_run(
    env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name.upper(), value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'concierge.db'}")
    for line in shown_commands():
        if line.startswith("concierge "):
            assert main(shlex.split(line)[1:]) == 0, line
    out = capsys.readouterr().out
    assert "Database is up to date." in out
    assert "ok    telegram: getMe answers" in out
    assert "FAIL" not in out
    assert out.count("Invite for a") == 3


@pytest.fixture
def pg_url(database_url: str) -> str:
    """The libpq URL of the test's database, as the page's `PG_URL`."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _shell(line: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a command line from our own page
        ["bash", "-c", line],  # noqa: S607
        cwd=cwd,
        env=os.environ | variables,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("database_kind", ["postgresql"])  # the page's tools are PostgreSQL's
async def test_the_postgresql_commands_shown_run(
    pg_url: str, database_url: str, tmp_path: Path
) -> None:
    shown = [line for line in shown_commands() if line.split()[0] in PG_TOOLS]
    assert [line.split()[0] for line in shown] == ["psql", "psql", "pg_dump", "pg_restore"]
    url = make_url(pg_url)
    # psql as the page runs it: the server's superuser, on its maintenance database.
    superuser = {
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGDATABASE": "postgres",
    }
    engine = create_engine(database_url)
    try:
        await Users(make_session_factory(engine)).get_or_create(4242, display_name="Morgan")
        for line in shown:
            variables = superuser if line.startswith("psql") else {"PG_URL": pg_url}
            done = _shell(line, tmp_path, **variables)
            assert done.returncode == 0, f"{line}: {done.stderr}"
        user = await Users(make_session_factory(engine)).get(4242)
        assert user is not None
        assert user.display_name == "Morgan"
        assert (tmp_path / "concierge.dump").stat().st_size > 0
    finally:
        await engine.dispose()
        # The role and database the page made, gone again.
        for statement in ("DROP DATABASE IF EXISTS concierge", "DROP ROLE IF EXISTS concierge"):
            _shell(f'psql --command "{statement}"', tmp_path, **superuser)


def test_the_metrics_command_shown_answers() -> None:
    [line] = [line for line in shown_commands() if line.startswith("curl ")]
    metrics = Metrics()
    metrics.telegram_retry("429")

    async def page() -> tuple[bytes, str]:
        return generate_latest(metrics.registry), CONTENT_TYPE_LATEST

    async def healthy() -> bool:
        return True

    async def no_login(*args: Any) -> Any:
        raise AssertionError("not called")

    app = create_web_app(on_oauth_callback=no_login, health=healthy, metrics=page)
    with serve(app) as url:
        command = line.replace("http://127.0.0.1:8081", url)
        assert command != line
        if shutil.which("curl") is not None:
            done = _shell(command, ROOT)
            assert done.returncode == 0, done.stderr
            text = done.stdout
        else:  # a machine without curl: the same request
            text = httpx.get(shlex.split(command)[-1]).text
    assert 'concierge_telegram_retries_total{reason="429"} 1.0' in text
