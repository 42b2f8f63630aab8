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
            Role.MANAGER,
            project_id=project,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            community_ids=[1],
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


async def test_staff_carry_their_communities_in_the_one_statement(
    storage: Storage, statements: list[str]
) -> None:
    # Two projects and two communities: the rows multiply, the statement stays one.
    invites = storage.invites
    expires = datetime.now(UTC) + timedelta(hours=1)
    for project, communities in (("p-1", [1]), ("p-2", [2, 3])):
        code = await invites.create(
            Role.MANAGER, project_id=project, expires_at=expires, community_ids=communities
        )
        await invites.redeem(code, 7004, now=datetime.now(UTC))
    worker = await invites.create(
        Role.WORKER, worker_id="w-tom", expires_at=expires, community_ids=[2]
    )
    await invites.redeem(worker, 7005, now=datetime.now(UTC))
    statements.clear()

    manager = await storage.accounts.actor(7004)
    tom = await storage.accounts.actor(7005)

    assert len(statements) == 2
    assert manager.project_ids == {"p-1", "p-2"}
    assert manager.community_ids == {1, 2, 3}
    assert tom.worker_id == "w-tom"
    assert tom.community_ids == {2}
    assert (tom.serves(2), tom.serves(1)) == (True, False)


async def test_a_new_role_brings_its_own_communities(storage: Storage) -> None:
    invites = storage.invites
    expires = datetime.now(UTC) + timedelta(hours=1)
    manager = await invites.create(
        Role.MANAGER, project_id="p-1", expires_at=expires, community_ids=[1, 2]
    )
    await invites.redeem(manager, 7006, now=datetime.now(UTC))
    worker = await invites.create(
        Role.WORKER, worker_id="w-li", expires_at=expires, community_ids=[2]
    )
    await invites.redeem(worker, 7006, now=datetime.now(UTC))
    assert (await storage.accounts.actor(7006)).community_ids == {2}

    admin = await invites.create(Role.ADMIN, expires_at=expires)
    await invites.redeem(admin, 7006, now=datetime.now(UTC))
    actor = await storage.accounts.actor(7006)
    # An administrator serves every community without a list of them.
    assert (actor.community_ids, actor.serves(2), actor.serves(9)) == (frozenset(), True, True)


async def test_a_staff_invite_names_its_communities(storage: Storage) -> None:
    with pytest.raises(ValueError, match="at least one community"):
        await storage.invites.create(
            Role.MANAGER, project_id="p-1", expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
