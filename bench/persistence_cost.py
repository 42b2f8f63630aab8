"""Figure 2: what persisting one update costs with 1k, 10k and 100k stored conversations,
Concierge's `DatabasePersistence` (on SQLite, the default, against PTB's `PicklePersistence`;
and on PostgreSQL, what a deployment uses).

A stored conversation is a resident half way through reporting a repair: the `repair`
conversation's state, their draft, their user_data and their chat_data. Concierge keeps the
draft in the drafts table, written by the step the resident typed (one upsert), and user_data
holds no draft; PicklePersistence keeps it in user_data, as a PTB bot without a drafts table
would. One update writes the draft that changed and makes the calls
`Application.update_persistence` makes after it: the chat's chat_data, the user's user_data
(the same dict, as the Application passes it) and the conversation's new state. Both sides get
the same updates for the same residents.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from telegram.ext import BasePersistence, ExtBot, PersistenceInput, PicklePersistence

from bench.databases import SQLITE, Databases
from bench.harness import now
from bench.report import Figure, Target
from bot.persistence import DatabasePersistence
from bot.storage.db import create_engine, make_session_factory
from bot.storage.migrate import upgrade
from bot.storage.models import ChatData, ConversationState, Draft, UserData
from bot.storage.repositories import Drafts
from conversations.repair import JOB, RepairDraft, State

FIRST_USER = 7_000_000
ROWS_PER_INSERT = 5_000
WARM_UPDATES = 3
GROWTH_TARGET = 1.5
TIMESTAMP = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)


def draft_of(user_id: int) -> dict[str, Any]:
    """A resident's repair draft as the flow stores it (in the drafts table)."""
    draft = RepairDraft(
        command_id=f"bench-{user_id:012d}-0000-4000-8000-000000000000",
        step=State.DESCRIBE,
        description="The kitchen tap drips all night and the cabinet below is getting wet.",
        start=TIMESTAMP,
        end=TIMESTAMP.replace(hour=12),
    )
    return draft.model_dump(mode="json")


def user_data_of(user_id: int) -> dict[str, Any]:
    """What Concierge keeps in a resident's user_data: no draft."""
    return {"known": True}


def pickle_user_data_of(user_id: int) -> dict[str, Any]:
    """A PTB bot without a drafts table keeps the draft in user_data."""
    return user_data_of(user_id) | {JOB: draft_of(user_id)}


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def populate_database(database_url: str, count: int) -> None:
    """Migrates the database and stores `count` residents' conversations and data in it."""
    await upgrade(database_url)
    if count == 0:
        return
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for start in range(0, count, ROWS_PER_INSERT):
                users = range(FIRST_USER + start, FIRST_USER + min(count, start + ROWS_PER_INSERT))
                await connection.execute(
                    insert(ConversationState),
                    [
                        {
                            "name": JOB,
                            "key": _json([u, u]),
                            "state": _json(State.DESCRIBE.value),
                            "updated_at": TIMESTAMP,
                        }
                        for u in users
                    ],
                )
                await connection.execute(
                    insert(UserData),
                    [
                        {"user_id": u, "data": _json(user_data_of(u)), "updated_at": TIMESTAMP}
                        for u in users
                    ],
                )
                await connection.execute(
                    insert(Draft),
                    [
                        {
                            "telegram_id": u,
                            "job": JOB,
                            "data": draft_of(u),
                            "updated_at": TIMESTAMP,
                        }
                        for u in users
                    ],
                )
                await connection.execute(
                    insert(ChatData),
                    [{"chat_id": u, "data": "{}", "updated_at": TIMESTAMP} for u in users],
                )
    finally:
        await engine.dispose()


def _pickle(path: Path) -> PicklePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]:
    # bot_data and callback_data off, as in Concierge's persistence, so both write the same.
    persistence = PicklePersistence(
        path, store_data=PersistenceInput(bot_data=False, callback_data=False)
    )
    persistence.set_bot(ExtBot("1:bench-token-never-sent"))
    return persistence


async def populate_pickle(path: Path, count: int) -> None:
    """Writes a pickle file holding `count` residents' conversations and data."""
    persistence = PicklePersistence(
        path, store_data=PersistenceInput(bot_data=False, callback_data=False), on_flush=True
    )
    persistence.set_bot(ExtBot("1:bench-token-never-sent"))
    await persistence.get_conversations(JOB)
    for user in range(FIRST_USER, FIRST_USER + count):
        await persistence.update_user_data(user, pickle_user_data_of(user))
        await persistence.update_chat_data(user, {})
        await persistence.update_conversation(JOB, (user, user), State.DESCRIBE.value)
    await persistence.flush()


class Writer:
    """Plays the update pattern against one persistence loaded with `count` residents.

    With `drafts`, the draft goes to its table (Concierge); without, it lives in user_data.
    """

    def __init__(
        self, persistence: BasePersistence[Any, Any, Any], count: int, drafts: Drafts | None = None
    ) -> None:
        self.persistence = persistence
        self.count = count
        self.drafts = drafts
        self._user_data: dict[int, dict[str, Any]] = {}
        self._chat_data: dict[int, dict[str, Any]] = {}
        self._states: dict[tuple[int | str, ...], str] = {}

    async def load(self) -> None:
        """Reads everything, as the Application does at start; it hands these dicts back."""
        self._user_data = await self.persistence.get_user_data()
        self._chat_data = await self.persistence.get_chat_data()
        conversations = await self.persistence.get_conversations(JOB)
        self._states = {key: str(state) for key, state in conversations.items()}

    async def update(self, number: int) -> float:
        """Persists update `number` (a changed draft, a new state); returns its seconds."""
        # A stride coprime with the count visits residents all over the table, not one corner.
        user = FIRST_USER + (number * 7919) % self.count
        draft = draft_of(user) | {"description": f"The kitchen tap drips (update {number})."}
        if self.drafts is None:
            data = self._user_data.setdefault(user, pickle_user_data_of(user))
            data[JOB] = draft
        else:
            data = self._user_data.setdefault(user, user_data_of(user))
        key = (user, user)
        state = State.PHOTOS if self._states.get(key) == State.DESCRIBE else State.DESCRIBE
        self._states[key] = state.value
        started = now()
        if self.drafts is not None:
            await self.drafts.save(user, JOB, draft)
        await self.persistence.update_chat_data(user, self._chat_data.setdefault(user, {}))
        await self.persistence.update_user_data(user, data)
        await self.persistence.update_conversation(JOB, key, state.value)
        return now() - started


async def measure_database(
    databases: Databases, sizes: Sequence[int], updates: int
) -> dict[int, list[float]]:
    """Per-update seconds of Concierge's persistence on `databases`, for each stored count.

    The sizes take turns update by update, so a busy moment on the machine costs them alike.
    """
    engines = []
    writers: list[Writer] = []
    try:
        for count in sizes:
            url = await databases.fresh(f"persistence-{count}")
            await populate_database(url, count)
            engines.append(create_engine(url))
            sessions = make_session_factory(engines[-1])
            writers.append(Writer(DatabasePersistence(sessions), count, Drafts(sessions)))
            await writers[-1].load()
        times: dict[int, list[float]] = {count: [] for count in sizes}
        for number in range(WARM_UPDATES + updates):
            for writer in writers:
                seconds = await writer.update(number)
                if number >= WARM_UPDATES:
                    times[writer.count].append(seconds)
        return times
    finally:
        for engine in engines:
            await engine.dispose()


async def measure_pickle(workdir: Path, count: int, updates: int) -> list[float]:
    """Per-update seconds of PTB's PicklePersistence (its defaults) with `count` stored."""
    path = workdir / f"persistence-{count}.pickle"
    await populate_pickle(path, count)
    writer = Writer(_pickle(path), count)
    await writer.load()
    # One warm-up write only: at this size each costs a whole file.
    return [await writer.update(number) for number in range(1 + updates)][1:]


def _ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "updates": len(values),
        "median_ms": round(statistics.median(values) * 1000, 3),
        "mean_ms": round(statistics.fmean(values) * 1000, 3),
    }


async def run_persistence_cost(
    *, sizes: Sequence[int], updates: int, pickle_budget: int, databases: Databases
) -> Figure:
    """Figure 2: both persistences at every size, same updates; the growth of ours. On
    PostgreSQL ours alone: PicklePersistence has no database, its figures are SQLite's run's."""
    pickled = databases.kind == SQLITE
    figure = Figure(
        key="persistence",
        title="Persistence write cost per update by stored conversations",
        headers=["stored", f"Concierge ({databases.label})"]
        + (["PicklePersistence", "pickle ÷ ours"] if pickled else []),
    )
    rows: list[dict[str, Any]] = []
    database = await measure_database(databases, sizes, updates)
    for count in sizes:
        ours = _ms(database[count])
        if not pickled:
            rows.append({"stored": count, "concierge": ours})
            figure.table.append([f"{count:,}", f"{ours['median_ms']:.2f} ms"])
            continue
        # Pickle rewrites the whole file per write: fewer updates keep its run short.
        pickle_updates = max(3, min(updates, pickle_budget // count))
        theirs = _ms(await measure_pickle(databases.directory, count, pickle_updates))
        ratio = round(theirs["median_ms"] / ours["median_ms"], 1)
        rows.append(
            {"stored": count, "concierge": ours, "pickle": theirs, "pickle_over_ours": ratio}
        )
        figure.table.append(
            [
                f"{count:,}",
                f"{ours['median_ms']:.2f} ms",
                f"{theirs['median_ms']:.2f} ms",
                f"{ratio:.1f}×",
            ]
        )
    smallest, largest = rows[0], rows[-1]
    growth = round(largest["concierge"]["median_ms"] / smallest["concierge"]["median_ms"], 2)
    figure.data = {"rows": rows, "growth": growth, "database": databases.kind}
    measured = f"{growth}×"
    if pickled:
        pickle_growth = round(largest["pickle"]["median_ms"] / smallest["pickle"]["median_ms"], 1)
        figure.data["pickle_growth"] = pickle_growth
        measured += f" (PicklePersistence: {pickle_growth}×)"
    figure.targets.append(
        Target(
            f"ours within {GROWTH_TARGET}× from {smallest['stored']:,} to {largest['stored']:,}",
            growth <= GROWTH_TARGET,
            measured,
        )
    )
    figure.notes += [
        "Median per update of: the resident's changed draft, chat_data, user_data and the "
        "conversation's new state. Concierge upserts one row each (the draft in its own "
        "table, written by the step itself); PicklePersistence (single file, not on_flush: "
        "its defaults) keeps the draft in user_data and rewrites the whole file when a value "
        "changed.",
        "Both with bot_data and callback_data off, as Concierge's persistence has them. "
        "Concierge's sizes take turns update by update; PicklePersistence runs each size "
        "on its own, with fewer updates (each rewrites the file).",
    ]
    return figure
