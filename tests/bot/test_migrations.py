"""Migrations create exactly the schema the models describe, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, insert, inspect, text
from sqlalchemy.engine import Connection

from bot.storage.db import create_engine
from bot.storage.migrate import alembic_config, current_revision, head_revision, upgrade
from bot.storage.models import Base, WriteStatus
from bot.storage.repositories import Storage
from conversations.writes import BookingCancel, load_write


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


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_writes_the_outbox_kept_and_drafts_in_user_data_move_on(
    empty_database_url: str,
) -> None:
    engine = create_engine(empty_database_url)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0004")
            await connection.execute(
                text(
                    "INSERT INTO outbox (telegram_id, vendor, operation, command_id, payload, "
                    "status, attempts, next_attempt_at, created_at, updated_at) VALUES "
                    "(7, 'akubela', 'akubela.booking.cancel', 'c-1', :payload, 'pending', 2, "
                    ":now, :now, :now)"
                ),
                {"payload": json.dumps({"residence_id": "r-1", "booking_id": "b-1"}), "now": now},
            )
            await connection.execute(
                text("INSERT INTO user_data (user_id, data, updated_at) VALUES (7, :data, :now)"),
                {"data": json.dumps({"lang": "zh", "repair": {"description": "x"}}), "now": now},
            )
        await upgrade(empty_database_url)
        storage = Storage(engine)
        [moved] = await storage.writes.all()
        async with engine.connect() as connection:
            [data] = (await connection.execute(text("SELECT data FROM user_data"))).scalars()
    finally:
        await engine.dispose()
    assert (moved.command_id, moved.kind, moved.status, moved.maybe_sent, moved.attempts) == (
        "c-1",
        "akubela.booking.cancel",
        WriteStatus.PENDING,
        True,
        2,
    )
    assert moved.subject == "akubela.booking:b-1"
    assert load_write(moved.write) == BookingCancel(residence_id="r-1", booking_id="b-1")
    # The draft's copy left user_data; what is the user's own stayed.
    assert json.loads(data) == {"lang": "zh"}


async def test_staff_of_the_one_community_belong_to_community_1_after_the_upgrade(
    empty_database_url: str,
) -> None:
    engine = create_engine(empty_database_url)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    users = [(21, "worker"), (22, "manager"), (23, "admin"), (24, "resident")]
    invites = [
        ("spent", "manager", now),
        ("open-worker", "worker", None),
        ("open-admin", "admin", None),
    ]
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0008_cluster")
            for telegram_id, role in users:
                await connection.execute(
                    text(
                        "INSERT INTO telegram_users (telegram_id, language, role, display_name, "
                        "failed_invite_attempts, created_at, updated_at) "
                        "VALUES (:id, 'en', :role, '', 0, :now, :now)"
                    ),
                    {"id": telegram_id, "role": role, "now": now},
                )
            for code_hash, role, used_at in invites:
                await connection.execute(
                    text(
                        "INSERT INTO invites (code_hash, role, worker_id, project_id, created_at, "
                        "expires_at, used_at) VALUES (:hash, :role, 'w-1', 'p-1', :now, :now, "
                        ":used)"
                    ),
                    {"hash": code_hash, "role": role, "now": now, "used": used_at},
                )
        await upgrade(empty_database_url)
        storage = Storage(engine)
        actors = {
            telegram_id: await storage.accounts.actor(telegram_id) for telegram_id, _ in users
        }
        async with engine.connect() as connection:
            kept: dict[str, Any] = dict(
                (
                    await connection.execute(text("SELECT code_hash, community_ids FROM invites"))
                ).all()
            )
    finally:
        await engine.dispose()
    assert {telegram_id: actor.community_ids for telegram_id, actor in actors.items()} == {
        21: {1},
        22: {1},
        23: frozenset(),  # an administrator serves every community
        24: frozenset(),  # a resident's community follows from their home
    }
    # An invite still to be opened binds to the one community there was.
    assert {
        code: json.loads(ids) if isinstance(ids, str) else ids for code, ids in kept.items()
    } == {
        "spent": None,
        "open-worker": [1],
        "open-admin": None,
    }


def _everything(connection: Connection) -> dict[str, list[dict[str, Any]]]:
    tables = sorted(set(inspect(connection).get_table_names()) - {"alembic_version"})
    rows = {}
    for table in tables:
        if table == "communities":
            continue
        result = connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - our names
        rows[table] = sorted((dict(row._mapping) for row in result), key=repr)
    return rows


def _as_before(
    before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """`after`'s rows of the tables and columns there were before (later revisions may add
    tables and columns of their own)."""
    projected = {}
    for table, rows in before.items():
        columns = set(rows[0]) if rows else set()
        projected[table] = sorted(
            ({name: row[name] for name in columns} for row in after[table]), key=repr
        )
    return projected


async def test_a_single_community_deployment_upgrades_to_community_1_losing_nothing(
    empty_database_url: str,
) -> None:
    from bot.communities import migrate, stored_communities
    from bot.crypto import TokenCipher
    from bot.settings import Settings
    from bot.storage.accounts import StoredTokens
    from bot.storage.models import ResidentLink, VendorState, WriteRecord

    settings = Settings(
        _env_file=None,
        database_url=empty_database_url,
        timezone="Asia/Singapore",
        service_hours_start="09:00",
        service_hours_end="18:30",
        escalate_repair_after_minutes=90,
        akubela_project_id="p-old-deployment",
        akubela_manager_password="the-managers-own-password",
        tuya_project_id="tuya-old",
        servitly_tenant="old-tenant",
    )
    engine = create_engine(empty_database_url)
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0008_cluster")
        storage = Storage(engine)
        await storage.users.get_or_create(7)
        # Written as rows: today's repositories read tables a 0008 schema does not have yet.
        tokens = StoredTokens("enc-access", "enc-refresh", at)
        async with storage.sessions.begin() as session:
            session.add(
                ResidentLink(
                    telegram_id=7,
                    akubela_account_id="acc-7",
                    email="seven@example.com",
                    residences=[{"residence_id": "r-7"}],
                    residence_id="r-7",
                    access_token_encrypted=tokens.access_token_encrypted,
                    refresh_token_encrypted=tokens.refresh_token_encrypted,
                    token_expires_at=tokens.expires_at,
                )
            )
        await storage.drafts.save(7, "repair", {"description": "The tap drips"})
        async with storage.sessions.begin() as session:
            # Only the columns a 0008 schema has: later revisions add their own.
            await session.execute(
                insert(WriteRecord).values(
                    command_id="c-1",
                    telegram_id=7,
                    vendor="akubela",
                    kind="akubela.booking.cancel",
                    subject="akubela.booking:b-1",
                    write={"kind": "akubela.booking.cancel", "booking_id": "b-1"},
                    status=WriteStatus.PENDING,
                    maybe_sent=False,
                    attempts=0,
                    next_attempt_at=at,
                    created_at=at,
                    updated_at=at,
                )
            )
            await session.execute(
                text(
                    "INSERT INTO sent_alerts (dedupe_key, recipient, kind, status, attempts, "
                    "created_at) VALUES ('repair:m-1:done', 7, 'repair', 'pending', 0, :at)"
                ),
                {"at": at},
            )
            session.add(
                VendorState(
                    vendor="akubela", kind="repair", record_id="m-1", state="done", snapshot={}
                )
            )
        async with engine.connect() as connection:
            before = await connection.run_sync(_everything)

        assert await migrate(settings) is True
        assert await migrate(settings) is False  # once only
        # Fresh connections: PostgreSQL's cached plans of `SELECT *` predate new columns.
        await engine.dispose()

        async with engine.connect() as connection:
            after = await connection.run_sync(_everything)
        [access] = await stored_communities(storage, TokenCipher(settings.secret_key))
        async with engine.connect() as connection:
            [stored_password] = (
                await connection.execute(
                    text("SELECT manager_password_encrypted FROM communities")
                )
            ).scalars()
    finally:
        await engine.dispose()
    assert await current_revision(empty_database_url) == head_revision()
    # Every row there was is still there (later revisions may add tables of their own).
    assert _as_before(before, after) == before
    for table in ("telegram_users", "resident_links", "drafts", "vendor_writes"):
        assert before[table], table
    for table in ("sent_alerts", "vendor_states"):
        assert before[table], table
    community = access.community
    assert community.id == 1
    assert community.time_zone == "Asia/Singapore"
    assert (
        community.service_hours_start.isoformat(),
        community.service_hours_end.isoformat(),
    ) == (
        "09:00:00",
        "18:30:00",
    )
    assert community.escalate_repair_after.total_seconds() == 90 * 60
    assert (community.akubela_project_id, community.tuya_project_id) == (
        "p-old-deployment",
        "tuya-old",
    )
    assert community.servitly_tenant == "old-tenant"
    assert community.tuya_room_of_residence == settings.tuya_room_of_residence
    assert community.servitly_location_map == settings.servitly_location_map
    assert access.manager_password.get_secret_value() == "the-managers-own-password"
    assert "the-managers-own-password" not in stored_password  # encrypted at rest
