"""DatabasePersistence: every method, a restart mid-conversation, and a killed process."""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import Update
from telegram.ext import (
    Application,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest, RequestData

from bot.persistence import DatabasePersistence, PersistenceDataError
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import UserData
from bot.storage.repositories import Drafts

BOT_USER = {"id": 1, "is_bot": True, "first_name": "Concierge", "username": "concierge_bot"}
RESIDENT = {"id": 100, "is_bot": False, "first_name": "Ann", "language_code": "en"}


class Step(enum.StrEnum):
    """States of the little repair conversation used here."""

    DESCRIBE = "repair.describe"
    CONTACT = "repair.contact"
    CONFIRM = "repair.confirm"


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
    assert await persistence.get_user_data() == {}

    await persistence.update_user_data(100, {"repair": {"description": "Tap", "photos": []}})
    await persistence.update_user_data(100, {"repair": {"description": "Leaking tap"}})
    await persistence.update_user_data(200, {"lang": "zh", "note": "厨房漏水"})

    assert await persistence.get_user_data() == {
        100: {"repair": {"description": "Leaking tap"}},
        200: {"lang": "zh", "note": "厨房漏水"},
    }
    await persistence.drop_user_data(100)
    assert await persistence.get_user_data() == {200: {"lang": "zh", "note": "厨房漏水"}}


async def test_chat_data_round_trips(persistence: DatabasePersistence) -> None:
    assert await persistence.get_chat_data() == {}

    await persistence.update_chat_data(-1001, {"muted": True})
    await persistence.update_chat_data(100, {})

    assert await persistence.get_chat_data() == {-1001: {"muted": True}, 100: {}}
    await persistence.drop_chat_data(-1001)
    assert await persistence.get_chat_data() == {100: {}}


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
    assert await persistence.get_conversations("repair") == {}

    await persistence.update_conversation("repair", (100, 100), Step.DESCRIBE)
    await persistence.update_conversation("repair", (100, 100), Step.CONTACT)
    await persistence.update_conversation("repair", (200, 200), Step.DESCRIBE)
    await persistence.update_conversation("booking", (100, 100), "booking.date")
    await persistence.update_conversation("booking", (-5, "inline-7"), 3)

    repair = await persistence.get_conversations("repair")
    assert repair == {(100, 100): Step.CONTACT, (200, 200): Step.DESCRIBE}
    assert type(repair[(100, 100)]) is str  # the value, so adding a step never breaks it
    assert await persistence.get_conversations("booking") == {
        (100, 100): "booking.date",
        (-5, "inline-7"): 3,
    }

    await persistence.update_conversation("repair", (100, 100), None)
    await persistence.update_conversation("repair", (300, 300), None)  # never stored: fine
    assert await persistence.get_conversations("repair") == {(200, 200): Step.DESCRIBE}


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
    assert await persistence.get_user_data() == {}


async def test_a_state_json_would_change_is_refused(persistence: DatabasePersistence) -> None:
    with pytest.raises(PersistenceDataError):
        await persistence.update_conversation("repair", (1, 1), (1, 2))
    assert await persistence.get_conversations("repair") == {}


async def test_database_errors_reach_the_caller(
    persistence: DatabasePersistence, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        await session.execute(text("DROP TABLE user_data"))
        await session.commit()

    with pytest.raises(DBAPIError):
        await persistence.update_user_data(100, {"a": 1})
    with pytest.raises(DBAPIError):
        await persistence.get_user_data()


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
    assert len(await persistence.get_user_data()) == 2001
    assert len(few) == len(many) == 2
    assert all("ON CONFLICT" in statement for statement in many)
    assert all("DELETE" not in statement and "SELECT" not in statement for statement in many)


async def test_many_rows_written_at_once_all_land(persistence: DatabasePersistence) -> None:
    # The Application hands every changed row over concurrently (asyncio.gather).
    await asyncio.gather(
        *(persistence.update_user_data(user_id, {"n": user_id}) for user_id in range(60)),
        *(persistence.update_conversation("repair", (n, n), Step.CONTACT) for n in range(60)),
    )

    assert len(await persistence.get_user_data()) == 60
    assert len(await persistence.get_conversations("repair")) == 60


# --- a real Application driven through process_update


class FakeBotApi(BaseRequest):
    """Answers the Bot API calls the test bot makes and records the messages it sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    @property
    def read_timeout(self) -> float | None:
        """Nothing here waits."""
        return 1.0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        """Returns what Telegram would for getMe and sendMessage."""
        endpoint = url.rsplit("/", 1)[-1]
        parameters = request_data.parameters if request_data is not None else {}
        result: object = True
        if endpoint == "getMe":
            result = BOT_USER
        elif endpoint == "sendMessage":
            self.sent.append(dict(parameters))
            result = {
                "message_id": len(self.sent) + 1000,
                "date": 1_700_000_000,
                "chat": {"id": parameters["chat_id"], "type": "private"},
                "from": BOT_USER,
                "text": parameters["text"],
            }
        return 200, json.dumps({"ok": True, "result": result}).encode()

    @property
    def texts(self) -> list[str]:
        """The texts sent so far."""
        return [str(message["text"]) for message in self.sent]


async def start_repair(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Step:
    """Asks what is broken."""
    assert update.effective_message is not None
    await update.effective_message.reply_text("What needs repairing?")
    return Step.DESCRIBE


async def _keep(update: Update, context: ContextTypes.DEFAULT_TYPE, field: str) -> None:
    # What the user typed is saved in the drafts table before we answer: a crash after this
    # line loses no input, whatever the persistence interval.
    assert update.effective_user is not None
    assert update.effective_message is not None
    assert context.user_data is not None
    draft = context.user_data.setdefault("repair", {})
    draft[field] = update.effective_message.text
    drafts: Drafts = context.bot_data["drafts"]
    await drafts.save(update.effective_user.id, "repair", draft)


async def receive_description(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Step:
    """Keeps the description and asks how to reach the resident."""
    await _keep(update, context, "description")
    assert update.effective_message is not None
    await update.effective_message.reply_text("How can the technician reach you?")
    return Step.CONTACT


async def receive_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Step:
    """Keeps the contact and shows the summary."""
    await _keep(update, context, "contact")
    assert update.effective_message is not None
    assert context.user_data is not None
    draft = context.user_data["repair"]
    await update.effective_message.reply_text(
        f"Create repair '{draft['description']}', contact {draft['contact']}? (yes/no)"
    )
    return Step.CONFIRM


async def confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Creates the repair from the draft and ends the conversation."""
    assert update.effective_user is not None
    assert update.effective_message is not None
    assert context.user_data is not None
    draft = context.user_data.pop("repair")
    drafts: Drafts = context.bot_data["drafts"]
    await drafts.clear(update.effective_user.id, "repair")
    await update.effective_message.reply_text(f"Created: {draft['description']}")
    return ConversationHandler.END


def build_app(
    persistence: DatabasePersistence, request: FakeBotApi, drafts: Drafts
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The test bot: one persistent repair conversation."""
    app = (
        Application.builder()
        .token("123456:TEST-token")
        .request(request)
        .get_updates_request(FakeBotApi())
        .persistence(persistence)
        .build()
    )
    text_only = filters.TEXT & ~filters.COMMAND
    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("repair", start_repair)],
            states={
                Step.DESCRIBE: [MessageHandler(text_only, receive_description)],
                Step.CONTACT: [MessageHandler(text_only, receive_contact)],
                Step.CONFIRM: [MessageHandler(filters.Regex("^yes$"), confirm)],
            },
            fallbacks=[],
            name="repair",
            persistent=True,
        )
    )
    app.bot_data["drafts"] = drafts
    return app


class Chat:
    """Makes the updates one resident sends in a private chat."""

    def __init__(self) -> None:
        self._ids = iter(range(1, 10_000))

    def says(self, app: Application[Any, Any, Any, Any, Any, Any], words: str) -> Update:
        """An update carrying the text (a command when it starts with '/')."""
        number = next(self._ids)
        message: dict[str, Any] = {
            "message_id": number,
            "date": 1_700_000_000 + number,
            "chat": {"id": RESIDENT["id"], "type": "private"},
            "from": RESIDENT,
            "text": words,
        }
        if words.startswith("/"):
            command = words.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        update = Update.de_json({"update_id": number, "message": message}, app.bot)
        assert update is not None
        return update


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
    assert await check.get_conversations("repair") == {}
    assert await check.get_user_data() == {100: {}}
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
        assert await DatabasePersistence(sessions).get_conversations("repair") == {
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
