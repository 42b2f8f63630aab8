"""DatabasePersistence: every method, a restart mid-conversation, and a killed process."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.persistence import DatabasePersistence, PersistenceDataError, load_users
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import UserData
from bot.storage.repositories import Drafts
from tests.bot.repair_bot import Chat, FakeBotApi, Step, build_app

REPO_ROOT = Path(__file__).resolve().parents[2]

# --- every method, directly


@pytest.fixture
def persistence(sessions: async_sessionmaker[AsyncSession]) -> DatabasePersistence:
    """A persistence on the test's database."""
    return DatabasePersistence(sessions)


def test_services_are_never_persisted(persistence: DatabasePersistence) -> None:
    assert not persistence.store_data.bot_data
    assert persistence.store_data.user_data
    assert persistence.store_data.chat_data
    assert persistence.store_data.callback_data
    assert persistence.update_interval == 5.0


def test_the_write_interval_is_a_parameter(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert DatabasePersistence(sessions, update_interval=0.5).update_interval == 0.5


async def test_user_data_round_trips(persistence: DatabasePersistence) -> None:
    assert await persistence.stored_user_data() == {}

    await persistence.update_user_data(100, {"repair": {"description": "Tap", "photos": []}})
    await persistence.update_user_data(100, {"repair": {"description": "Leaking tap"}})
    await persistence.update_user_data(200, {"lang": "zh", "note": "厨房漏水"})

    assert await persistence.stored_user_data() == {
        100: {"repair": {"description": "Leaking tap"}},
        200: {"lang": "zh", "note": "厨房漏水"},
    }
    await persistence.drop_user_data(100)
    assert await persistence.stored_user_data() == {200: {"lang": "zh", "note": "厨房漏水"}}


async def test_chat_data_round_trips(persistence: DatabasePersistence) -> None:
    assert await persistence.stored_chat_data() == {}

    await persistence.update_chat_data(-1001, {"muted": True})
    await persistence.update_chat_data(100, {})

    assert await persistence.stored_chat_data() == {-1001: {"muted": True}, 100: {}}
    await persistence.drop_chat_data(-1001)
    assert await persistence.stored_chat_data() == {100: {}}


async def test_refresh_leaves_memory_as_it_is(persistence: DatabasePersistence) -> None:
    await persistence.update_user_data(100, {"a": 1})
    user_data = {"a": 2}
    chat_data = {"b": 3}
    bot_data = {"services": object()}

    await persistence.refresh_user_data(100, user_data)
    await persistence.refresh_chat_data(100, chat_data)
    await persistence.refresh_bot_data(bot_data)

    assert (user_data, chat_data) == ({"a": 2}, {"b": 3})
    assert set(bot_data) == {"services"}


async def test_bot_data_is_never_stored(
    persistence: DatabasePersistence, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await persistence.update_bot_data({"services": "not JSON, not stored: " + repr(object())})

    assert await persistence.get_bot_data() == {}
    async with sessions() as session:
        tables = ("user_data", "chat_data", "callback_data", "conversation_states")
        for table in tables:
            assert await session.scalar(text(f"SELECT count(*) FROM {table}")) == 0  # noqa: S608


async def test_callback_data_round_trips(persistence: DatabasePersistence) -> None:
    assert await persistence.get_callback_data() is None
    data = ([("uuid-1", 1700000000.5, {"btn": "repair:confirm"})], {"query-1": "uuid-1"})

    await persistence.update_callback_data(data)
    await persistence.update_callback_data(data)

    assert await persistence.get_callback_data() == data


async def test_conversations_round_trip_with_enum_states(
    persistence: DatabasePersistence,
) -> None:
    assert await persistence.stored_conversations("repair") == {}

    await persistence.update_conversation("repair", (100, 100), Step.DESCRIBE)
    await persistence.update_conversation("repair", (100, 100), Step.CONTACT)
    await persistence.update_conversation("repair", (200, 200), Step.DESCRIBE)
    await persistence.update_conversation("booking", (100, 100), "booking.date")
    await persistence.update_conversation("booking", (-5, "inline-7"), 3)

    repair = await persistence.stored_conversations("repair")
    assert repair == {(100, 100): Step.CONTACT, (200, 200): Step.DESCRIBE}
    assert type(repair[(100, 100)]) is str  # the value, so adding a step never breaks it
    assert await persistence.stored_conversations("booking") == {
        (100, 100): "booking.date",
        (-5, "inline-7"): 3,
    }

    await persistence.update_conversation("repair", (100, 100), None)
    await persistence.update_conversation("repair", (300, 300), None)  # never stored: fine
    assert await persistence.stored_conversations("repair") == {(200, 200): Step.DESCRIBE}


async def test_flush_writes_nothing_more(
    persistence: DatabasePersistence, engine: AsyncEngine
) -> None:
    with _count_statements(engine) as statements:
        await persistence.flush()
    assert statements == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({1: "int key"}, "would change"),
        ({"pair": (1, 2)}, "would change"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "not plain JSON"),
        ({"nan": float("nan")}, "not plain JSON"),
    ],
)
async def test_data_json_would_change_is_refused(
    persistence: DatabasePersistence, data: dict[Any, Any], problem: str
) -> None:
    with pytest.raises(PersistenceDataError, match=problem):
        await persistence.update_user_data(100, data)
    assert await persistence.stored_user_data() == {}


async def test_a_state_json_would_change_is_refused(persistence: DatabasePersistence) -> None:
    with pytest.raises(PersistenceDataError):
        await persistence.update_conversation("repair", (1, 1), (1, 2))
    assert await persistence.stored_conversations("repair") == {}


async def test_database_errors_reach_the_caller(
    persistence: DatabasePersistence, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        await session.execute(text("DROP TABLE user_data"))
        await session.commit()

    with pytest.raises(DBAPIError):
        await persistence.update_user_data(100, {"a": 1})
    with pytest.raises(DBAPIError):
        await persistence.stored_user_data()


class _count_statements:
    """Records every SQL statement the engine runs inside the block."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.statements: list[str] = []

    def _record(self, *args: Any) -> None:
        self.statements.append(str(args[2]))

    def __enter__(self) -> list[str]:
        event.listen(self._engine, "before_cursor_execute", self._record)
        return self.statements

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._record)


async def test_a_write_touches_one_row_however_many_users_are_stored(
    persistence: DatabasePersistence,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await persistence.update_user_data(1, {"n": 1})
    with _count_statements(engine) as few:
        await persistence.update_user_data(1, {"n": 2})
        await persistence.update_conversation("repair", (1, 1), Step.CONTACT)

    async with sessions() as session:
        await session.execute(
            insert(UserData),
            [
                {"user_id": n, "data": "{}", "updated_at": datetime.now(UTC)}
                for n in range(2, 2002)
            ],
        )
        await session.commit()
    with _count_statements(engine) as many:
        await persistence.update_user_data(1, {"n": 3})
        await persistence.update_conversation("repair", (1, 1), Step.CONFIRM)

    # One single-row upsert per write, whether 1 or 2001 users are stored.
    assert len(await persistence.stored_user_data()) == 2001
    assert len(few) == len(many) == 2
    assert all("ON CONFLICT" in statement for statement in many)
    assert all("DELETE" not in statement and "SELECT" not in statement for statement in many)


async def test_many_rows_written_at_once_all_land(persistence: DatabasePersistence) -> None:
    # The Application hands every changed row over concurrently (asyncio.gather).
    await asyncio.gather(
        *(persistence.update_user_data(user_id, {"n": user_id}) for user_id in range(60)),
        *(persistence.update_conversation("repair", (n, n), Step.CONTACT) for n in range(60)),
    )

    assert len(await persistence.stored_user_data()) == 60
    assert len(await persistence.stored_conversations("repair")) == 60


# --- a real Application driven through process_update


@pytest.fixture
async def second_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Another engine on the same database: the second process after a restart."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def chat() -> Chat:
    """The resident's side of the chat."""
    return Chat()


async def test_a_conversation_is_finished_after_a_restart(
    database_url: str, second_engine: AsyncEngine, chat: Chat
) -> None:
    first_engine = create_engine(database_url)
    first_sessions = make_session_factory(first_engine)
    api = FakeBotApi()
    first = build_app(DatabasePersistence(first_sessions), api, Drafts(first_sessions))
    try:
        await first.initialize()
        await first.start()
        await first.process_update(chat.says(first, "/repair"))
        await first.process_update(chat.says(first, "The kitchen tap drips"))
        await first.stop()
        await first.shutdown()
    finally:
        await first_engine.dispose()
    assert api.texts == ["What needs repairing?", "How can the technician reach you?"]

    sessions = make_session_factory(second_engine)
    api = FakeBotApi()
    second = build_app(DatabasePersistence(sessions), api, Drafts(sessions))
    async with second:
        await second.process_update(chat.says(second, "+86 138 0000 0000"))
        await second.process_update(chat.says(second, "yes"))

    assert api.texts == [
        "Create repair 'The kitchen tap drips', contact +86 138 0000 0000? (yes/no)",
        "Created: The kitchen tap drips",
    ]
    check = DatabasePersistence(sessions)
    assert await check.stored_conversations("repair") == {}
    assert await check.stored_user_data() == {100: {}}
    assert await Drafts(sessions).load(100, "repair") is None


async def test_a_killed_process_loses_at_most_the_step_in_flight(
    database_url: str, second_engine: AsyncEngine, chat: Chat
) -> None:
    first_engine = create_engine(database_url)
    first_sessions = make_session_factory(first_engine)
    first = build_app(DatabasePersistence(first_sessions), FakeBotApi(), Drafts(first_sessions))
    await first.initialize()
    await first.process_update(chat.says(first, "/repair"))
    await first.process_update(chat.says(first, "The kitchen tap drips"))
    # The persistence interval elapses here: PTB writes what changed so far.
    await first.update_persistence()
    await first.process_update(chat.says(first, "+86 138 0000 0000"))
    # Killed: no update_persistence, no stop, no shutdown, no flush; its connections die.
    await first_engine.dispose()

    sessions = make_session_factory(second_engine)
    api = FakeBotApi()
    second = build_app(DatabasePersistence(sessions), api, Drafts(sessions))
    async with second:
        # The conversation stands where the last write left it: one step back at most...
        assert await DatabasePersistence(sessions).stored_conversations("repair") == {
            (100, 100): Step.CONTACT
        }
        # ...and what the resident typed in the lost step is in the drafts table.
        assert await Drafts(sessions).load(100, "repair") == {
            "description": "The kitchen tap drips",
            "contact": "+86 138 0000 0000",
        }
        await second.process_update(chat.says(second, "+86 138 0000 0000"))
        await second.process_update(chat.says(second, "yes"))

    assert api.texts[-1] == "Created: The kitchen tap drips"


async def _read_until(stream: asyncio.StreamReader, expected: str) -> None:
    line = await asyncio.wait_for(stream.readline(), timeout=20)
    assert line.decode().strip() == expected


async def _state_of_resident(sessions: async_sessionmaker[AsyncSession]) -> object:
    return (await DatabasePersistence(sessions).stored_conversations("repair")).get((100, 100))


async def test_a_process_killed_with_sigkill_loses_no_typed_input(
    database_url: str, second_engine: AsyncEngine, chat: Chat
) -> None:
    # The real thing: the bot in its own process, PTB's timed writer running, then kill -9.
    sessions = make_session_factory(second_engine)
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bot.repair_bot",
        database_url,
        "0.05",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    assert bot.stdin is not None
    assert bot.stdout is not None
    try:
        for number, words in enumerate(["/repair", "The kitchen tap drips"], start=1):
            bot.stdin.write(f"{words}\n".encode())
            await _read_until(bot.stdout, f"done {number}")
        # Let the timed writer store the conversation (it writes every 0.05 s).
        for _ in range(200):
            if await _state_of_resident(sessions) == Step.CONTACT:
                break
            await asyncio.sleep(0.02)
        assert await _state_of_resident(sessions) == Step.CONTACT
        bot.stdin.write(b"+86 138 0000 0000\n")
        await _read_until(bot.stdout, "done 3")
    finally:
        bot.kill()
        await bot.wait()
    assert bot.returncode == -signal.SIGKILL

    # At most the step in flight is lost, and its typed text is in the drafts table.
    assert await _state_of_resident(sessions) in {Step.CONTACT, Step.CONFIRM}
    assert await Drafts(sessions).load(100, "repair") == {
        "description": "The kitchen tap drips",
        "contact": "+86 138 0000 0000",
    }
    api = FakeBotApi()
    second = build_app(DatabasePersistence(sessions), api, Drafts(sessions))
    async with second:
        if await _state_of_resident(sessions) == Step.CONTACT:
            await second.process_update(chat.says(second, "+86 138 0000 0000"))
        await second.process_update(chat.says(second, "yes"))
    assert api.texts[-1] == "Created: The kitchen tap drips"


# --- one transaction per flush, and nothing read whole at start


def _resident(user_id: int) -> Chat:
    return Chat(
        {"id": user_id, "is_bot": False, "first_name": "R", "language_code": "en"},
        first_id=user_id * 100,
    )


async def _midway(app: Any, chats: list[Chat]) -> None:
    for words in ("/repair", "The kitchen tap drips"):
        for resident in chats:
            await app.process_update(resident.says(app, words))


async def test_a_flush_writes_every_change_in_one_transaction(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    persistence = DatabasePersistence(sessions)
    app = build_app(persistence, FakeBotApi(), Drafts(sessions))
    # A small flush (bigger ones go in slices: tests/bot/test_persistence_flush.py).
    chats = [_resident(user_id) for user_id in range(201, 221)]
    commits: list[object] = []

    def note(*_: object) -> None:
        commits.append(None)

    async with app:
        await _midway(app, chats)
        event.listen(engine.sync_engine, "commit", note)
        with _count_statements(engine) as statements:
            await app.update_persistence()
        event.remove(engine.sync_engine, "commit", note)

    # 20 conversations and user_data: one transaction, a statement per table.
    assert len(commits) == 1
    assert len(statements) <= 4
    stored = await persistence.stored_conversations("repair")
    assert stored == {(n, n): Step.CONTACT for n in range(201, 221)}
    assert set(await persistence.stored_user_data()) == set(range(201, 221))


async def test_a_restart_reads_a_chat_only_when_it_writes(
    database_url: str, second_engine: AsyncEngine
) -> None:
    first_engine = create_engine(database_url)
    first_sessions = make_session_factory(first_engine)
    first = build_app(DatabasePersistence(first_sessions), FakeBotApi(), Drafts(first_sessions))
    ann, bob = _resident(301), _resident(302)
    async with first:
        await _midway(first, [ann, bob])
    await first_engine.dispose()

    sessions = make_session_factory(second_engine)
    api = FakeBotApi()
    second = build_app(DatabasePersistence(sessions), api, Drafts(sessions))
    async with second:
        # Started with nobody's state in memory...
        assert dict(second.user_data) == {}
        await second.process_update(ann.says(second, "+86 138 0000 0000"))
        # ...Ann's read when she wrote, and her conversation picked up where it stood...
        assert set(second.user_data) == {301}
        assert api.texts == [
            "Create repair 'The kitchen tap drips', contact +86 138 0000 0000? (yes/no)"
        ]
        # ...and Bob's when he does.
        await second.process_update(bob.says(second, "+86 139 0000 0000"))
        assert set(second.user_data) == {301, 302}
        assert api.texts[-1].endswith("contact +86 139 0000 0000? (yes/no)")


async def test_a_user_read_for_an_alert_keeps_what_changed_when_they_write(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    stored = DatabasePersistence(sessions)
    await stored.update_user_data(401, {"switched_off": ["booking"]})
    app = build_app(DatabasePersistence(sessions), FakeBotApi(), Drafts(sessions))
    async with app:
        # The alert watcher asks before it reads a recipient's settings...
        await load_users(app, [401, 402])
        assert app.user_data[401] == {"switched_off": ["booking"]}
        # ...and marks them blocked when Telegram refuses a message.
        app.user_data[401]["blocked"] = True
        await app.process_update(_resident(401).says(app, "/repair"))
        assert app.user_data[401] == {"switched_off": ["booking"], "blocked": True}
