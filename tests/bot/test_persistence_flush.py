"""What the periodic flush costs the event loop: what each update or job left is taken in as
JSON text when it ends (only what changed), so PTB deep-copies nothing at the flush, and the
rows go in short transactions. Also pins the PTB internals this relies on."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import telegram.ext._application as ptb_application
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import Update
from telegram.ext import (
    Application,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    TypeHandler,
)

from bot.persistence import DatabasePersistence, PersistenceDataError, PersistentApplication
from bot.storage.persisted import SLICE, PersistedState
from bot.storage.repositories import Drafts
from tests.bot.repair_bot import Chat, FakeBotApi, Step, build_app

App = Application[Any, Any, Any, Any, Any, Any]


def _resident(user_id: int) -> Chat:
    return Chat(
        {"id": user_id, "is_bot": False, "first_name": "R", "language_code": "en"},
        first_id=user_id * 100,
    )


async def _midway(app: App, chats: list[Chat]) -> None:
    for words in ("/repair", "The kitchen tap drips"):
        for resident in chats:
            await app.process_update(resident.says(app, words))


async def _ping(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text("pong")


async def _put_a_tuple(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.user_data is not None
    context.user_data["pair"] = (1, 2)


def _app(sessions: async_sessionmaker[AsyncSession]) -> tuple[App, DatabasePersistence]:
    persistence = DatabasePersistence(sessions)
    app = build_app(persistence, FakeBotApi(), Drafts(sessions))
    app.add_handler(CommandHandler("ping", _ping))
    app.add_handler(CommandHandler("tuple", _put_a_tuple))
    return app, persistence


@contextmanager
def _deep_copies() -> Iterator[list[object]]:
    """Counts PTB's deep copies at its flush (the copies of every marked user_data and
    chat_data, made on the event loop)."""
    copied: list[object] = []
    original = copy.deepcopy

    def counting(value: Any, *args: Any) -> Any:
        copied.append(value)
        return original(value, *args)

    # PTB's module does `from copy import deepcopy`; its flush finds the name there.
    setattr(ptb_application, "deepcopy", counting)  # noqa: B010
    try:
        yield copied
    finally:
        setattr(ptb_application, "deepcopy", original)  # noqa: B010


@contextmanager
def _transactions(engine: AsyncEngine) -> Iterator[list[list[int]]]:
    """The rows each transaction bound (one entry per statement), transaction by transaction."""
    transactions: list[list[int]] = [[]]
    sync = engine.sync_engine

    def executed(*args: Any) -> None:
        parameters, many = args[3], args[5]
        transactions[-1].append(len(parameters) if many else 1)

    def committed(*_: object) -> None:
        transactions.append([])

    event.listen(sync, "before_cursor_execute", executed)
    event.listen(sync, "commit", committed)
    try:
        yield transactions
    finally:
        event.remove(sync, "before_cursor_execute", executed)
        event.remove(sync, "commit", committed)
        while transactions and not transactions[-1]:
            transactions.pop()


async def test_a_flush_copies_nothing_and_stores_what_the_updates_left(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    app, persistence = _app(sessions)
    chats = [_resident(user_id) for user_id in range(201, 261)]
    async with app:
        await _midway(app, chats)
        with _deep_copies() as copied:
            await app.update_persistence()

    # PTB's flush used to deep-copy the user_data and chat_data of all 60 residents, on the
    # event loop, while their next updates waited.
    assert copied == []
    assert await persistence.stored_conversations("repair") == {
        (n, n): Step.CONTACT for n in range(201, 261)
    }
    assert await persistence.stored_user_data() == {
        n: {"repair": {"description": "The kitchen tap drips"}} for n in range(201, 261)
    }


async def test_updates_that_change_nothing_write_nothing(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    app, persistence = _app(sessions)
    chats = [_resident(user_id) for user_id in range(301, 321)]
    async with app:
        await _midway(app, chats)
        await app.update_persistence()
        for resident in chats:
            await app.process_update(resident.says(app, "/ping"))
        with _transactions(engine) as transactions:
            await app.update_persistence()

    # Before, every update wrote its user's and chat's data back at the next flush, changed
    # or not: 40 rows here.
    assert transactions == []
    assert len(await persistence.stored_user_data()) == 20


async def test_the_last_update_before_a_stop_is_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    app, persistence = _app(sessions)
    ann = _resident(401)
    async with app:
        await app.process_update(ann.says(app, "/repair"))
        await app.process_update(ann.says(app, "The boiler is cold"))

    assert await persistence.stored_conversations("repair") == {(401, 401): Step.CONTACT}
    assert await persistence.stored_user_data() == {
        401: {"repair": {"description": "The boiler is cold"}}
    }


async def test_a_finished_conversation_is_deleted_at_the_flush(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    app, persistence = _app(sessions)
    ann = _resident(411)
    async with app:
        await _midway(app, [ann])
        await app.update_persistence()
        await app.process_update(ann.says(app, "+86 138 0000 0000"))
        await app.process_update(ann.says(app, "yes"))
        await app.update_persistence()
        assert await persistence.stored_conversations("repair") == {}
        assert await persistence.stored_user_data() == {411: {}}


async def test_what_a_job_left_is_stored(sessions: async_sessionmaker[AsyncSession]) -> None:
    app, persistence = _app(sessions)

    async def remember(context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.user_data is not None
        context.user_data["reminded"] = True

    async with app:
        assert app.job_queue is not None
        job = app.job_queue.run_once(remember, 3600, user_id=421, chat_id=421)
        await job.run(app)
        job.schedule_removal()
        await app.update_persistence()
        assert await persistence.stored_user_data() == {421: {"reminded": True}}


async def test_what_a_conversations_time_out_left_is_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    app, persistence = _app(sessions)

    async def nap(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
        assert context.user_data is not None
        context.user_data["prompt"] = 7
        return 1

    async def wake(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.user_data is not None
        context.user_data.pop("prompt", None)

    napping = ConversationHandler(
        entry_points=[CommandHandler("nap", nap)],
        states={1: [], ConversationHandler.TIMEOUT: [TypeHandler(Update, wake)]},
        fallbacks=[],
        conversation_timeout=3600,
        name="nap",
        persistent=True,
    )
    app.add_handler(napping, group=1)
    ann = _resident(425)
    async with app:
        await app.start()  # a time-out needs the running JobQueue
        try:
            await app.process_update(ann.says(app, "/nap"))
            await app.update_persistence()
            assert await persistence.stored_user_data() == {425: {"prompt": 7}}
            await napping.timeout_jobs[(425, 425)].run(app)
            await app.update_persistence()
            # Before, the time-out's change waited for the user's next update to be stored.
            assert await persistence.stored_user_data() == {425: {}}
            assert await persistence.stored_conversations("nap") == {}
        finally:
            await app.stop()


async def test_data_json_cannot_hold_still_reaches_the_error_handler(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    app, persistence = _app(sessions)
    errors: list[BaseException] = []

    async def note(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    app.add_error_handler(note)
    ann, bob = _resident(431), _resident(432)
    async with app:
        await app.process_update(ann.says(app, "/tuple"))
        await _midway(app, [bob])
        await app.update_persistence()
        assert [type(error) for error in errors] == [PersistenceDataError]
        assert set(await persistence.stored_user_data()) == {432}


async def test_a_flush_that_failed_is_written_by_the_next(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, persistence = _app(sessions)
    errors: list[BaseException] = []

    async def note(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    app.add_error_handler(note)
    original = PersistedState.write

    async def fails(self: PersistedState, changes: Any) -> None:
        raise ConnectionError("the database went away")

    chats = [_resident(user_id) for user_id in range(441, 446)]
    async with app:
        await _midway(app, chats[:3])
        monkeypatch.setattr(PersistedState, "write", fails)
        await app.update_persistence()
        assert [type(error) for error in errors] == [ConnectionError]
        monkeypatch.setattr(PersistedState, "write", original)
        # Meanwhile the first resident moved on and two more began.
        await app.process_update(chats[0].says(app, "+86 138 0000 0000"))
        await _midway(app, chats[3:])
        await app.update_persistence()
        stored = await persistence.stored_conversations("repair")

    # Before, what the failed flush held was gone: the first three residents' steps.
    assert stored == {
        (441, 441): Step.CONFIRM,
        **{(n, n): Step.CONTACT for n in range(442, 446)},
    }


async def test_a_big_flush_goes_in_transactions_of_a_slice_at_most(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    app, persistence = _app(sessions)
    chats = [_resident(user_id) for user_id in range(1000, 1250)]
    async with app:
        await _midway(app, chats)
        with _transactions(engine) as transactions:
            await app.update_persistence()

    # 250 user_data rows and 250 conversations: never all of them behind one transaction,
    # which holds SQLite's one writer while the handlers' own writes wait.
    bound = [sum(rows) for rows in transactions]
    assert sum(bound) == 500
    assert max(bound) <= SLICE
    assert len(bound) <= math.ceil(500 / SLICE) + 2
    assert len(await persistence.stored_conversations("repair")) == 250


# --- PTB's internals this relies on (bot/persistence.py, docs/architecture.md)


def test_ptb_still_has_the_hook_it_calls_when_an_update_or_job_ends() -> None:
    hook = inspect.signature(ptb_application.Application._mark_for_persistence_update)
    assert [(p.name, p.kind) for p in hook.parameters.values()] == [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("update", inspect.Parameter.KEYWORD_ONLY),
        ("job", inspect.Parameter.KEYWORD_ONLY),
    ]


async def test_ptb_calls_the_hook_after_each_update_and_each_job(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = _app(sessions)
    calls: list[tuple[object, object]] = []
    original = PersistentApplication._mark_for_persistence_update

    def spy(self: PersistentApplication, *, update: object = None, job: Any = None) -> None:
        calls.append((update, job))
        original(self, update=update, job=job)

    monkeypatch.setattr(PersistentApplication, "_mark_for_persistence_update", spy)

    async def nothing(context: ContextTypes.DEFAULT_TYPE) -> None:
        pass

    ann = _resident(451)
    async with app:
        update = ann.says(app, "/ping")
        await app.process_update(update)
        assert app.job_queue is not None
        job = app.job_queue.run_once(nothing, 3600, user_id=451)
        await job.run(app)
        job.schedule_removal()

    assert calls == [(update, None), (None, job)]
