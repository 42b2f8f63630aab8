"""The throwaway server's one maintenance helper, which the test fixtures and the bench share:
databases are made and dropped on it outside a transaction."""

from __future__ import annotations

import asyncpg

from sandbox.postgres import run_maintenance
from tests.conftest import PostgresServer


async def _databases(server: PostgresServer) -> set[str]:
    connection = await asyncpg.connect(server.admin_url)
    try:
        return {
            row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")
        }
    finally:
        await connection.close()


async def test_a_database_is_made_copied_and_dropped(postgres_server: PostgresServer) -> None:
    url = postgres_server.admin_url
    await run_maintenance(url, 'CREATE DATABASE "maintenance_made"')
    await run_maintenance(url, 'CREATE DATABASE "maintenance_copy" TEMPLATE "maintenance_made"')
    assert {"maintenance_made", "maintenance_copy"} <= await _databases(postgres_server)

    await run_maintenance(url, 'DROP DATABASE "maintenance_copy"')
    await run_maintenance(url, 'DROP DATABASE IF EXISTS "maintenance_made" WITH (FORCE)')
    assert not {"maintenance_made", "maintenance_copy"} & await _databases(postgres_server)
