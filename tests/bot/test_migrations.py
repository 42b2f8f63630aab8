"""Migrations create exactly the schema the models describe, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect
from sqlalchemy.engine import Connection

from bot.storage.db import create_engine
from bot.storage.migrate import current_revision, head_revision, upgrade
from bot.storage.models import Base


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_creates_the_schema_the_models_describe(empty_database_url: str) -> None:
    assert await current_revision(empty_database_url) is None

    await upgrade(empty_database_url)

    assert await current_revision(empty_database_url) == head_revision()
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            tables = await connection.run_sync(_tables)
    finally:
        await engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


async def test_upgrade_twice_changes_nothing(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    await upgrade(empty_database_url)

    assert await current_revision(empty_database_url) == head_revision()


async def test_the_shared_fixture_database_is_at_head(database_url: str) -> None:
    assert await current_revision(database_url) == head_revision()


async def test_the_comparison_notices_a_model_the_migration_lacks(database_url: str) -> None:
    # Guards the test above: an empty diff must mean agreement, not a blind comparison.
    extended = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(extended)
    Table("not_migrated", extended, Column("id", Integer, primary_key=True))
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), extended)
            )
    finally:
        await engine.dispose()
    assert [entry[0] for entry in diff] == ["add_table"]
