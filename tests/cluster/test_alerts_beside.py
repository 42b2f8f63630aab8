"""A resident's answer does not wait for the cluster's alert delivery.

Alerts go out one round at a time across the cluster, and a round paces each chat to
Telegram's one message a second: a manager told of 300 new repairs holds the round for minutes.
A repair confirmed meanwhile is answered at once ("Repair created"), and the manager hears of it
when the round is free.
"""

from __future__ import annotations

from pathlib import Path

from bench.harness import bench_settings, message_update, prepare_community, press_update
from bot.alert_watcher import watcher_of
from bot.demo import DemoPersona, seed
from bot.storage.inbound import ALERT_DELIVERY_LOCK, held_everywhere
from conversations import callbacks
from sandbox.botapi import Persona
from tests.cluster.inprocess import cluster_bot, until
from tests.conftest import PostgresServer

DESCRIPTION = "The balcony door no longer locks"
CONTACT = "+86 139 0000 0021"
MANAGER = Persona(user_id=7398, name="Morgan", role="manager")


async def test_a_repair_is_answered_while_another_process_holds_the_alert_round(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    name = f"cluster_alerts_beside_{id(tmp_path)}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    database_url = postgres_server.url_for(name)
    try:
        community = await prepare_community(tmp_path, 1, database_url=database_url)
        await seed(bench_settings(database_url), [DemoPersona(MANAGER, manages=True)], None)
        resident = community.residents[0].telegram_id
        async with cluster_bot(database_url, community.sandbox) as bot:
            engine = bot.services.storage.engine
            # As `concierge run` sets up a cluster process.
            watcher_of(bot.app).deliver_one_at_a_time_with(
                lambda: held_everywhere(engine, ALERT_DELIVERY_LOCK)
            )
            bot.dispatcher.start()
            steps = [
                message_update(1, resident, "/repair"),
                message_update(2, resident, DESCRIPTION),
                press_update(3, resident, callbacks.build("repair", "done")),
                press_update(4, resident, callbacks.build("repair", "when", "1m")),
                press_update(5, resident, callbacks.build("repair", "ok")),
                message_update(6, resident, CONTACT),
            ]
            for step in steps:
                await bot.handle(step)

            # Another process is in the middle of a round, pacing a manager's backlog.
            async with held_everywhere(engine, ALERT_DELIVERY_LOCK):
                await bot.handle(press_update(7, resident, callbacks.build("repair", "confirm")))
                assert "created" in bot.telegram.last_text[resident]
                assert not any(DESCRIPTION in t for t in bot.telegram.texts[MANAGER.user_id])

            await until(
                lambda: any(DESCRIPTION in t for t in bot.telegram.texts[MANAGER.user_id]),
                "the manager's alert once the round is free",
            )
    finally:
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
