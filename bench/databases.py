"""Where a figure keeps its databases: SQLite files in the bench's folder, or databases on a
throwaway PostgreSQL cluster (`sandbox.postgres`, as the tests start one), made fresh or copied
from a template database. A figure measured on both says which it ran on."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import make_url

from bench.harness import copy_database, sqlite_url
from sandbox.postgres import run_maintenance

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
KINDS = (SQLITE, POSTGRESQL)
LABELS = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}


class Databases:
    """Databases by name: SQLite files in `directory`, or (`postgres_url`, a libpq URL to the
    server's maintenance database) databases on that server."""

    def __init__(self, directory: Path, postgres_url: str | None = None) -> None:
        self.directory = directory
        self._postgres_url = postgres_url

    @property
    def kind(self) -> str:
        """`sqlite` or `postgresql`."""
        return SQLITE if self._postgres_url is None else POSTGRESQL

    @property
    def label(self) -> str:
        """The database's name, for a figure's title."""
        return LABELS[self.kind]

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of database `name` (made by `fresh` or `copy`)."""
        if self._postgres_url is None:
            return sqlite_url(self.directory / f"{name}.db")
        found = make_url(self._postgres_url).set(
            drivername="postgresql+asyncpg", database=_identifier(name)
        )
        return found.render_as_string(hide_password=False)

    async def fresh(self, name: str) -> str:
        """An empty database `name`; its URL."""
        if self._postgres_url is not None:
            await self._execute(f'CREATE DATABASE "{_identifier(name)}"')
        return self.url(name)

    async def copy(self, template: str, name: str) -> str:
        """Database `name`, a copy of database `template` (closed: no one connected); its URL."""
        if self._postgres_url is None:
            copy_database(self.directory / f"{template}.db", self.directory / f"{name}.db")
        else:
            source, target = _identifier(template), _identifier(name)
            await self._execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
        return self.url(name)

    async def _execute(self, statement: str) -> None:
        assert self._postgres_url is not None
        await run_maintenance(self._postgres_url, statement)


def _identifier(name: str) -> str:
    """A database name PostgreSQL takes unquoted and unchanged: lower case, `_` for the rest."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())[:63]
