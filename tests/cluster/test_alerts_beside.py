"""Neither a resident's answer nor a process's start or stop waits for the cluster's alert
delivery.

Alerts go out one round at a time across the cluster, and a round paces each chat to
Telegram's one message a second: a manager told of 300 new repairs holds the round for minutes.
A repair confirmed meanwhile is answered at once ("Repair created"), and the manager hears of it
when the round is free. A process starting meanwhile looks at the vendors and is ready without
waiting for the round. A process stopped meanwhile (an upgrade's SIGTERM) stops at once, and
the alert it recorded is sent by the next round, once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.harness import bench_settings, message_update, prepare_community, press_update
from bot.alert_watcher import watcher_of
from bot.demo import DemoPersona, seed
from bot.storage.inbound import ALERT_DELIVERY_LOCK, held_everywhere
from conversations import callbacks
from sandbox.botapi import Persona
from tests.cluster.inprocess import Bot, cluster_bot, until
from tests.conftest import PostgresServer

DESCRIPTION = "The balcony door no longer locks"
CONTACT = "+86 139 0000 0021"
MANAGER = Persona(user_id=7398, name="Morgan", role="manager")


@contextlib.asynccontextmanager
async def community_database(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Any, int]]:
    """A database with one linked resident and a manager: its URL, the sandbox, the resident."""
    name = f"cluster_alerts_beside_{id(tmp_path)}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    database_url = postgres_server.url_for(name)
    try:
        community = await prepare_community(tmp_path, 1, database_url=database_url)
        await seed(bench_settings(database_url), [DemoPersona(MANAGER, manages=True)], None)
        yield database_url, community.sandbox, community.residents[0].telegram_id
    finally:
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def as_cluster_process(bot: Bot) -> None:
    """What `concierge run` sets up for the alert delivery of a cluster process."""
    engine = bot.services.storage.engine
    watcher_of(bot.app).deliver_one_at_a_time_with(
        lambda: held_everywhere(engine, ALERT_DELIVERY_LOCK)
    )


async def report_a_repair(bot: Bot, resident: int) -> None:
    """Every step up to the confirm, which the test presses itself."""
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


def alerts_about_it(bot: Bot) -> int:
    return sum(1 for t in bot.telegram.texts[MANAGER.user_id] if DESCRIPTION in t)


async def test_a_repair_is_answered_while_another_process_holds_the_alert_round(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    async with (
        community_database(postgres_server, postgres_template, tmp_path) as (url, sandbox, who),
        cluster_bot(url, sandbox) as bot,
    ):
        as_cluster_process(bot)
        bot.dispatcher.start()
        await report_a_repair(bot, who)

        # Another process is in the middle of a round, pacing a manager's backlog.
        async with held_everywhere(bot.services.storage.engine, ALERT_DELIVERY_LOCK):
            await bot.handle(press_update(7, who, callbacks.build("repair", "confirm")))
            assert "created" in bot.telegram.last_text[who]
            assert alerts_about_it(bot) == 0

        await until(lambda: alerts_about_it(bot) == 1, "the manager's alert once it is free")


async def test_a_process_stops_at_once_while_another_holds_the_alert_round(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    async with (
        community_database(postgres_server, postgres_template, tmp_path) as (
            url,
            sandbox,
            who,
        ),
        cluster_bot(url, sandbox) as other,
    ):
        as_cluster_process(other)
        engine = other.services.storage.engine
        # The other process's round, pacing a manager's backlog, outlasts the stop below.
        async with held_everywhere(engine, ALERT_DELIVERY_LOCK):
            stopping = cluster_bot(url, sandbox)
            bot = await stopping.__aenter__()
            as_cluster_process(bot)
            bot.dispatcher.start()
            await report_a_repair(bot, who)
            await bot.handle(press_update(7, who, callbacks.build("repair", "confirm")))
            assert "created" in bot.telegram.last_text[who]
            # The upgrade's SIGTERM, as `concierge run` handles it (bot/runner.py); on
            # the old code the stop waited for the other process's round.
            watcher_of(bot.app).close()
            async with asyncio.timeout(15):
                await stopping.__aexit__(None, None, None)
            assert alerts_about_it(bot) == 0

        # The next round, on the process that carries on, sends what the stopped one
        # recorded: once.
        await watcher_of(other.app).deliver(other.app, other.services.clock())
        assert alerts_about_it(other) == 1
        await watcher_of(other.app).deliver(other.app, other.services.clock())
        assert alerts_about_it(other) == 1


async def test_a_process_starts_while_another_holds_the_alert_round(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    async with (
        community_database(postgres_server, postgres_template, tmp_path) as (url, sandbox, _),
        cluster_bot(url, sandbox) as bot,
    ):
        as_cluster_process(bot)
        async with held_everywhere(bot.services.storage.engine, ALERT_DELIVERY_LOCK):
            # What `concierge run` does before it says it is healthy (bot.app's post_init): the
            # writes left in flight, then one look at the vendors. On the old code that look
            # waited for the other process's round.
            assert bot.app.post_init is not None
            async with asyncio.timeout(15):
                await bot.app.post_init(bot.app)
