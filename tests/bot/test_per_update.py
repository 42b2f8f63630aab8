"""Who the user is, read once per update: the actor and the resident link come from one statement
however many handlers ask, a write in the update is seen by its next read, and nothing outside
the update (another task, a job) is answered from its reads. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage import per_update
from bot.storage.accounts import StoredTokens
from bot.storage.repositories import Storage
from conversations.domain import Role

RESIDENT = 7001
TOKENS = StoredTokens("access", "refresh", datetime.now(UTC) + timedelta(hours=1))


@pytest.fixture
def storage(engine: AsyncEngine) -> Storage:
    """Repositories on the test's database (the engine fixture disposes of the engine)."""
    return Storage(engine)


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement sent on the engine from now on."""
    sent: list[str] = []

    def note(_c: object, _cu: object, statement: str, *_rest: object) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    yield sent
    event.remove(engine.sync_engine, "before_cursor_execute", note)


async def _resident(storage: Storage) -> None:
    await storage.users.get_or_create(RESIDENT, language="en")
    await storage.accounts.link_resident(
        RESIDENT,
        account_id="acct-1",
        email="a@example.com",
        residences=[{"residence_id": "r-1"}],
        tokens=TOKENS,
    )


async def test_an_update_reads_who_the_user_is_once(
    storage: Storage, statements: list[str]
) -> None:
    await _resident(storage)
    statements.clear()

    async def update() -> None:
        per_update.open_scope()
        # As the gate, the handler and the menu ask in one update.
        for _ in range(3):
            actor = await storage.accounts.actor(RESIDENT)
            assert actor.residence_ids == {"r-1"}
        link = await storage.accounts.resident(RESIDENT)
        assert link is not None
        assert link.residence_id == "r-1"

    await asyncio.create_task(update())

    assert len(statements) == 1


async def test_a_write_in_the_update_is_seen_by_its_next_read(storage: Storage) -> None:
    await _resident(storage)

    async def update() -> None:
        per_update.open_scope()
        assert (await storage.accounts.actor(RESIDENT)).residence_ids == {"r-1"}
        await storage.accounts.unlink_resident(RESIDENT)
        assert (await storage.accounts.actor(RESIDENT)).residence_ids == frozenset()
        assert await storage.accounts.resident(RESIDENT) is None
        # A write through another repository counts as much.
        await storage.users.set_role(RESIDENT, Role.MANAGER)
        assert (await storage.accounts.actor(RESIDENT)).role is Role.MANAGER

    await asyncio.create_task(update())


async def test_reads_outside_the_update_go_to_the_database(
    storage: Storage, statements: list[str]
) -> None:
    await _resident(storage)
    statements.clear()

    async def update() -> None:
        per_update.open_scope()
        await storage.accounts.actor(RESIDENT)

        async def started_from_the_handler() -> None:
            await storage.accounts.actor(RESIDENT)

        # A task the handler starts inherits the scope's context but is not the update.
        await asyncio.create_task(started_from_the_handler())

    await asyncio.create_task(update())
    assert len(statements) == 2
    # And with no update at all, every read is a read.
    await storage.accounts.actor(RESIDENT)
    await storage.accounts.actor(RESIDENT)
    assert len(statements) == 4


async def test_a_manager_of_several_projects_keeps_them_all(storage: Storage) -> None:
    invites = storage.invites
    for project in ("p-1", "p-2"):
        code = await invites.create(
            Role.MANAGER, project_id=project, expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
        await invites.redeem(code, 7002, now=datetime.now(UTC))

    actor = await storage.accounts.actor(7002)

    assert actor.role is Role.MANAGER
    assert actor.project_ids == {"p-1", "p-2"}
    assert (await storage.accounts.actor(7003)).role is Role.RESIDENT


async def test_a_flow_opening_reads_its_draft_with_who_the_user_is(
    storage: Storage, statements: list[str]
) -> None:
    await _resident(storage)
    await storage.drafts.save(RESIDENT, "repair", {"description": "Tap"})
    statements.clear()

    async def update() -> None:
        per_update.open_scope()
        await storage.accounts.actor(RESIDENT)
        assert await storage.drafts.load(RESIDENT, "repair") == {"description": "Tap"}
        assert await storage.drafts.load(RESIDENT, "book") is None
        assert len(statements) == 1
        # The step saves; a later read in the update sees what it saved, from the database.
        await storage.drafts.save(RESIDENT, "repair", {"description": "Leaking tap"})
        assert await storage.drafts.load(RESIDENT, "repair") == {"description": "Leaking tap"}
        assert len(statements) == 3

    await asyncio.create_task(update())
    # Outside an update the draft is read from the database.
    assert await storage.drafts.load(RESIDENT, "repair") == {"description": "Leaking tap"}
    assert len(statements) == 4
