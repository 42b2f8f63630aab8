"""The async engine and session factory: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, event, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.sql.dml import Insert

from bot.storage.models import Base

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///concierge.db"

# What the rest of the bot names when it hands a session factory on or catches a database
# failure, so that nothing outside bot.storage imports SQLAlchemy.
Sessions = async_sessionmaker[AsyncSession]
DatabaseError = SQLAlchemyError

# A writer waits this long for SQLite's single write lock before failing; the persistence
# writes several rows at once from concurrent tasks.
SQLITE_BUSY_TIMEOUT_MS = 15_000


def create_engine(database_url: str = DEFAULT_DATABASE_URL, **kwargs: Any) -> AsyncEngine:
    """Opens an async engine; SQLite connections get WAL, foreign keys and a busy timeout."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return _create_async_engine(url, pool_pre_ping=True, **kwargs)
    kwargs.setdefault("pool_reset_on_return", None)
    engine = _create_async_engine(url, pool_pre_ping=False, **kwargs)
    event.listen(engine.sync_engine, "connect", _configure_sqlite)
    # On aiosqlite every call to the connection is a trip to its thread and back (the GIL
    # handed over twice); a read's unit of work made five, of which the commit and the pool's
    # rollback had nothing to end. SQLite says whether a transaction is open, so those two are
    # made only when one is.
    dialect = engine.sync_engine.dialect
    commit = dialect.do_commit

    def do_commit(dbapi_connection: Any) -> None:
        if _in_transaction(dbapi_connection):
            commit(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    if kwargs["pool_reset_on_return"] is None:
        event.listen(engine.sync_engine, "reset", _reset_sqlite)
    return engine


def _in_transaction(dbapi_connection: Any) -> bool:
    driver = getattr(dbapi_connection, "_connection", None)
    return driver is None or bool(driver.in_transaction)


def _reset_sqlite(dbapi_connection: Any, _record: Any, reset_state: Any) -> None:
    # The pool's rollback of every connection it takes back, only when one is open (above).
    if not reset_state.terminate_only and _in_transaction(dbapi_connection):
        dbapi_connection.rollback()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers carry on while a writer commits; foreign keys are off by default.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # In WAL mode NORMAL survives a crashed or killed process with every commit intact;
        # only a power cut can lose the last few, and it saves an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_session_factory(engine: AsyncEngine) -> Sessions:
    """One factory per engine; each unit of work is `async with sessions.begin() as session:`,
    which commits when the block ends and rolls back when it raises."""
    return async_sessionmaker(engine, expire_on_commit=False)


def upsert(
    dialect_name: str,
    model: type[Base],
    rows: Sequence[dict[str, Any]] | dict[str, Any],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
    when_changed: Sequence[str] = (),
) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE (or DO NOTHING when `update` is empty); with
    `when_changed`, the stored row is updated only when one of those columns would change
    (so a RETURNING statement returns no row when nothing did)."""
    statement: sqlite.Insert | postgresql.Insert
    if dialect_name == "sqlite":
        statement = sqlite.insert(model).values(rows)
    elif dialect_name == "postgresql":
        statement = postgresql.insert(model).values(rows)
    else:
        raise NotImplementedError(f"no upsert for the {dialect_name} dialect")
    if update is None:
        first = rows if isinstance(rows, dict) else rows[0]
        update = [column for column in first if column not in key]
    if not update:
        # No key: any unique constraint's conflict is ignored, not only the key's (a row that
        # a concurrent transaction added may meet another constraint first).
        return statement.on_conflict_do_nothing(index_elements=list(key) or None)
    # `excluded` builds a new alias of the table on every access: taken once, not per column.
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={column: excluded[column] for column in update},
        where=or_(*(model.__table__.c[c].is_distinct_from(excluded[c]) for c in when_changed))
        if when_changed
        else None,
    )


@functools.cache
def upsert_one(
    dialect_name: str,
    model: type[Base],
    columns: tuple[str, ...],
    *,
    key: tuple[str, ...],
    update: tuple[str, ...] | None = None,
    when_changed: tuple[str, ...] = (),
) -> Insert:
    """`upsert` of one row of `columns`, built once and executed with the row as its
    parameters (`session.execute(statement, row)`): the statements an update makes every time
    (a draft saved, a user met) would otherwise be built anew for each."""
    table = model.__table__
    row = {column: bindparam(column, type_=table.c[column].type) for column in columns}
    return upsert(
        dialect_name,
        model,
        row,
        key=key,
        update=None if update is None else list(update),
        when_changed=when_changed,
    )
