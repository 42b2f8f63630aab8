"""Figure 6 (issue 19): cluster mode on PostgreSQL.

- updates/s at 200 ms vendor latency with 1, 2 and 3 cluster "processes";
- the cost per update of cluster mode against single-process mode, both on PostgreSQL, at 0 ms.

Each cluster process is a real OS process (multiprocessing, spawned) running a whole bot: its
Application on a recording Bot API request, services, engine, advisory-lock connection and
dispatcher. The vendor sandbox runs once, in this process, on a loopback socket, so every bot
sees the same vendors with the same latency. Updates are stored as the webhook stores them
(`ClusterDispatcher.receive`, 40 at once, as Telegram's `max_connections`), round robin over
the processes' own receivers is not needed since any process takes any chat; the clock runs
from the first update stored until the last one is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bench.harness import (
    Community,
    RecordingRequest,
    Resident,
    TimedPerChatProcessor,
    Timings,
    TimingTransport,
    bench_settings,
    feed,
    interleaved,
    prepare_community,
    running_bot,
    set_vendor_latency,
)
from bench.report import Figure, Target
from bench.throughput import MAX_RUNNING
from bot.app import build_application
from bot.cluster import ClusterDispatcher, ClusterPersistence, store_update
from bot.services import Services
from bot.settings import Settings
from bot.storage.db import create_engine
from bot.storage.inbound import AdvisoryLocks, InboundUpdates
from bot.storage.migrate import upgrade
from sandbox.postgres import run_maintenance, throwaway_server
from sandbox.serving import serve

PROCESSES = (1, 2, 3)
LATENCY = 0.2
DELIVERIES_AT_ONCE = 40  # Telegram's default max_connections


@dataclass
class Admin:
    """The throwaway server's maintenance connection."""

    url: str

    def database(self, name: str) -> str:
        """The asyncpg URL of one database on the server."""
        url = make_url(self.url).set(drivername="postgresql+asyncpg", database=name)
        return url.render_as_string(hide_password=False)

    async def execute(self, statement: str) -> None:
        """Runs one statement (CREATE DATABASE) on the maintenance database."""
        await run_maintenance(self.url, statement)

    async def copy(self, template: str, name: str) -> str:
        """A fresh database copied from `template`."""
        await self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.database(name)


@dataclass
class Member:
    """One bot of the cluster."""

    services: Services
    app: Any
    dispatcher: ClusterDispatcher
    locks: AdvisoryLocks


@contextlib.asynccontextmanager
async def cluster_of(
    count: int, settings: Settings, sandbox: Starlette | None
) -> AsyncIterator[list[Member]]:
    """`count` cluster bots on one database, each on a recording Bot request; the vendors are
    `sandbox` in this process, or the settings' URLs when it is None."""
    members: list[Member] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            transport = (
                TimingTransport(httpx.ASGITransport(app=sandbox)) if sandbox is not None else None
            )
            services = Services.open(settings, vendor_transport=transport)
            stack.push_async_callback(services.aclose)
            persistence = ClusterPersistence(services.storage.sessions)
            app = build_application(
                settings,
                services,
                persistence=persistence,
                request=RecordingRequest(),
                rate_limiter=False,
            )
            await stack.enter_async_context(app)
            await app.start()
            stack.push_async_callback(app.stop)
            locks = AdvisoryLocks(services.storage.engine)
            stack.push_async_callback(locks.close)
            dispatcher = ClusterDispatcher(
                app,
                InboundUpdates(services.storage.engine),
                locks,
                clock=services.clock,
                max_running=MAX_RUNNING,
            )
            dispatcher.start()
            stack.push_async_callback(dispatcher.stop)
            members.append(Member(services, app, dispatcher, locks))
        yield members


async def _member(database_url: str, vendors_url: str, ready: Any, stop: Any, cpu: Any) -> None:
    settings = bench_settings(
        database_url,
        akubela_base_url=f"{vendors_url}/akubela",
        tuya_base_url=f"{vendors_url}/tuya",
        servitly_base_url=f"{vendors_url}/servitly",
    )
    async with cluster_of(1, settings, None):
        started = time.process_time()
        ready.set()
        await asyncio.to_thread(stop.wait)
        cpu.put(time.process_time() - started)


def _member_main(database_url: str, vendors_url: str, ready: Any, stop: Any, cpu: Any) -> None:
    """A cluster process: one bot until `stop` is set; puts its CPU seconds on `cpu`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_member(database_url, vendors_url, ready, stop, cpu))


@contextlib.contextmanager
def member_processes(count: int, database_url: str, vendors_url: str) -> Iterator[list[float]]:
    """`count` cluster bots, each its own OS process; yields the list their CPU seconds are
    put in when they stop."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    cpu: Any = context.Queue()
    started: list[tuple[Any, Any]] = []
    seconds: list[float] = []
    try:
        for _ in range(count):
            ready = context.Event()
            process = context.Process(
                target=_member_main,
                args=(database_url, vendors_url, ready, stop, cpu),
                daemon=True,
            )
            process.start()
            started.append((process, ready))
        for _process, ready in started:
            if not ready.wait(180):
                raise RuntimeError("a cluster bot process did not start")
        yield seconds
    finally:
        stop.set()
        for process, _ in started:
            process.join(60)
            if process.is_alive():
                process.kill()
        while len(seconds) < len(started) and not cpu.empty():
            seconds.append(float(cpu.get()))


async def _feed_and_wait(database_url: str, steps: Sequence[tuple[Resident, str]]) -> float:
    """Stores every update as the webhook would (40 at once); seconds until all are handled."""
    engine = create_engine(database_url)
    inbound = InboundUpdates(engine)
    payloads = [
        json.loads(json.dumps(resident.payload(3_000_000 + n, step)))
        for n, (resident, step) in enumerate(steps)
    ]
    gate = asyncio.Semaphore(DELIVERIES_AT_ONCE)

    async def deliver(payload: dict[str, Any]) -> None:
        async with gate:
            await store_update(inbound, payload, datetime.now(UTC))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(deliver(p) for p in payloads))
        while True:
            waiting, handled = await inbound.counts()
            if waiting == 0 and handled >= len(payloads):
                return time.perf_counter() - started
            await asyncio.sleep(0.02)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[list[int]]:
    """Counts the statements sent on `engine` (and the engines derived from it) in the block."""
    count = [0]

    def counted(*_args: Any) -> None:
        count[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counted)
    try:
        yield count
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", counted)


async def _run_cluster(
    members: Sequence[Member], steps: Sequence[tuple[Resident, str]]
) -> tuple[float, float, int]:
    """Feeds every update round robin; (seconds until all were handled, CPU seconds,
    statements)."""
    engine = members[0].services.storage.engine
    with counting_statements(engine) as statements:
        seconds, cpu = await _feed_cluster(members, steps)
    return seconds, cpu, statements[0]


async def _feed_cluster(
    members: Sequence[Member], steps: Sequence[tuple[Resident, str]]
) -> tuple[float, float]:
    inbound = InboundUpdates(members[0].services.storage.engine)
    payloads = [
        json.loads(json.dumps(resident.payload(2_000_000 + n, step)))
        for n, (resident, step) in enumerate(steps)
    ]
    gate = asyncio.Semaphore(DELIVERIES_AT_ONCE)

    async def deliver(number: int, payload: dict[str, Any]) -> None:
        async with gate:
            await members[number % len(members)].dispatcher.receive(payload)

    cpu_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(deliver(n, p) for n, p in enumerate(payloads)))
    while True:
        waiting, handled = await inbound.counts()
        if waiting == 0 and handled >= len(payloads):
            break
        await asyncio.sleep(0.02)
    return time.perf_counter() - started, time.process_time() - cpu_before


async def _run_single(
    database_url: str, sandbox: Starlette, steps: Sequence[Any]
) -> tuple[float, float, int]:
    """Single-process mode on the same database: PTB's queue and Concierge's processor;
    (seconds, CPU seconds, statements)."""
    timings = Timings(len(steps))
    processor = TimedPerChatProcessor(timings, MAX_RUNNING)
    async with running_bot(database_url, sandbox, processor) as bot:
        with counting_statements(bot.services.storage.engine) as statements:
            cpu_before = time.process_time()
            queued = await feed(bot, timings, steps)
            seconds, cpu = time.perf_counter() - queued, time.process_time() - cpu_before
        return seconds, cpu, statements[0]


async def run_cluster(*, residents: int, workdir: Path) -> Figure:
    """Measures figure 6 on a throwaway PostgreSQL server."""
    with throwaway_server() as server:
        admin = Admin(server)
        template = "bench_community"
        await admin.execute(f'CREATE DATABASE "{template}"')
        await upgrade(admin.database(template))
        community: Community = await prepare_community(
            workdir, residents, database_url=admin.database(template)
        )
        steps = interleaved(community.residents)
        rows: list[list[str]] = []
        data: dict[str, Any] = {"updates": len(steps), "residents": residents}
        cpu_at_200: dict[int, list[float]] = {}
        set_vendor_latency(community.sandbox, LATENCY)
        try:
            with serve(community.sandbox) as vendors_url:
                for count in PROCESSES:
                    url = await admin.copy(template, f"bench_cluster_{count}")
                    with member_processes(count, url, vendors_url) as cpu:
                        seconds = await _feed_and_wait(url, steps)
                    cpu_at_200[count] = cpu
                    rate = len(steps) / seconds
                    data[f"cluster_{count}_at_200ms"] = {
                        "seconds": seconds,
                        "updates_per_s": rate,
                        "cpu_seconds_per_process": cpu,
                    }
                    per_update = 1000 * sum(cpu) / len(steps) if len(cpu) == count else None
                    rows.append(
                        [
                            f"{count} (200 ms)",
                            f"{rate:.0f}",
                            f"{seconds:.1f}",
                            "" if per_update is None else f"{per_update:.2f}",
                            "",
                        ]
                    )
        finally:
            set_vendor_latency(community.sandbox, 0)
        url = await admin.copy(template, "bench_single_0ms")
        single_s, single_cpu, single_statements = await _run_single(url, community.sandbox, steps)
        url = await admin.copy(template, "bench_cluster_0ms")
        async with cluster_of(1, bench_settings(url), community.sandbox) as members:
            cluster_s, cluster_cpu, cluster_statements = await _run_cluster(members, steps)
    per = {
        "single_ms_per_update": 1000 * single_s / len(steps),
        "cluster_ms_per_update": 1000 * cluster_s / len(steps),
        "single_cpu_ms_per_update": 1000 * single_cpu / len(steps),
        "cluster_cpu_ms_per_update": 1000 * cluster_cpu / len(steps),
        "single_statements_per_update": single_statements / len(steps),
        "cluster_statements_per_update": cluster_statements / len(steps),
    }
    data.update(per)
    rows.append(
        [
            "single-process (0 ms)",
            f"{len(steps) / single_s:.0f}",
            f"{single_s:.1f}",
            f"{per['single_cpu_ms_per_update']:.2f}",
            f"{per['single_statements_per_update']:.1f}",
        ]
    )
    rows.append(
        [
            "cluster, 1 (0 ms)",
            f"{len(steps) / cluster_s:.0f}",
            f"{cluster_s:.1f}",
            f"{per['cluster_cpu_ms_per_update']:.2f}",
            f"{per['cluster_statements_per_update']:.1f}",
        ]
    )
    one = data["cluster_1_at_200ms"]["updates_per_s"]
    three = data["cluster_3_at_200ms"]["updates_per_s"]
    return Figure(
        key="cluster",
        title="Cluster mode on PostgreSQL: updates/s by processes, and cost per update",
        headers=[
            "processes (vendor latency)",
            "updates/s",
            "seconds",
            "CPU ms/update",
            "statements/update",
        ],
        table=rows,
        data=data,
        targets=[
            Target(
                "3 processes carry more than 1 at 200 ms",
                three > one,
                f"{three:.0f} vs {one:.0f} updates/s",
            )
        ],
        notes=[
            f"{len(steps)} updates from {residents} residents. At 200 ms each cluster bot is "
            "its own OS process; the vendor sandbox serves them all from one thread of the "
            "bench's process, over loopback. CPU ms/update there is the bots' own CPU.",
            "Cost per update at 0 ms: single-process mode and one cluster bot in the bench's "
            "process on the same in-process sandbox; wall and CPU of that process (bot, "
            "sandbox, feeding) divided by the updates. PostgreSQL's own CPU is not counted.",
            "Statements/update at 0 ms: every statement the bot sends, the webhook's storing "
            "and the cluster's locks included (BEGIN and COMMIT are not statements here).",
        ],
    )
