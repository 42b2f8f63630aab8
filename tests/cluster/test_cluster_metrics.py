"""/metrics in cluster mode: each process counts the updates it stored, took again and handled,
how long they waited for their chat, whether it runs the shared work, and every process sees
the queue's depth and the age of its oldest unhandled update."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.harness import message_update, prepare_community
from bot.cluster import SharedWork
from tests.cluster.inprocess import Bot, cluster_bot, until
from tests.conftest import PostgresServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _samples(bot: Bot) -> Samples:
    page, _ = await bot.services.metrics.render(
        bot.services.storage.sessions, bot.services.clock()
    )
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(page.decode())
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_a_cluster_process_reports_its_updates_waits_queue_and_shared_work(
    postgres_server: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    name = f"cluster_metrics_{id(tmp_path)}"
    await postgres_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    database_url = postgres_server.url_for(name)
    try:
        community = await prepare_community(tmp_path, 1, database_url=database_url)
        resident = community.residents[0].telegram_id
        async with (
            cluster_bot(database_url, community.sandbox) as first,
            cluster_bot(database_url, community.sandbox) as second,
        ):
            # Another process holds the resident's chat: their update waits in the queue.
            assert await second.locks.try_chat(resident)
            first.dispatcher.start()
            await first.dispatcher.receive(message_update(1, resident, "/start"))
            # Telegram delivers it again (its answer was lost): stored once, counted as such.
            await first.dispatcher.receive(message_update(1, resident, "/start"))
            # One more, stored half a minute ago (a slow process's backlog).
            payload = message_update(2, resident, "/help")
            half_a_minute_ago = first.services.clock() - timedelta(seconds=30)
            assert await first.inbound.store(2, resident, json.dumps(payload), half_a_minute_ago)
            waiting = await _samples(first)
            assert _value(waiting, "concierge_cluster_updates_total", event="stored") == 1
            assert _value(waiting, "concierge_cluster_updates_total", event="redelivered") == 1
            assert _value(waiting, "concierge_inbound_updates_waiting") == 2
            assert _value(waiting, "concierge_inbound_oldest_waiting_seconds") >= 30
            assert _value(waiting, "concierge_cluster_update_wait_seconds_count") == 0
            # The queue is the cluster's: the other process sees the same depth.
            assert _value(await _samples(second), "concierge_inbound_updates_waiting") == 2

            await second.locks.release_chat(resident)
            await until(lambda: first.telegram.methods["sendMessage"] >= 2, "both answers")

            async def handled() -> Samples:
                samples = await _samples(first)
                while _value(samples, "concierge_inbound_updates_waiting"):
                    samples = await _samples(first)
                return samples

            done = await handled()
            assert _value(done, "concierge_cluster_updates_total", event="handled") == 2
            assert _value(done, "concierge_inbound_oldest_waiting_seconds") == 0
            assert _value(done, "concierge_cluster_update_wait_seconds_count") == 2
            # The update stored half a minute ago waited at least that long.
            assert _value(done, "concierge_cluster_update_wait_seconds_sum") >= 30
            assert _value(done, "concierge_cluster_chats_running") == 0
            assert (
                _value(await _samples(second), "concierge_cluster_updates_total", event="handled")
                == 0
            )

            # The shared work: one process holds it, the other knows it does not.
            shared = [
                SharedWork(bot.locks, bot.inbound, bot.services.clock, bot.services.metrics)
                for bot in (first, second)
            ]
            assert [await work.mine() for work in shared] == [True, False]
            assert _value(await _samples(first), "concierge_cluster_shared_work_owner") == 1
            assert _value(await _samples(second), "concierge_cluster_shared_work_owner") == 0
    finally:
        await postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
