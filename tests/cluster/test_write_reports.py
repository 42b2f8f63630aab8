"""A repair created in an update whose process dies before the update is stored as handled:
the update runs again on another process without the draft (the write journal took it), and
the resident is still told, once, that the repair was created. The kill is made to land in
that window every time: the first process dies in the very step that would store the update.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from telegram.request import RequestData

from bench.harness import message_update, prepare_community, press_update
from bot.jobs import report_outcome
from bot.services import UserTargets
from bot.storage.models import WriteRecord
from bot.writes import WriteJournalService
from conversations import callbacks
from conversations.writes import Outcome, short_id
from tests.cluster.inprocess import Bot, TranscriptRequest, cluster_bot, until
from tests.conftest import PostgresServer

DESCRIPTION = "The bathroom extractor fan rattles and stops"
CONTACT = "+86 139 0000 0020"
WENT_THROUGH = "Your repair report went through"


async def test_a_repair_created_just_before_a_kill_is_still_told_once(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    name = f"cluster_write_reports_{id(tmp_path)}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    database_url = postgres_server.url_for(name)
    try:
        community = await prepare_community(tmp_path, 1, database_url=database_url)
        resident = community.residents[0].telegram_id
        repairs = community.sandbox.state.control.vendors["akubela"]._repairs
        async with (
            cluster_bot(database_url, community.sandbox) as first,
            # The survivor's write journal job looks every half second.
            cluster_bot(database_url, community.sandbox, outbox_interval_seconds=0.5) as second,
        ):
            first.dispatcher.start()
            steps: list[dict[str, Any]] = [
                message_update(1, resident, "/repair"),
                message_update(2, resident, DESCRIPTION),
                press_update(3, resident, callbacks.build("repair", "done")),
                press_update(4, resident, callbacks.build("repair", "when", "1m")),
                press_update(5, resident, callbacks.build("repair", "ok")),
                message_update(6, resident, CONTACT),
            ]
            for step in steps:
                await first.handle(step)
            assert "How can the technician reach you?" not in first.telegram.last_text[resident]

            first.inbound.dies_at = 7
            await first.dispatcher.receive(
                press_update(7, resident, callbacks.build("repair", "confirm"))
            )
            await until(
                lambda: any(r.description == DESCRIPTION for r in repairs.values()),
                "repair at Akubela",
            )
            await first.dispatcher.stop()
            # The dead process had already told the resident before it died.
            assert any(WENT_THROUGH in t or "created" in t for t in first.telegram.texts[resident])

            # The survivor runs the cut-off update again, and its journal job looks.
            second.dispatcher.start()
            await until(
                lambda: any(WENT_THROUGH in t for t in second.telegram.texts[resident]),
                "report from the survivor",
            )
            await asyncio.sleep(1.5)  # three more looks of the job: it is told once

            told = [t for t in second.telegram.texts[resident] if WENT_THROUGH in t]
            assert len(told) == 1
            made = [key for key, r in repairs.items() if r.description == DESCRIPTION]
            assert len(made) == 1
            assert short_id(made[0]) in told[0]
            waiting, _ = await second.inbound.counts()
            assert waiting == 0

            # A repair confirmed on a process that lives: its conversation told it, and it
            # counts as told with the update, so the journal never tells it again.
            for number, step in enumerate(steps, start=8):
                payload = dict(step, update_id=number)
                if number == 9:
                    payload = message_update(number, resident, "The hall light flickers")
                await second.handle(payload)
            confirm = press_update(14, resident, callbacks.build("repair", "confirm"))
            # On another message than the first confirm, which the survivor saw moments ago
            # (the same press on the same message that soon is a double tap, ignored).
            confirm["callback_query"]["message"]["message_id"] = 14
            await second.handle(confirm)
            assert "created" in second.telegram.last_text[resident]
            rows = await second.services.storage.writes.all()
            assert len(rows) == 2
            assert all(row.reported_at is not None for row in rows)
    finally:
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Short, so that the handler below outlives it several times within seconds.
SHORT_LEASE = timedelta(seconds=1.5)
CREATED = "created — waiting for confirmation"


@dataclass
class _HoldsTheReport(TranscriptRequest):
    """The recording Bot API, holding the handler's "Repair created" message until the test
    lets it go (as a send waiting its turn under Telegram's limits does)."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)

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
        text = request_data.parameters.get("text") if request_data is not None else None
        if isinstance(text, str) and CREATED in text and not self.reached.is_set():
            self.reached.set()
            await self.go.wait()
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )


def _short_journal(bot: Bot, owner: str | None = None) -> WriteJournalService:
    services = bot.services
    journal = WriteJournalService(
        services.storage,
        targets_for=lambda telegram_id: UserTargets(services, telegram_id),
        clock=services.clock,
        lease=SHORT_LEASE,
        owner=owner,
    )
    services.writes = journal
    return journal


async def test_a_handler_that_outlives_the_write_lease_tells_its_write_once(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    name = f"cluster_write_lease_{id(tmp_path)}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    database_url = postgres_server.url_for(name)
    try:
        community = await prepare_community(tmp_path, 1, database_url=database_url)
        resident = community.residents[0].telegram_id
        held = _HoldsTheReport()
        async with (
            cluster_bot(database_url, community.sandbox, request=held) as first,
            cluster_bot(database_url, community.sandbox) as second,
            contextlib.AsyncExitStack() as stack,
        ):
            # A failure below must not leave the first process's handler held at its stop.
            stack.callback(held.go.set)
            _short_journal(first)
            # Named as a process on another machine: both bots run in this one process, and a
            # journal takes a write held under its own pid as an earlier start's.
            other = _short_journal(second, owner="another-host:1:second")
            first.dispatcher.start()
            for step in _steps(resident):
                await first.handle(step)
            await first.dispatcher.receive(
                press_update(7, resident, callbacks.build("repair", "confirm"))
            )
            await asyncio.wait_for(held.reached.wait(), 30)
            # The repair was created and the first process's handler is sending its report:
            # held there past the lease, while the second process's journal looks.
            [row] = await first.services.storage.writes.all()

            async def report(outcome: Outcome) -> None:
                await report_outcome(second.app, second.services, outcome)

            async def the_other_looks_past(row: WriteRecord) -> None:
                until = row.next_attempt_at + SHORT_LEASE
                while second.services.clock() <= until:
                    await asyncio.sleep(SHORT_LEASE.total_seconds() / 4)
                    await other.tell_unreported(report)

            await the_other_looks_past(row)
            assert not [t for t in second.telegram.texts[resident] if WENT_THROUGH in t]

            held.go.set()
            await until(lambda: any(CREATED in t for t in held.texts[resident]), "the report")
            waiting, _ = await first.inbound.counts()
            assert waiting == 0
            [row] = await first.services.storage.writes.all()
            assert row.reported_at is not None
            await the_other_looks_past(row)
            told = [
                t
                for t in held.texts[resident] + second.telegram.texts[resident]
                if CREATED in t or WENT_THROUGH in t
            ]
            assert len(told) == 1
    finally:
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _steps(resident: int) -> list[dict[str, Any]]:
    return [
        message_update(1, resident, "/repair"),
        message_update(2, resident, "The kitchen tap drips, and the reply waits its turn"),
        press_update(3, resident, callbacks.build("repair", "done")),
        press_update(4, resident, callbacks.build("repair", "when", "1m")),
        press_update(5, resident, callbacks.build("repair", "ok")),
        message_update(6, resident, CONTACT),
    ]
