"""A conversation's time-out in cluster mode belongs to the process that handled its last
update: the process that handled an earlier one, whose own time-out job still runs, keeps quiet.
Two cluster bots in this process, on one PostgreSQL database, each on a recording Bot API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.harness import message_update, prepare_community
from tests.cluster.inprocess import cluster_bot
from tests.conftest import PostgresServer

TIME_OUT_MINUTES = 0.1  # six seconds


async def test_only_the_process_that_handled_the_last_update_times_the_flow_out(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    name = f"cluster_time_outs_{id(tmp_path)}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    database_url = postgres_server.url_for(name)
    try:
        community = await prepare_community(tmp_path, 1, database_url=database_url)
        resident = community.residents[0].telegram_id
        async with (
            cluster_bot(
                database_url, community.sandbox, conversation_timeout_minutes=TIME_OUT_MINUTES
            ) as first,
            cluster_bot(
                database_url, community.sandbox, conversation_timeout_minutes=TIME_OUT_MINUTES
            ) as second,
        ):
            # The first process starts the repair; the second takes the description.
            first.dispatcher.start()
            await first.handle(message_update(1, resident, "/repair"))
            await first.dispatcher.stop()
            said_by_first = first.told()
            second.dispatcher.start()
            await asyncio.sleep(3.0)
            await second.handle(message_update(2, resident, "The kitchen tap drips all night"))
            said_by_second = second.told()
            # Past the first process's time-out, before the second's.
            await asyncio.sleep(4.5)
            assert first.told() == said_by_first
            assert second.told() == said_by_second
            # Past the second's: it tells the resident, once.
            await asyncio.sleep(3.0)
            assert first.told() == said_by_first
            assert second.told() == said_by_second + 1
            assert "/repair" in second.telegram.last_text[resident]
    finally:
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
