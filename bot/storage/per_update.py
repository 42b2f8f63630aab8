"""What storage may remember for the length of one update: the reads an update repeats (the
actor, asked for by the gate, the handler and the menu alike) come from the database once.

An update's handlers run in one asyncio task, so a scope opened at the start of an update
belongs to that task and to nothing else: a task started from a handler, a job or the web
server sees no scope and reads the database as before. Any statement that is not a read, on
the engine, empties the scope of the task that made it, so an update that links, unlinks or
changes a role reads the new truth afterwards. A write by another task (the web server's
login callback, say) is not seen until the next update, as if this update had read first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


class _Scope:
    __slots__ = ("remembered", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.remembered: dict[object, object] = {}


_SCOPE: ContextVar[_Scope | None] = ContextVar("concierge_per_update", default=None)


def open_scope() -> None:
    """Starts remembering for the update the current task is handling (forgetting any
    earlier update's reads)."""
    _SCOPE.set(_Scope(_current_task()))


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: no update either
        return None


def _scope() -> _Scope | None:
    scope = _SCOPE.get()
    if scope is None or scope.task is None or scope.task is not _current_task():
        return None
    return scope


async def remembered(key: object, read: Callable[[], Awaitable[T]]) -> T:
    """`read()`'s answer, from this update's scope when it was read already in it; `key` names
    the read and its arguments, and always stands for the same type of answer."""
    scope = _scope()
    if scope is not None and key in scope.remembered:
        return cast(T, scope.remembered[key])
    value = await read()
    scope = _scope()
    if scope is not None:
        scope.remembered[key] = value
    return value


def remember(key: object, value: object) -> None:
    """Keeps `value` under `key` for the rest of the update (a read that answered two
    questions at once); nothing outside an update."""
    scope = _scope()
    if scope is not None:
        scope.remembered[key] = value


def recall(key: object) -> tuple[bool, Any]:
    """Whether this update's scope holds `key`, and its value."""
    scope = _scope()
    if scope is None or key not in scope.remembered:
        return False, None
    return True, scope.remembered[key]


def forget() -> None:
    """Empties the current update's scope (after a write)."""
    scope = _scope()
    if scope is not None:
        scope.remembered.clear()


def _on_statement(
    _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
) -> None:
    if not statement.lstrip()[:6].upper().startswith("SELECT"):
        forget()


def watch_writes(engine: AsyncEngine) -> None:
    """Every statement but a read on `engine` empties the writing update's scope."""
    event.listen(engine.sync_engine, "before_cursor_execute", _on_statement)
