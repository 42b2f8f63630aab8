"""Database fixtures for every test: a fresh SQLite file and a fresh PostgreSQL database.

`database_url` is parametrized over both databases and gives each test its own database,
already migrated to the newest schema (copied from a template migrated once per session).
`empty_database_url` gives an unmigrated one, for migration tests.

PostgreSQL: `TEST_POSTGRES_URL` (a role allowed to CREATE DATABASE) if set; otherwise a
throwaway cluster started once per session from the Debian binaries on 127.0.0.1. Without
binaries the PostgreSQL cases skip, except under CI (env `CI`), where they fail.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from bot.storage.db import create_engine, make_session_factory
from bot.storage.migrate import upgrade
from sandbox.postgres import PostgresUnavailable, bin_dir, run_maintenance, throwaway_server

# The test process starts here: PTB reports durations as timedelta, as `concierge` asks it to
# (bot.cli.main), so a RetryAfter does not warn (and warnings are errors in the tests).
os.environ.setdefault("PTB_TIMEDELTA", "true")

T = TypeVar("T")

DATABASE_KINDS = ("sqlite", "postgresql")
_database_numbers = itertools.count(1)


def run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion on its own loop in a worker thread."""
    # Sync fixtures cannot await, and asyncio.run on the main thread would meddle with the
    # event loop pytest-asyncio manages for the test.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass(frozen=True)
class PostgresServer:
    """Where to reach a PostgreSQL server as a role that may create databases."""

    admin_url: str  # a libpq URL (postgresql://...) to an existing maintenance database

    def url_for(self, database: str) -> str:
        """The SQLAlchemy asyncpg URL of one database on this server."""
        url = make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=database)
        return url.render_as_string(hide_password=False)

    async def execute(self, statement: str) -> None:
        """Runs one statement (CREATE or DROP DATABASE) on the maintenance database."""
        await run_maintenance(self.admin_url, statement)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session: TEST_POSTGRES_URL or a throwaway cluster."""
    external = os.environ.get("TEST_POSTGRES_URL")
    if external:
        url = make_url(external).set(drivername="postgresql")
        yield PostgresServer(url.render_as_string(hide_password=False))
        return

    if bin_dir() is None:
        reason = (
            "no PostgreSQL binaries under /usr/lib/postgresql/*/bin and TEST_POSTGRES_URL unset "
            "(apt-get install postgresql, as .ci/run does)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        with throwaway_server() as server_url:
            yield PostgresServer(server_url)
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """A database migrated once per session, copied for every test (CREATE ... TEMPLATE)."""
    name = f"concierge_template_{os.getpid()}"
    run_in_thread(postgres_server.execute(f'CREATE DATABASE "{name}"'))
    try:
        run_in_thread(upgrade(postgres_server.url_for(name)))
        yield name
    finally:
        run_in_thread(postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session, copied for every test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_in_thread(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=DATABASE_KINDS)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on."""
    kind: str = request.param
    return kind


def _fresh_postgres_database(
    request: pytest.FixtureRequest, template: str | None
) -> Iterator[str]:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    source = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    run_in_thread(server.execute(f'CREATE DATABASE "{name}"{source}'))
    try:
        yield server.url_for(name)
    finally:
        run_in_thread(server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(
    database_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A fresh database of the test's own, migrated to the newest schema."""
    if database_kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "concierge.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
    else:
        yield from _fresh_postgres_database(request, request.getfixturevalue("postgres_template"))


@pytest.fixture
def empty_database_url(
    database_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A fresh database of the test's own with no tables at all."""
    if database_kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    else:
        yield from _fresh_postgres_database(request, None)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's migrated database, disposed afterwards."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The session factory on the test's migrated database."""
    return make_session_factory(engine)


# ---- every Bot API request of the suite, checked against Telegram's rules ----------------------

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@dataclass
class BotApiRecord:
    """What the suite asked of Telegram: every request to the stand-in or a local Bot API."""

    methods: dict[str, int]
    refusals: list[tuple[str, str, int, str]]  # (test, method, status, description)
    expected: int = 0
    test: str = ""

    @property
    def requests(self) -> int:
        return sum(self.methods.values())


BOTAPI = BotApiRecord(methods={}, refusals=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "telegram_refusals(*descriptions): this test means to send Bot API requests that "
        "Telegram refuses (with these descriptions; any, when none is given)",
    )


@pytest.fixture(scope="session", autouse=True)
def _record_botapi_requests() -> Iterator[BotApiRecord]:
    """Counts every Bot API request (`sandbox.botapi.methods.call`, which both the tests'
    stand-in and the local Bot API run) and writes test-artifacts/botapi-requests.json."""
    from sandbox.botapi import methods
    from sandbox.botapi.state import BotApiError

    original = methods.call

    async def recorded(state: Any, name: str, params: Any) -> Any:
        key = name.lower()
        canonical = next((m for m in methods.METHODS if m == key), key)
        BOTAPI.methods[canonical] = BOTAPI.methods.get(canonical, 0) + 1
        try:
            return await original(state, name, params)
        except BotApiError as error:
            BOTAPI.refusals.append((BOTAPI.test, name, error.status, error.description))
            raise

    methods.call = recorded
    try:
        yield BOTAPI
    finally:
        methods.call = original
        violations = [r for r in BOTAPI.refusals if r[2] == 400]
        summary = {
            "requests": BOTAPI.requests,
            "methods": len(BOTAPI.methods),
            "by_method": dict(sorted(BOTAPI.methods.items())),
            "refused": len(BOTAPI.refusals),
            "refused_on_purpose": BOTAPI.expected,
            "forbidden_403": sum(1 for r in BOTAPI.refusals if r[2] == 403),
            "flood_429": sum(1 for r in BOTAPI.refusals if r[2] == 429),
            "rule_violations": len(violations) - BOTAPI.expected,
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "botapi-requests.json").write_text(json.dumps(summary, indent=2) + "\n")


@pytest.fixture(autouse=True)
def _telegram_rules(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test whose Bot API requests Telegram would refuse (400), unless it says it
    means to send them with `@pytest.mark.telegram_refusals(...)`."""
    marker = request.node.get_closest_marker("telegram_refusals")
    allowed: tuple[str, ...] = tuple(marker.args) if marker is not None else ()
    BOTAPI.test = request.node.nodeid
    first = len(BOTAPI.refusals)
    yield
    refused = [r for r in BOTAPI.refusals[first:] if r[2] == 400]
    meant = [
        r
        for r in refused
        if marker is not None and (not allowed or any(a in r[3] for a in allowed))
    ]
    BOTAPI.expected += len(meant)
    broken = [r for r in refused if r not in meant]
    if broken:
        lines = "\n".join(f"  {method}: {description}" for _, method, _, description in broken)
        pytest.fail(f"Telegram would refuse these Bot API requests:\n{lines}", pytrace=False)


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    """Commands run in-process (`concierge check`, the CLI tests) configure logging for a whole
    program; a later test must still see the levels and handlers the test run started with."""
    import logging

    from bot.logs import QUIET_LOGGERS

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    root.handlers = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
