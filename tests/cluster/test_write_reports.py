"""A repair created in an update whose process dies before the update is stored as handled:
the update runs again on another process without the draft (the write journal took it), and
the resident is still told, once, that the repair was created. The kill is made to land in
that window every time: the first process dies in the very step that would store the update.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench.harness import message_update, prepare_community, press_update
from conversations import callbacks
from conversations.writes import short_id
from tests.cluster.inprocess import cluster_bot, until
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
